"""Cursor paging for every API list: `?limit=` (1 to 100) items after the opaque `?after=` cursor, and `next`, the
URL of the following page (null on the last). A cursor names the last item a client saw, so a new run never
shifts a page and a client that loops until `next` is null always stops. Bad values are 422."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import Q, QuerySet
from django.http import HttpRequest

from runs.models import Run

from .errors import ApiError

T = TypeVar("T")
DEFAULT_LIMIT, MAX_LIMIT = 25, 100
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
AFTER = "The cursor from the previous page's `next` (opaque; a value this list did not give is 422)."


def encode(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def decode(kind: str, cursor: str) -> str:
    """The value inside a cursor of this kind; 422 for anything this list did not make."""
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        raise _bad_cursor() from None
    found, _, value = text.partition(":")
    if found != kind:
        raise _bad_cursor()
    return value


def _bad_cursor() -> ApiError:
    return ApiError(
        422, "invalid_request", "`after` is not a cursor from this list: use the `next` link it gave.",
        errors={"after": "Not a cursor from this list."},
    )  # fmt: skip


def next_url(
    request: HttpRequest, items: Sequence[Any], more: bool, kind: str, key: Callable[[Any], str]
) -> str | None:
    if not more or not items:
        return None
    query = request.GET.copy()
    query["after"] = encode(kind, key(items[-1]))
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def page_by_name(
    request: HttpRequest, items: Sequence[T], name: Callable[[T], str], after: str, limit: int
) -> tuple[list[T], str | None]:
    """A page of a short list ordered by a unique name (workflows by slug, artifacts by file name)."""
    ordered = sorted(items, key=name)
    if after:
        last = decode("name", after)
        ordered = [item for item in ordered if name(item) > last]
    return ordered[:limit], next_url(request, ordered[:limit], len(ordered) > limit, "name", name)


def _run_key(run: Run) -> str:
    return f"{run.created_at.isoformat()}|{run.pk}"


def page_of_runs(request: HttpRequest, runs: QuerySet[Run], after: str, limit: int) -> tuple[list[Run], str | None]:
    """Newest first, on (created_at, id): the history's indexes serve every page."""
    runs = runs.order_by("-created_at", "-id")
    if after:
        stamp, _, key = decode("run", after).partition("|")
        try:
            moment, pk = datetime.fromisoformat(stamp), uuid.UUID(key)
        except ValueError:
            raise _bad_cursor() from None
        if moment.tzinfo is None:
            raise _bad_cursor()
        runs = runs.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk))
    chunk = list(runs[: limit + 1])
    return chunk[:limit], next_url(request, chunk[:limit], len(chunk) > limit, "run", _run_key)
