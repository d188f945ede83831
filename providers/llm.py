"""The one module that talks to LiteLLM.

LiteLLM is imported lazily (it is heavy, and web pages that never call a model should not pay for it) and
with its bundled price map (LITELLM_LOCAL_MODEL_COST_MAP), so importing it touches no network. The offline
demo model is registered here as a LiteLLM custom provider, so it runs through the same code path as the
real providers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import offline
from .errors import ProviderError, to_provider_error
from .resolution import Target

__all__ = ["LLMResult", "Price", "ProviderError", "ToolCall", "complete", "count_tokens", "lib", "map_price"]

_lock = threading.Lock()
_lib_module: Any = None


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class LLMResult:
    content: str
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal | None
    latency_ms: int
    message: dict[str, Any] = field(default_factory=dict)  # the assistant message, to continue the conversation


@dataclass(frozen=True)
class Price:
    input_per_token: Decimal
    output_per_token: Decimal

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return self.input_per_token * prompt_tokens + self.output_per_token * completion_tokens


def _offline_handler_class(litellm: Any) -> type:
    class OfflineHandler(litellm.CustomLLM):
        def completion(self, *args: Any, **kwargs: Any) -> Any:
            params = kwargs.get("optional_params") or {}
            reply = offline.respond(kwargs["messages"], tools=params.get("tools"), max_tokens=params.get("max_tokens"))
            message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            return litellm.ModelResponse(
                model=offline.MODEL,
                choices=[
                    {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
                ],
                usage=litellm.Usage(
                    prompt_tokens=reply.prompt_tokens,
                    completion_tokens=reply.completion_tokens,
                    total_tokens=reply.prompt_tokens + reply.completion_tokens,
                ),
            )

    return OfflineHandler


def lib() -> Any:
    """The litellm module, imported on first use and set up once per process."""
    global _lib_module
    if _lib_module is None:
        with _lock:
            if _lib_module is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                import litellm
                from litellm.utils import custom_llm_setup

                litellm.telemetry = False
                litellm.suppress_debug_info = True
                litellm.drop_params = True
                litellm.custom_provider_map = [
                    {"provider": "offline", "custom_handler": _offline_handler_class(litellm)()}
                ]
                custom_llm_setup()
                from .http_guard import install  # no redirects; every connection SSRF-checked

                install(litellm)
                _lib_module = litellm
    return _lib_module


def complete(
    target: Target,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    max_tokens: int,
    timeout: float,
    price: Price | None = None,
) -> LLMResult:
    litellm = lib()
    kwargs: dict[str, Any] = {
        "model": target.litellm_model,
        "messages": messages,
        "max_tokens": max_tokens,
        "timeout": timeout,
        # One retry loop only (providers.resilience): neither LiteLLM nor the SDK under it retries.
        "num_retries": 0,
        "max_retries": 0,
        # Our tools are plain functions, not MCP servers: skip LiteLLM's MCP bridge, which would import its
        # proxy stack and the optional `mcp` package for every call that offers tools.
        "_skip_mcp_handler": True,
    }
    if tools:
        kwargs["tools"] = tools
    if target.api_key:
        kwargs["api_key"] = target.api_key
    if target.api_base:
        kwargs["api_base"] = target.api_base
    started = time.monotonic()
    try:
        response = litellm.completion(**kwargs)
    except Exception as exc:  # every provider failure becomes a ProviderError with the key redacted
        raise to_provider_error(exc, target) from None
    latency_ms = int((time.monotonic() - started) * 1000)
    try:
        choice = response.choices[0].message
        calls = [
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
            for c in (choice.tool_calls or [])
        ]
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    except (AttributeError, IndexError, TypeError) as exc:
        raise ProviderError(
            f"{target.provider} sent an answer that could not be read.", kind="malformed", retryable=True
        ) from exc
    message: dict[str, Any] = {"role": "assistant", "content": choice.content or ""}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
        ]
    return LLMResult(
        content=choice.content or "",
        tool_calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=price.cost(prompt_tokens, completion_tokens) if price else None,
        latency_ms=latency_ms,
        message=message,
    )


def count_tokens(target: Target, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    if target.is_offline:
        return sum(offline.estimate_tokens(str(m.get("content") or "")) for m in messages) + (
            offline.estimate_tokens(json.dumps(tools)) if tools else 0
        )
    return int(lib().token_counter(model=target.litellm_model, messages=messages, tools=tools))


def map_price(target: Target) -> Price | None:
    """Per-token prices from LiteLLM's bundled map; None when the model is not in it."""
    model_cost = lib().model_cost
    _, _, bare = target.model.partition("/")
    info = model_cost.get(target.litellm_model) or model_cost.get(bare)
    if not info or info.get("input_cost_per_token") is None:
        return None
    return Price(
        input_per_token=Decimal(str(info["input_cost_per_token"])),
        output_per_token=Decimal(str(info.get("output_cost_per_token") or 0)),
    )
