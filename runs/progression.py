"""The Validate → Test → Full rule: a full run needs the same user's passed test run of the same version and
inputs. Someone else's test run unlocks nothing: each person sees their own run's output before paying more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import WorkflowVersion

from .models import Mode, Run, Status


def full_run_blocker(version: WorkflowVersion, inputs_hash: str, *, user: Any, exclude: Any = None) -> str | None:
    """Why `user`'s full run is locked, or None when their own matching test run passed within the window."""
    since = timezone.now() - timedelta(hours=settings.FULL_RUN_WINDOW_HOURS)
    passed = Run.objects.filter(
        user=user,
        workflow_version=version,
        inputs_hash=inputs_hash,
        mode=Mode.TEST,
        status=Status.SUCCEEDED,
        finished_at__gte=since,
    ).exclude(pk=exclude)
    if passed.exists():
        return None
    days = settings.FULL_RUN_WINDOW_HOURS / 24
    window = f"{days:g} days" if days >= 1 else f"{settings.FULL_RUN_WINDOW_HOURS} hours"
    return (
        "A full run needs a passed test run of your own of this workflow version with the same inputs "
        f"in the last {window}. Run a test first."
    )


def ready_for_full(user: Any, version: WorkflowVersion) -> QuerySet[Run]:
    """The user's passed test runs of this version still inside the window: each unlocks a full run."""
    since = timezone.now() - timedelta(hours=settings.FULL_RUN_WINDOW_HOURS)
    return Run.objects.filter(
        user=user, workflow_version=version, mode=Mode.TEST, status=Status.SUCCEEDED, finished_at__gte=since
    ).order_by("-finished_at")


def may_skip(user: Any) -> bool:
    return bool(user.has_perm("runs.skip_progression"))
