"""The Validate → Test → Full rule: a full run needs the same user's passed test run of the same version,
inputs and model. Someone else's test run unlocks nothing (each person sees their own run's output before
paying more), and neither does a test on another model: a pass on the offline demo (not AI) says nothing
about a paid provider's answers. A test run passes when it succeeded, which includes its quality checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import WorkflowVersion
from providers.resolution import model_choices

from .models import Mode, Run, Status


def intended_model(spec: dict[str, Any], requested: list[str] | None) -> str:
    """The model a run will ask first: the one it requested, else the form's default (the first connected
    model the spec allows, or the offline demo model when none is)."""
    if requested:
        return requested[0]
    return model_choices(spec)[0].name


def passed_tests(user: Any, version: WorkflowVersion) -> QuerySet[Run]:
    """The user's passed test runs of this version still inside the window, newest first."""
    since = timezone.now() - timedelta(hours=settings.FULL_RUN_WINDOW_HOURS)
    return Run.objects.filter(
        user=user, workflow_version=version, mode=Mode.TEST, status=Status.SUCCEEDED, finished_at__gte=since
    ).order_by("-finished_at")


def unlocking_test(
    version: WorkflowVersion, inputs_hash: str, *, user: Any, model: str, exclude: Any = None
) -> Run | None:
    """The passed test run that unlocks a full run of these inputs on `model`, or None."""
    return passed_tests(user, version).filter(inputs_hash=inputs_hash, model_used=model).exclude(pk=exclude).first()


def full_run_blocker(
    version: WorkflowVersion, inputs_hash: str, *, user: Any, model: str, exclude: Any = None
) -> str | None:
    """Why `user`'s full run on `model` is locked, or None when their own matching test run passed."""
    if unlocking_test(version, inputs_hash, user=user, model=model, exclude=exclude):
        return None
    days = settings.FULL_RUN_WINDOW_HOURS / 24
    window = f"{days:g} days" if days >= 1 else f"{settings.FULL_RUN_WINDOW_HOURS} hours"
    others = sorted(
        set(passed_tests(user, version).filter(inputs_hash=inputs_hash).values_list("model_used", flat=True))
    )
    if others:
        return (
            f"A full run on {model} needs a passed test run on {model} itself: your test runs with these inputs "
            f"passed on {', '.join(others)} only. Run a test on {model} first."
        )
    return (
        "A full run needs a passed test run of your own of this workflow version with the same inputs and model "
        f"({model}) in the last {window}. Run a test first."
    )


def ready_for_full(user: Any, version: WorkflowVersion) -> QuerySet[Run]:
    """The user's passed test runs of this version still inside the window: each unlocks a full run."""
    return passed_tests(user, version)


def may_skip(user: Any) -> bool:
    return bool(user.has_perm("runs.skip_progression"))
