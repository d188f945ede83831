"""The one module that talks to LiteLLM.

LiteLLM is imported lazily (it is heavy, and web pages that never call a model should not pay for it) and
with its bundled price map (LITELLM_LOCAL_MODEL_COST_MAP), so importing it touches no network. The offline
demo model is registered here as a LiteLLM custom provider, so it runs through the same code path as the
real providers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import aio, http_guard, offline
from .errors import ProviderError, to_provider_error
from .resolution import Target

__all__ = [
    "CallControl",
    "CutShort",
    "Interrupted",
    "LLMResult",
    "Limits",
    "Price",
    "ProviderError",
    "ToolCall",
    "complete",
    "count_tokens",
    "lib",
    "map_price",
    "warm_up",
]

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
    estimated: bool = False  # token counts estimated by us (a call cut short), not reported by the provider


@dataclass(frozen=True)
class Price:
    input_per_token: Decimal
    output_per_token: Decimal

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        return self.input_per_token * prompt_tokens + self.output_per_token * completion_tokens


@dataclass(frozen=True)
class Limits:
    """Per-attempt time limits (seconds): TCP/TLS connect, the first streamed byte of the answer (headers and
    first chunk), and silence between two chunks. Each ends one attempt with a retryable "timeout"."""

    connect: float
    first_byte: float
    idle: float

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            connect=float(settings.PROVIDER_CONNECT_SECONDS),
            first_byte=float(settings.PROVIDER_FIRST_BYTE_SECONDS),
            idle=float(settings.PROVIDER_IDLE_SECONDS),
        )


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

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return self.completion(*args, **kwargs)

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
                # LiteLLM fails a stream that repeats one chunk 100 times; our max_tokens caps bound every
                # answer already, and a list or table legitimately repeats short chunks.
                setattr(litellm, "REPEATED_STREAMING_CHUNK_LIMIT", 100_000)  # noqa: B010 (a Final in its stubs)
                litellm.custom_provider_map = [
                    {"provider": "offline", "custom_handler": _offline_handler_class(litellm)()}
                ]
                custom_llm_setup()
                from .http_guard import install  # no redirects; every connection SSRF-checked

                install(litellm)
                _lib_module = litellm
    return _lib_module


class CallControl:
    """What a run gives its calls so they can be cut short: `stop` is set on cancel, `deadline` is a
    time.monotonic() value no call may pass, `on_text` receives streamed text as it arrives."""

    def __init__(
        self,
        stop: threading.Event | None = None,
        deadline: float | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self.stop = stop or threading.Event()
        self.deadline = deadline
        self.on_text = on_text
        # Why `stop` was set ("cancel", "shutdown", "lost", see runs.control.Why): a call cut short by our
        # own stop is never the provider's failure, so whoever counts failures (the breaker) reads this.
        self.why = ""

    def remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def poll(self, force: bool = False) -> None:
        """Called every ~0.1 s while a call or a pause waits (and with `force` between steps): a watcher may do
        its periodic work here."""

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds` (never past the deadline); True when stopped meanwhile."""
        until = time.monotonic() + max(0.0, min(seconds, self.remaining()))
        with aio.idle():
            while not self.stop.is_set() and time.monotonic() < until:
                self.stop.wait(min(0.1, until - time.monotonic()))
                self.poll()
        return self.stop.is_set()


class CutShort(ProviderError):
    """A failed call that had streamed part of an answer first (a dropped connection): `partial` counts it."""

    def __init__(self, error: ProviderError, partial: LLMResult):
        super().__init__(error.message, kind=error.kind, retryable=error.retryable, retry_after=error.retry_after)
        self.partial = partial


class Interrupted(Exception):
    """A call cut short by cancel ("cancelled") or the run's deadline ("deadline"). `partial` counts what was
    streamed before the cut (tokens estimated where the provider never sent a usage)."""

    def __init__(self, why: str, partial: LLMResult):
        super().__init__(why)
        self.why = why
        self.partial = partial


def _kwargs(target: Target, messages: list[dict[str, Any]], tools: Any, max_tokens: int, timeout: float) -> Any:
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
    return kwargs


def complete(
    target: Target,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    max_tokens: int,
    timeout: float,
    price: Price | None = None,
    control: CallControl | None = None,
    limits: Limits | None = None,
) -> LLMResult:
    """One call. With a `control` it streams (where the provider can) on the process's loop, passes text to
    `control.on_text` as it arrives and raises Interrupted at once on cancel or at the deadline; without one it
    is a plain blocking call (the connection check)."""
    litellm = lib()
    kwargs = _kwargs(target, messages, tools, max_tokens, timeout)
    started = time.monotonic()
    try:
        with aio.idle():  # no database connection is held while the provider answers
            if control is None:
                response = litellm.completion(**kwargs)
            else:
                response = _controlled(target, kwargs, control, price, started, limits or Limits.from_settings())
    except (Interrupted, ProviderError):
        raise
    except Exception as exc:  # every provider failure becomes a ProviderError with the key redacted
        raise to_provider_error(exc, target) from None
    return _result(target, response, price, int((time.monotonic() - started) * 1000))


class _Stream:
    """Chunks gathered on the loop thread while the run's thread waits."""

    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.chunks: list[Any] = []
        self.text: list[str] = []
        self.answered = False  # text, a tool call or a usage report came: a stream of nothing is malformed
        self.on_text = on_text

    def add(self, chunk: Any) -> None:
        self.chunks.append(chunk)
        try:
            delta = chunk.choices[0].delta if chunk.choices else None
            piece = delta.content if delta else None
            self.answered = self.answered or bool(piece or (delta and delta.tool_calls))
        except (AttributeError, IndexError):
            piece = None
        self.answered = self.answered or getattr(chunk, "usage", None) is not None
        if piece:
            self.text.append(piece)
            if self.on_text:
                self.on_text(piece)


def _timed_out(what: str, seconds: float) -> ProviderError:
    return ProviderError(f"The provider {what} within {seconds:g} s.", kind="timeout", retryable=True)


async def _call(kwargs: dict[str, Any], stream: _Stream | None, limits: Limits) -> Any:
    litellm = lib()
    http_guard.connect_limit.set(limits.connect)  # read by the connect step of this task's HTTP connection
    first_byte_by = time.monotonic() + limits.first_byte
    if stream is None:
        try:
            return await asyncio.wait_for(litellm.acompletion(**kwargs), limits.first_byte)
        except TimeoutError:
            raise _timed_out("did not answer", limits.first_byte) from None
    try:
        response = await asyncio.wait_for(
            litellm.acompletion(**kwargs, stream=True, stream_options={"include_usage": True}), limits.first_byte
        )
    except TimeoutError:
        raise _timed_out("did not start answering", limits.first_byte) from None
    chunks = response.__aiter__()
    try:
        while True:
            # The first chunk counts against the first-byte limit, each later one against the idle limit.
            limit = limits.idle if stream.chunks else max(0.0, first_byte_by - time.monotonic())
            try:
                chunk = await asyncio.wait_for(chunks.__anext__(), limit)
            except StopAsyncIteration:
                break
            except TimeoutError:
                if stream.chunks:
                    raise _timed_out("went silent mid-answer, sending nothing", limits.idle) from None
                raise _timed_out("did not start answering", limits.first_byte) from None
            stream.add(chunk)
    finally:
        closer = getattr(response, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
    if not stream.answered:
        raise ProviderError("The provider ended the stream without an answer.", kind="malformed", retryable=True)
    return litellm.stream_chunk_builder(stream.chunks, messages=kwargs["messages"])


def _controlled(
    target: Target, kwargs: dict[str, Any], control: CallControl, price: Price | None, started: float, limits: Limits
) -> Any:
    # The offline model answers at once and has no stream: it takes the non-streaming path.
    stream = None if target.is_offline else _Stream(control.on_text)
    future = aio.submit(_call(kwargs, stream, limits))
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    while not future.done():
        why = "cancelled" if control.stop.is_set() else "deadline" if control.remaining() <= 0 else ""
        if why:
            future.cancel()  # aborts the HTTP request on the loop
            text = "".join(stream.text) if stream else ""
            raise Interrupted(why, _partial(target, kwargs, text, price, started))
        # Wakes as soon as the answer is in; otherwise every 0.1 s to look at the stop signal and the clock.
        done.wait(min(0.1, max(0.0, control.remaining())))
        control.poll()
    try:
        return future.result()
    except Exception as exc:
        error = exc if isinstance(exc, ProviderError) else to_provider_error(exc, target)
        if stream is None or not stream.text:
            raise error from None
        # The provider or the network cut the stream: what came before the cut was paid for, so it counts.
        partial = _partial(target, kwargs, "".join(stream.text), price, started)
        raise CutShort(error, partial) from None


def _partial(target: Target, kwargs: dict[str, Any], text: str, price: Price | None, started: float) -> LLMResult:
    """What a cut call consumed: the prompt is counted in full, the completion as far as it streamed."""
    try:
        prompt_tokens = count_tokens(target, kwargs["messages"], kwargs.get("tools"))
        completion_tokens = int(lib().token_counter(model=target.litellm_model, text=text)) if text else 0
    except Exception:  # counting must not hide the cancel; the characters give a fair estimate
        prompt_tokens = sum(len(str(m.get("content") or "")) for m in kwargs["messages"]) // 4
        completion_tokens = len(text) // 4
    return LLMResult(
        content=text,
        tool_calls=[],
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=price.cost(prompt_tokens, completion_tokens) if price else None,
        latency_ms=int((time.monotonic() - started) * 1000),
        estimated=True,
    )


def _result(target: Target, response: Any, price: Price | None, latency_ms: int) -> LLMResult:
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


def warm_up() -> None:
    """Import LiteLLM, the SDK modules it loads lazily on a first call, and a tokenizer now (seconds, once per
    process), so a worker's first run does not spend its time limit on them."""
    import importlib

    count_tokens(Target(model="openai/gpt-4o-mini", provider="openai", litellm_model="openai/gpt-4o-mini"), [])
    for name in ("openai.resources", "litellm.llms.openai.openai", "litellm.llms.anthropic.chat.handler"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # One call through the async path (the offline model: no network) sets up what every first call needs.
    offline_target = Target(model=offline.MODEL, provider="offline", litellm_model=offline.MODEL)
    complete(offline_target, [{"role": "user", "content": "warm up"}], max_tokens=5, timeout=10, control=CallControl())


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
