"""GET /api/v1/workflows…: the catalog, read through catalog/access.py like the catalog pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router

from catalog.access import enabled_workflows, get_workflow_for_user
from catalog.inputs import with_skill_choices
from runs import estimates

from . import serialize
from .auth import require
from .models import Scope
from .schemas import ERRORS, ErrorOut, WorkflowDetailOut, WorkflowOut

router = Router(tags=["workflows"])


@router.get("/workflows", response={200: list[WorkflowOut], ERRORS: ErrorOut}, url_name="workflows")
def list_workflows(request: HttpRequest, persona: str = "", q: str = "", tag: str = "", skill: str = "") -> Any:
    """Enabled workflows: `q` searches title, summary, tags and skill names; the others filter exactly."""
    require(request, Scope.READ)
    found = enabled_workflows(query=q.strip()[:100], persona=persona[:40], tag=tag.strip()[:40])
    if skill:
        found = [w for w in found if w.latest_version and skill in w.latest_version.spec.get("skills", [])]
    return [serialize.workflow(request, w) for w in found]


@router.get("/workflows/{slug}", response={200: WorkflowDetailOut, ERRORS: ErrorOut}, url_name="workflow")
def get_workflow(request: HttpRequest, slug: str) -> Any:
    """One workflow with the JSON Schema of its inputs, its caps per mode and cost estimates per model."""
    require(request, Scope.READ)
    workflow = get_workflow_for_user(request.user, slug)
    version = workflow.current_version
    assert version is not None
    return {
        **serialize.workflow(request, workflow),
        "input_schema": with_skill_choices(version.input_schema),
        "caps": version.spec["caps"],
        "estimates": estimates.for_version(version),
    }


@router.get("/workflows/{slug}/schema", response={200: dict[str, Any], ERRORS: ErrorOut}, url_name="schema")
def get_schema(request: HttpRequest, slug: str) -> Any:
    """Only the JSON Schema (2020-12) of the workflow's inputs."""
    require(request, Scope.READ)
    version = get_workflow_for_user(request.user, slug).current_version
    assert version is not None
    return with_skill_choices(version.input_schema)
