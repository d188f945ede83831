"""The one retry loop: bounded retries with exponential backoff and jitter, then the next model."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import breaker, llm, ratelimit
from .resolution import Target

MAX_RETRIES = 2
BASE_DELAY = 0.5
MAX_DELAY = 20.0


def attempt_record(
    target: Target, attempt: int, status: str, latency_ms: int, error: str = "", detail: str = ""
) -> dict[str, Any]:
    """One attempt as the trace keeps it; status is "ok" or the ProviderError kind; `detail` is the provider's
    own words, redacted and short (the trace is for operators; run reasons carry only `error`)."""
    return {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "model": target.model,
        "provider": target.provider,
        "attempt": attempt,
        "status": status,
        "latency_ms": latency_ms,
        "error": error,
        "detail": detail,
    }


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_DELAY)
    return min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


class Stopped(Exception):
    """The run's control stopped the loop between attempts (cancel, or no time left for another attempt)."""

    def __init__(self, why: str, last: llm.ProviderError | None = None):
        super().__init__(why)
        self.why = why
        self.last = last


def _pause(control: llm.CallControl, seconds: float, last: llm.ProviderError | None) -> None:
    """Wait between attempts, but never past the deadline and not a moment after a cancel."""
    if control.remaining() <= seconds:
        raise Stopped("deadline", last)
    if control.wait(seconds):
        raise Stopped("cancelled", last)


def _wait_for_rate_limit(
    target: Target,
    messages: list[dict[str, Any]],
    kwargs: dict[str, Any],
    control: llm.CallControl,
    on_wait: Callable[[float], None],
) -> None:
    if target.connection_id is None or (target.requests_per_minute is None and target.tokens_per_minute is None):
        return
    tokens = int(kwargs.get("max_tokens") or 0)
    if target.tokens_per_minute is not None:
        tokens += llm.count_tokens(target, messages, kwargs.get("tools"))
    while True:
        wait = ratelimit.reserve(
            target.connection_id, tokens=tokens, rpm=target.requests_per_minute, tpm=target.tokens_per_minute
        )
        if not wait:
            return
        if control.remaining() <= wait:
            raise llm.ProviderError(
                f"The rate limit set for this {target.provider} connection is reached, and waiting for it would "
                "pass the run's time limit.",
                kind="local_rate_limit",
                retryable=False,
            )
        on_wait(wait)
        _pause(control, wait, None)


def attempts() -> int:
    """Attempts per model, the first included (PROVIDER_ATTEMPTS)."""
    from django.conf import settings

    return max(1, int(getattr(settings, "PROVIDER_ATTEMPTS", MAX_RETRIES + 1)))


class _Skip(Exception):
    """This target's breaker is open and a fallback follows: go to it."""


def _through_breaker(
    target: Target,
    is_last: bool,
    control: llm.CallControl,
    on_attempt: Callable[[dict[str, Any]], None],
    on_wait: Callable[[float], None],
) -> bool:
    """Wait until the breaker lets a call through; True when this call is its probe. A target with a fallback
    after it is skipped at once (_Skip); the last one waits for the probe, within the run's deadline."""
    announced = False
    while True:
        gate, wait = breaker.admit(target)
        if gate != breaker.Gate.OPEN:
            return gate == breaker.Gate.PROBE
        if not announced:
            error = breaker.skipped(target, wait)
            on_attempt(attempt_record(target, 0, error.kind, 0, error.message))
            announced = True
            if not is_last:
                raise _Skip
            if control.remaining() <= wait:
                raise error
            on_wait(wait)
        _pause(control, min(wait, 1.0), None)


def call(
    targets: list[Target],
    messages: list[dict[str, Any]],
    *,
    on_attempt: Callable[[dict[str, Any]], None],
    prices: dict[str, llm.Price | None],
    control: llm.CallControl,
    on_wait: Callable[[float], None] = lambda seconds: None,
    on_breaker_wait: Callable[[float], None] = lambda seconds: None,
    on_cut_short: Callable[[llm.LLMResult, Target], None] = lambda result, target: None,
    **kwargs: Any,
) -> tuple[llm.LLMResult, Target]:
    """Call the first target; retry what is retryable; fall back to the next target. Raises the last error,
    Stopped when a cancel or the deadline ends the loop between attempts, and llm.Interrupted (from the call)
    when one cuts a call short. No attempt starts after the deadline."""
    last: llm.ProviderError | None = None
    for index, target in enumerate(targets):
        for attempt in range(1, attempts() + 1):
            if control.stop.is_set():
                raise Stopped("cancelled", last)
            if control.remaining() <= 0:
                raise Stopped("deadline", last)
            try:
                probe = _through_breaker(target, index == len(targets) - 1, control, on_attempt, on_breaker_wait)
            except _Skip:
                last = breaker.skipped(target)
                break
            _wait_for_rate_limit(target, messages, kwargs, control, on_wait)
            started = time.monotonic()
            try:
                result = llm.complete(target, messages, price=prices.get(target.model), control=control, **kwargs)
            except llm.ProviderError as exc:
                last = exc
                if isinstance(exc, llm.CutShort):
                    on_cut_short(exc.partial, target)
                elapsed = int((time.monotonic() - started) * 1000)
                breaker.record(target, exc, probe=probe)
                on_attempt(attempt_record(target, attempt, exc.kind, elapsed, exc.message, exc.detail))
                if not exc.retryable or attempt >= attempts():
                    break
                _pause(control, backoff(attempt, exc.retry_after), last)
                continue
            except BaseException:  # cut short by a cancel or the deadline: it says nothing about the provider
                if probe:
                    breaker.release(target)
                raise
            breaker.record(target, None, probe=probe)
            on_attempt(attempt_record(target, attempt, "ok", result.latency_ms))
            return result, target
    assert last is not None
    raise last
