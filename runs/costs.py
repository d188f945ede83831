"""Cost estimates before a run and the worst case of the next call during it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from providers import llm
from providers.resolution import Target

from . import prompts, tools

CENT_FRACTION = Decimal("0.00000001")


def tokens(
    target: Target,
    steps: list[dict[str, Any]],
    caps: dict[str, Any],
    messages_for: Callable[[dict[str, Any]], list[dict[str, Any]]],
    tool_defs_for: Callable[[dict[str, Any]], list[dict[str, Any]] | None],
) -> tuple[int, int]:
    """Upper (input, output) tokens: each step's prompt tokens (counted with LiteLLM's tokenizer for the
    model) plus the mode's max output tokens, and each allowed tool round re-sending the conversation with a
    full tool result. `messages_for` must render a step with earlier outputs at their cap."""
    max_out = caps["max_output_tokens"]
    total_in = total_out = 0
    for step in steps:
        defs = tool_defs_for(step)
        prompt = llm.count_tokens(target, messages_for(step), defs)
        rounds = 1 + (caps["max_tool_calls"] if defs else 0)
        total_in += prompt * rounds + (tools.MAX_READ_CHARS // 4) * (rounds - 1) * rounds // 2
        total_out += max_out * rounds
    return total_in, total_out


def priced(price: llm.Price | None, input_tokens: int, output_tokens: int) -> Decimal | None:
    """The dollars of an upper token count at a price; None when the model is unpriced."""
    if price is None:
        return None
    return price.cost(input_tokens, output_tokens).quantize(CENT_FRACTION)


def estimate(
    target: Target,
    price: llm.Price | None,
    steps: list[dict[str, Any]],
    caps: dict[str, Any],
    messages_for: Callable[[dict[str, Any]], list[dict[str, Any]]],
    tool_defs_for: Callable[[dict[str, Any]], list[dict[str, Any]] | None],
) -> Decimal | None:
    """An upper estimate in dollars (see `tokens`). None when the model is unpriced."""
    if price is None:
        return None
    return priced(price, *tokens(target, steps, caps, messages_for, tool_defs_for))


def worst_next_call(
    target: Target, price: llm.Price, messages: list[dict[str, Any]], offer: list[dict[str, Any]] | None, max_out: int
) -> Decimal:
    return price.cost(llm.count_tokens(target, messages, offer), max_out)


def _worst_case(spec: dict[str, Any], mode: str, inputs: dict[str, Any], skills: dict[str, Any]) -> tuple[Any, ...]:
    """(steps, caps, messages_for, tool_defs_for) with every earlier step's output at the mode's output cap."""
    caps = spec["caps"][mode]
    worst = prompts.StepOutputs({step["id"]: "word " * caps["max_output_tokens"] for step in spec["steps"]})
    ctx = prompts.context(spec, inputs, worst, skills, mode)
    return (
        spec["steps"],
        caps,
        lambda step: prompts.messages(step, ctx, skills),
        lambda step: tools.definitions(step["tools"], skills) if step.get("tools") else None,
    )


def upper_estimate(
    target: Target,
    price: llm.Price | None,
    spec: dict[str, Any],
    mode: str,
    inputs: dict[str, Any],
    skills: dict[str, Any],
) -> Decimal | None:
    """`estimate` for a spec in a mode: every earlier step's output counted at the mode's output cap."""
    return estimate(target, price, *_worst_case(spec, mode, inputs, skills))


def upper_tokens(
    target: Target, spec: dict[str, Any], mode: str, inputs: dict[str, Any], skills: dict[str, Any]
) -> tuple[int, int]:
    """`tokens` for a spec in a mode, counted as `upper_estimate` counts them (for the cached estimates)."""
    return tokens(target, *_worst_case(spec, mode, inputs, skills))
