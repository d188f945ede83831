"""Error pages in the site's style, in plain words."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string


def _page(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    html = render_to_string("error.html", {"status": status, "title": title, "message": message}, request=request)
    return HttpResponse(html, status=status)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, 404, "Not found", "There is nothing here, or it is not yours to see.")


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, 403, "Not allowed", "You do not have permission to do that.")


def server_error(request: HttpRequest) -> HttpResponse:
    # No request context: the error may be the database or the session, which the full layout would touch.
    return HttpResponse(render_to_string("500.html"), status=500)
