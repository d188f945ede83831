"""Every API error is JSON {code, message}: a stable code for programs, a sentence for people."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from catalog.inputs import InputError
from providers.resolution import ModelNotAvailable
from runs.services import FullRunLocked, QueueFull, RunRefused

from .tokens import Throttled

log = logging.getLogger(__name__)
QUEUE_FULL_RETRY_SECONDS = 30  # a run takes minutes; asking again within seconds would only be refused again


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers or {}
        super().__init__(message)


def error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    fields: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", []) if part not in ("body", "query", "path", "payload")]
        fields.setdefault(".".join(loc), str(error.get("msg", "Invalid value.")))
    text = "; ".join(f"{k}: {v}" if k else v for k, v in fields.items())
    return f"The request is not valid: {text}", fields


def json_method_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """django-ninja answers a wrong method with a plain-text 405: make it ours."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = error_response(405, "method_not_allowed", f"This endpoint answers {allowed}.")
            response["Allow"] = allowed
        return response

    return wrapped


def install(api: NinjaAPI) -> None:
    """Replace django-ninja's default handlers (which answer {detail}) with ours."""

    def handle(exc_type: type[Exception]) -> Any:
        def register(func: Any) -> Any:
            api.add_exception_handler(exc_type, lambda request, exc: func(request, exc))
            return func

        return register

    @handle(ApiError)
    def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        response = error_response(exc.status, exc.code, exc.message, **exc.extra)
        for name, value in exc.headers.items():
            response[name] = value
        return response

    @handle(Http404)
    def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, "not_found", str(exc) or "Not found.")

    @handle(AuthenticationError)
    def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        response = error_response(
            401, "unauthenticated", "Send a valid token as 'Authorization: Bearer <token>', or log in."
        )
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    @handle(HttpError)
    def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if exc.status_code == 400:  # django-ninja's only 400: a body that is not JSON
            return error_response(422, "invalid_request", "The request body is not valid JSON.", errors={})
        return error_response(exc.status_code, f"http_{exc.status_code}", str(exc.message))

    @handle(ValidationError)
    def _invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        message, fields = _validation_message(list(exc.errors))
        return error_response(422, "invalid_request", message, errors=fields)

    @handle(InputError)
    def _invalid_inputs(request: HttpRequest, exc: InputError) -> HttpResponse:
        return error_response(422, "invalid_inputs", str(exc), errors=exc.errors)

    @handle(ModelNotAvailable)
    def _bad_model(request: HttpRequest, exc: ModelNotAvailable) -> HttpResponse:
        return error_response(422, "invalid_model", str(exc))

    @handle(RunRefused)
    def _refused(request: HttpRequest, exc: RunRefused) -> HttpResponse:
        if isinstance(exc, QueueFull):
            response = error_response(429, "queue_full", str(exc))
            response["Retry-After"] = str(QUEUE_FULL_RETRY_SECONDS)
            return response
        if isinstance(exc, FullRunLocked):
            return error_response(409, "full_run_locked", str(exc))
        return error_response(409, "run_refused", str(exc))

    @handle(RequestDataTooBig)
    def _too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response(413, "too_large", "The request body is too large.")

    @handle(MultiPartParserError)
    def _unreadable_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
        # A multipart body Django cannot parse (no boundary, cut short): the client's mistake, not a 500.
        return error_response(400, "bad_request", f"The multipart body cannot be read: {exc}")

    @handle(Throttled)
    def _throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        response = error_response(429, "throttled", str(exc))
        response["Retry-After"] = str(exc.retry_after)
        response["RateLimit-Limit"] = str(settings.API_TOKEN_REQUESTS_PER_MINUTE)
        response["RateLimit-Remaining"] = "0"
        response["RateLimit-Reset"] = str(exc.retry_after)
        return response

    @handle(Exception)
    def _server_error(request: HttpRequest, exc: Exception) -> HttpResponse:
        log.exception("API error on %s %s", request.method, request.path)
        return error_response(500, "server_error", "Something went wrong on our side; it has been logged.")
