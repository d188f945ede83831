"""GET /api/v1/workflows…: the catalog, read through catalog/access.py like the catalog pages."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router

from catalog.access import enabled_workflows, get_workflow_for_user
from catalog.inputs import with_skill_choices
from runs import estimates

from . import paging, serialize
from .auth import require
from .models import Scope
from .schemas import ERRORS, ErrorOut, WorkflowDetailOut, WorkflowPageOut

router = Router(tags=["workflows"])


@router.get("/workflows", response={200: WorkflowPageOut, ERRORS: ErrorOut}, url_name="workflows")
def list_workflows(
    request: HttpRequest,
    persona: str = Query("", max_length=40),
    q: str = Query("", max_length=100),
    tag: str = Query("", max_length=40),
    skill: str = Query("", max_length=100),
    after: str = Query("", max_length=400, pattern=paging.CURSOR_PATTERN, description=paging.AFTER),
    limit: int = Query(paging.DEFAULT_LIMIT, ge=1, le=paging.MAX_LIMIT),
) -> Any:
    """Enabled workflows by slug: `q` searches title, summary, tags and skill names; the others filter exactly."""
    require(request, Scope.READ)
    found = enabled_workflows(query=q.strip(), persona=persona, tag=tag.strip())
    if skill:
        found = [w for w in found if w.latest_version and skill in w.latest_version.spec.get("skills", [])]
    items, next_page = paging.page_by_name(request, found, lambda w: w.slug, after, limit)
    return {"items": [serialize.workflow(request, w) for w in items], "next": next_page}


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
