"""Provider failures in plain words: every LiteLLM/SDK exception becomes a ProviderError.

The sentence (`message`) is what a student sees in a run's reason: a category in plain words, never the
provider's answer and never a library class name. What the provider actually said goes, shortened and
redacted, into `detail`, which only the trace and operator pages show.

LiteLLM reports the same failure differently per provider family (a refused connection is an
InternalServerError for OpenAI, Anthropic and DeepSeek, an APIConnectionError for Gemini; a body that is not
JSON is a 500, a 422 or a 200), so the low-level cause is read from the exception chain first and the HTTP
status only after that.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from .redaction import redact
from .resolution import Target

DETAIL_CHARS = 160
_SHUTDOWN = "cannot schedule new futures after"  # ... shutdown / interpreter shutdown (concurrent.futures)


class ProviderError(Exception):
    """A failed call, in plain words. `retryable` says whether the same call may succeed later; `detail` is a
    short redacted excerpt of what the provider or the network said, for operators only."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        retry_after: float | None = None,
        detail: str = "",
        status: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after
        self.detail = detail
        self.status = status


_PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Google Gemini",
    "deepseek": "DeepSeek",
    "openai_compatible": "The OpenAI-compatible server",
    "offline": "The offline model",
}

# "litellm.InternalServerError: InternalServerError: OpenAIException - " and "Handle with `litellm.X`".
_LIBRARY_NOISE = re.compile(
    r"(?:\blitellm\.\w+:?\s*|\b[A-Z]\w*(?:Exception|Error)\b(?:\s*[-:]\s*|\s+(?=[A-Z{\[])))|Handle with `[^`]*`\.?"
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _has(exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    return any(isinstance(e, kinds) for e in _causes(exc))


def _named(exc: BaseException, *names: str) -> bool:
    """A cause of one of these class names (httpx/httpcore are not imported here just to test a type)."""
    return any(type(e).__name__ in names for e in _causes(exc))


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return min(float(value), 60.0) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def excerpt(exc: BaseException, *secrets: str | None) -> str:
    """What the provider or the network said, without library prefixes, shortened and redacted."""
    raw = str(getattr(exc, "message", None) or exc)
    text = " ".join(_LIBRARY_NOISE.sub(" ", raw).split()).strip(" .-:")
    return redact(text, *secrets)[:DETAIL_CHARS]


def _host(target: Target) -> str:
    return urlsplit(target.api_base).hostname or target.api_base if target.api_base else "its default address"


def _status(exc: Exception) -> int | None:
    try:
        status = int(getattr(exc, "status_code", None) or 0)
    except (TypeError, ValueError):
        return None
    return status or None


def to_provider_error(exc: Exception, target: Target) -> ProviderError:
    name = _PROVIDER_NAMES.get(target.provider, target.provider)
    detail = excerpt(exc, target.api_key)
    status = _status(exc)

    def error(message: str, kind: str, retryable: bool, **extra: float | None) -> ProviderError:
        return ProviderError(message, kind=kind, retryable=retryable, detail=detail, status=status, **extra)

    # Our own process stopping under the call is no fault of the provider's: never retried, never counted.
    if any(isinstance(e, RuntimeError) and _SHUTDOWN in str(e) for e in _causes(exc)):
        return error("The call was aborted because this worker is stopping.", "aborted", False)
    # The network first: these come with a made-up status (500) or none.
    if _has(exc, ssl.SSLError):
        return error(
            f"{name} could not set up a secure connection with {_host(target)} (TLS): check that the base URL "
            "starts with http:// or https:// as the server expects, and that its certificate is valid.",
            "tls",
            False,
        )
    if _has(exc, socket.gaierror):
        return error(
            f"{name} could not be found: the address {_host(target)} does not resolve (DNS). Check the base URL.",
            "dns",
            False,
        )
    if _has(exc, ConnectionRefusedError):
        return error(
            f"{name} refused the connection at {_host(target)}: is the server running, and is the port right?",
            "unreachable",
            True,
        )
    if _has(exc, TimeoutError) or _named(exc, "Timeout", "APITimeoutError", "ReadTimeout", "ConnectTimeout"):
        return error(f"{name} did not answer in time.", "timeout", True)
    if _has(exc, json.JSONDecodeError):
        return error(f"{name} sent an answer that is not valid JSON (cut off or garbled).", "malformed", True)
    if _named(exc, "RemoteProtocolError", "ReadError", "ConnectError", "APIConnectionError") and (
        status is None or status >= 500
    ):
        return error(f"{name} closed the connection without answering.", "unreachable", True)
    # Then what the provider answered.
    if status == 401:
        return error(f"{name} rejected the API key (wrong or revoked key).", "auth", False)
    if status == 403:
        return error(
            f"{name} refused the request (HTTP 403): the key may not be allowed to do this.", "forbidden", False
        )
    if status == 404:
        return error(
            f"{name} does not know the model {target.model} (HTTP 404): check the model name and the base URL.",
            "unknown_model",
            False,
        )
    if status == 429:
        if "quota" in detail.lower() or "billing" in detail.lower():
            return error(f"{name} says the account has no quota or credit left.", "quota", False)
        return error(f"{name} is limiting requests (HTTP 429).", "rate_limit", True, retry_after=_retry_after(exc))
    if status == 408:
        return error(f"{name} did not answer in time.", "timeout", True)
    if _named(exc, "ContextWindowExceededError") or status == 413:
        return error(f"The prompt is too long for {target.model}.", "context", False)
    if status is not None and status >= 500:
        return error(f"{name} had a server error (HTTP {status}); it may work again later.", "server", True)
    if status is not None and 400 <= status < 500:
        return error(f"{name} refused the request (HTTP {status}).", "bad_request", False)
    return error(f"The call to {name} failed.", "error", False)
