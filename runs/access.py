"""The one access helper for runs: someone else's run answers 404, whatever the action."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from .models import Run


def visible_runs(user: Any) -> QuerySet[Run]:
    runs = Run.objects.select_related("workflow_version__workflow", "user")
    if user.has_perm("runs.view_run"):
        return runs
    return runs.filter(user=user)


def get_run_for_user(user: Any, run_id: Any) -> Run:
    try:
        return visible_runs(user).get(pk=run_id)
    except (Run.DoesNotExist, ValueError, TypeError):
        raise Http404("No such run.") from None


def recent_runs_for_user(user: Any, *, workflow: Any = None) -> QuerySet[Run]:
    runs = Run.objects.select_related("workflow_version__workflow").filter(user=user)
    if workflow is not None:
        runs = runs.filter(workflow_version__workflow=workflow)
    return runs.order_by("-created_at")
