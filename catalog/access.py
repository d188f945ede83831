"""Reads of the catalog, and the one access helper for workflows."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from .models import Workflow


def enabled_workflows(*, query: str = "", persona: str = "", tag: str = "") -> list[Workflow]:
    """Enabled workflows, filtered by a search over title, summary, tags and skill names (in a fixed
    number of queries: skills come prefetched)."""
    workflows = (
        Workflow.objects.filter(enabled=True, latest_version__isnull=False)
        .select_related("latest_version")
        .prefetch_related("latest_version__skills__skill")
        .order_by("title")
    )
    found = []
    words = query.lower().split()
    for workflow in workflows:
        if persona and persona not in workflow.personas:
            continue
        if tag and tag not in workflow.tags:
            continue
        assert workflow.latest_version is not None
        skills = [sv.skill.name for sv in workflow.latest_version.skills.all()]
        haystack = " ".join([workflow.title, workflow.summary, *workflow.tags, *skills]).lower()
        if all(word in haystack for word in words):
            found.append(workflow)
    return found


def get_workflow_for_user(user: Any, slug: str) -> Workflow:
    """An enabled workflow with a loaded version, or 404 (disabled ones only for staff)."""
    queryset = Workflow.objects.select_related("latest_version", "pinned_version").filter(
        slug=slug, latest_version__isnull=False
    )
    if not user.is_staff:
        queryset = queryset.filter(enabled=True)
    workflow = queryset.first()
    if workflow is None:
        raise Http404("No such workflow.")
    return workflow
