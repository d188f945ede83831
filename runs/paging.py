"""Keyset pagination of runs, newest first, on (created_at, id): each page is a short walk of an index
(run_recent, run_user_recent, run_status_recent) whatever the page, and no page counts the whole table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from .models import Run

PAGE_SIZE = 25


@dataclass
class Page:
    runs: list[Run]
    newer: str | None  # cursors for the links; None when there is no such page
    older: str | None
    is_first: bool


def cursor(run: Run) -> str:
    return f"{run.created_at.isoformat()}_{run.pk}"


def parse_cursor(value: str | None) -> tuple[datetime, uuid.UUID] | None:
    """(created_at, id) from a cursor; None for a missing or malformed one (the first page then)."""
    if not value:
        return None
    stamp, _, key = value.rpartition("_")
    try:
        moment, pk = datetime.fromisoformat(stamp), uuid.UUID(key)
    except ValueError:
        return None
    return (moment, pk) if moment.tzinfo is not None else None


def page_of(runs: QuerySet[Run], *, before: str | None = None, after: str | None = None) -> Page:
    """Up to PAGE_SIZE runs older than `before`, or else newer than `after`, or else the newest."""
    newest_first = runs.order_by("-created_at", "-id")
    older_than, newer_than = parse_cursor(before), parse_cursor(after)
    if older_than is not None:
        moment, pk = older_than
        chunk = list(newest_first.filter(Q(created_at__lt=moment) | Q(created_at=moment, id__lt=pk))[: PAGE_SIZE + 1])
        more_older, more_newer = len(chunk) > PAGE_SIZE, True
        chunk = chunk[:PAGE_SIZE]
    elif newer_than is not None:
        moment, pk = newer_than
        oldest_first = runs.order_by("created_at", "id")
        chunk = list(oldest_first.filter(Q(created_at__gt=moment) | Q(created_at=moment, id__gt=pk))[: PAGE_SIZE + 1])
        if len(chunk) <= PAGE_SIZE:  # within a page of the newest: show the newest page, full
            return page_of(runs)
        more_newer, more_older = True, True
        chunk = chunk[:PAGE_SIZE][::-1]
    else:
        chunk = list(newest_first[: PAGE_SIZE + 1])
        more_older, more_newer = len(chunk) > PAGE_SIZE, False
        chunk = chunk[:PAGE_SIZE]
    return Page(
        runs=chunk,
        newer=cursor(chunk[0]) if chunk and more_newer else None,
        older=cursor(chunk[-1]) if chunk and more_older else None,
        is_first=not more_newer,
    )
