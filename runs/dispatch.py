"""Which queued run goes next, claimed atomically, fairly across users."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.utils import timezone

from .models import Run, Status

WINDOW = 200  # the oldest queued runs considered per claim: enough to find other users' runs behind a burst


def claim_one(run_id: Any, *, worker: str = "") -> bool:
    """queued → running, only if still queued: one conditional UPDATE, so of two workers racing for the same
    run exactly one wins, on SQLite and PostgreSQL alike, and a re-delivered task never runs it twice."""
    now = timezone.now()
    return bool(
        Run.objects.filter(pk=run_id, status=Status.QUEUED).update(
            status=Status.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:120]
        )
    )


def claim(slots: int, *, worker: str) -> list[Any]:
    """Claim up to `slots` queued runs. Fair: each next run belongs to the user with the fewest running runs
    (oldest first among equals), so one user's burst does not hold everyone else's runs."""
    candidates = list(
        Run.objects.filter(status=Status.QUEUED).order_by("created_at").values_list("pk", "user_id")[:WINDOW]
    )
    if not candidates or slots <= 0:
        return []
    users = {user_id for _, user_id in candidates}
    running = dict(
        Run.objects.filter(status=Status.RUNNING, user_id__in=users)
        .values("user_id")
        .annotate(n=Count("pk"))
        .values_list("user_id", "n")
    )
    claimed: list[Any] = []
    while candidates and len(claimed) < slots:
        # min() keeps the first of equals, and candidates are oldest first
        index = min(range(len(candidates)), key=lambda i: running.get(candidates[i][1], 0))
        run_id, user_id = candidates.pop(index)
        if claim_one(run_id, worker=worker):
            claimed.append(run_id)
            running[user_id] = running.get(user_id, 0) + 1
    return claimed


def active_runs(user: Any) -> int:
    return Run.objects.filter(user=user, status__in=(Status.QUEUED, Status.RUNNING)).count()
