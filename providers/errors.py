"""Provider failures in plain words: every LiteLLM/SDK exception becomes a ProviderError."""

from __future__ import annotations

from typing import Any

from .redaction import redact
from .resolution import Target


class ProviderError(Exception):
    """A failed call, in plain words. `retryable` says whether the same call may succeed later."""

    def __init__(self, message: str, *, kind: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


_PROVIDER_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Google Gemini",
    "deepseek": "DeepSeek",
    "openai_compatible": "The OpenAI-compatible server",
    "offline": "The offline model",
}


def _retry_after(exc: Exception) -> float | None:
    headers: Any = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
        return min(float(value), 60.0) if value is not None else None
    except (TypeError, ValueError):
        return None


def to_provider_error(exc: Exception, target: Target) -> ProviderError:
    from .llm import lib

    litellm = lib()
    name = _PROVIDER_NAMES.get(target.provider, target.provider)
    detail = redact(" ".join(str(getattr(exc, "message", exc)).split())[:240], target.api_key)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.Timeout):
        return ProviderError(f"{name} did not answer in time.", kind="timeout", retryable=True)
    if isinstance(exc, litellm.AuthenticationError):
        return ProviderError(f"{name} rejected the API key (bad or revoked key).", kind="auth", retryable=False)
    if isinstance(exc, litellm.RateLimitError):
        if "quota" in detail.lower():
            return ProviderError(f"{name} says the account has no quota left.", kind="quota", retryable=False)
        return ProviderError(
            f"{name} is limiting requests (429).", kind="rate_limit", retryable=True, retry_after=_retry_after(exc)
        )
    if isinstance(exc, litellm.NotFoundError):
        return ProviderError(f"{name} does not know the model {target.model}.", kind="unknown_model", retryable=False)
    if isinstance(exc, litellm.ContextWindowExceededError):
        return ProviderError(f"The prompt is too long for {target.model}.", kind="context", retryable=False)
    # LiteLLM reports a refused or dropped connection as an InternalServerError("Connection error.").
    dropped = isinstance(exc, litellm.InternalServerError) and "connection error" in detail.lower()
    if dropped or (isinstance(exc, litellm.APIConnectionError) and not isinstance(exc, litellm.InternalServerError)):
        return ProviderError(f"{name} could not be reached ({detail}).", kind="unreachable", retryable=True)
    if (status and int(status) >= 500) or isinstance(
        exc, (litellm.InternalServerError, litellm.ServiceUnavailableError)
    ):
        return ProviderError(f"{name} had a server error ({status or 'no status'}).", kind="server", retryable=True)
    if isinstance(exc, litellm.BadRequestError):
        return ProviderError(f"{name} refused the request: {detail}", kind="bad_request", retryable=False)
    return ProviderError(f"{name} call failed: {detail}", kind="error", retryable=False)
