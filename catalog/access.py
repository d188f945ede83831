"""Reads of the catalog, and the one access helper for workflows."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from .models import Workflow


def enabled_workflows() -> list[Workflow]:
    return list(Workflow.objects.filter(enabled=True, latest_version__isnull=False).order_by("title"))


def get_workflow_for_user(user: Any, slug: str) -> Workflow:
    """An enabled workflow with a loaded version, or 404 (disabled ones only for staff)."""
    queryset = Workflow.objects.select_related("latest_version").filter(slug=slug, latest_version__isnull=False)
    if not user.is_staff:
        queryset = queryset.filter(enabled=True)
    workflow = queryset.first()
    if workflow is None:
        raise Http404("No such workflow.")
    return workflow
