"""Headers on every /api/ answer: `X-Request-Id` (the client's own if it sent a sane one, else a new one; it is
also in the access log line a support request can quote) and, for token requests, the rate limit left."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import AccessToken

_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ApiHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            return self.get_response(request)
        sent = request.headers.get("X-Request-Id", "")
        request_id = sent if _SANE_ID.match(sent) else uuid.uuid4().hex
        request.META["HTTP_X_REQUEST_ID"] = request_id
        response = self.get_response(request)
        response["X-Request-Id"] = request_id
        token = getattr(request, "auth", None)
        if isinstance(token, AccessToken):
            limit = settings.API_TOKEN_REQUESTS_PER_MINUTE
            now = timezone.now()
            response["RateLimit-Limit"] = str(limit)
            response["RateLimit-Remaining"] = str(max(0, limit - token.window_count))
            response["RateLimit-Reset"] = str(60 - now.second)
        return response
