"""Multipart bodies are refused before anything reads them: Django parses a multipart body (spooling its
files to the temp folder) the first time anything touches request.POST, and the CSRF check does so before
any view runs. So an anonymous visitor could make the server write hundreds of megabytes to disk just to
be told 403. This middleware runs before that: a multipart body needs a declared length; from someone not
logged in it may be no larger than DATA_UPLOAD_MAX_MEMORY_SIZE (1 MiB: a form, kept in memory, never a
file on disk), from a user no larger than UPLOAD_MAX_BYTES; else it is answered at once, unread."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def _refuse(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"code": code, "message": message}, status=status)
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Connection"] = "close"  # the unread body must not be taken for the next request
    return response


class UploadGateMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.content_type == "multipart/form-data":
            refused = self.refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    @staticmethod
    def refusal(request: HttpRequest) -> HttpResponse | None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or "")
        except ValueError:
            return _refuse(request, 411, "length_required", "A file upload must declare its length.")
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE and not request.user.is_authenticated:
            return _refuse(request, 403, "login_required", "Log in before sending files.")
        if length > settings.UPLOAD_MAX_BYTES:
            limit = settings.UPLOAD_MAX_BYTES // 2**20
            return _refuse(request, 413, "too_large", f"The upload is larger than {limit} MiB.")
        return None
