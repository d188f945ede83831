"""Operators write workflows through the API as in the editor: drafts from YAML or JSON, publish, versions,
diffs, rollback. Everything goes through catalog.authoring; students get 404 (drafts stay invisible)."""

from __future__ import annotations

from typing import Any

import yaml
from django.http import Http404, HttpRequest
from ninja import Field, Router, Schema

from catalog import authoring
from catalog.access import can_author, get_workflow_for_author, version_numbered
from catalog.models import VersionOrigin, Workflow, WorkflowVersion

from .auth import require
from .errors import ApiError
from .models import Scope
from .schemas import ERRORS, ErrorOut

router = Router(tags=["authoring"])


class SpecIn(Schema):
    yaml: str | None = Field(None, description="The spec as YAML (comments and order are kept).", max_length=262144)
    spec: dict[str, Any] | None = Field(None, description="Or the spec as a JSON object.")


class VersionOut(Schema):
    number: int
    version: str = Field(description="The spec's own version string.")
    status: str = Field(description="draft or published")
    current: bool = Field(description="The version students get.")
    origin: str = Field(description="file, editor or api")
    created_by: str | None
    created_at: str
    published_at: str | None


class DiffLineOut(Schema):
    kind: str = Field(description="add, del, hunk or same")
    text: str


class DiffOut(Schema):
    workflow: str
    from_version: int
    to_version: int
    lines: list[DiffLineOut]


def _author(request: HttpRequest, scope: Scope) -> None:
    require(request, scope)
    if not can_author(request.user):
        raise Http404("No such endpoint for this account.")


def _text(payload: SpecIn) -> str:
    if payload.yaml is not None:
        return payload.yaml
    if payload.spec is not None:
        return yaml.safe_dump(payload.spec, sort_keys=False, allow_unicode=True)
    raise ApiError(422, "invalid_spec", "Send the spec as `yaml` (text) or `spec` (an object).", problems=[])


def _save(request: HttpRequest, payload: SpecIn, workflow: Workflow | None) -> dict[str, Any]:
    try:
        draft = authoring.save_draft(
            text=_text(payload), user=request.user, workflow=workflow, origin=VersionOrigin.API
        )
    except authoring.AuthoringError as exc:
        raise ApiError(
            422,
            "invalid_spec",
            f"The spec has {len(exc.problems)} problem(s): {exc}",
            problems=[p.as_dict() for p in exc.problems],
        ) from exc
    return _version(draft)


def _version(item: WorkflowVersion) -> dict[str, Any]:
    return {
        "number": item.number,
        "version": item.version,
        "status": item.status,
        "current": item.workflow.latest_version_id == item.pk,
        "origin": item.origin,
        "created_by": item.created_by.get_username() if item.created_by else None,
        "created_at": item.created_at.isoformat(),
        "published_at": item.published_at.isoformat() if item.published_at else None,
    }


@router.post("/authoring/workflows", response={201: VersionOut, ERRORS: ErrorOut}, url_name="author_create")
def create_workflow(request: HttpRequest, payload: SpecIn) -> Any:
    """A new workflow as a draft (operators). 422 `invalid_spec` lists each problem with its YAML line."""
    _author(request, Scope.RUN)
    return 201, _save(request, payload, None)


@router.put("/authoring/workflows/{slug}/draft", response={200: VersionOut, ERRORS: ErrorOut}, url_name="author_draft")
def save_draft(request: HttpRequest, slug: str, payload: SpecIn) -> Any:
    """Save the workflow's draft (a new draft version once a run used the last one)."""
    _author(request, Scope.RUN)
    return _save(request, payload, get_workflow_for_author(request.user, slug))


@router.get(
    "/authoring/workflows/{slug}/versions",
    response={200: list[VersionOut], ERRORS: ErrorOut},
    url_name="author_versions",
)
def list_versions(request: HttpRequest, slug: str) -> Any:
    """Every version, newest first, drafts included."""
    _author(request, Scope.READ)
    return [_version(v) for v in authoring.versions_of(get_workflow_for_author(request.user, slug))]


@router.post(
    "/authoring/workflows/{slug}/versions/{number}/publish",
    response={200: VersionOut, ERRORS: ErrorOut},
    url_name="author_publish",
)
def publish(request: HttpRequest, slug: str, number: int) -> Any:
    """Make a draft the version students get."""
    _author(request, Scope.RUN)
    version = _get_version(request, slug, number)
    try:
        return _version(authoring.publish(version=version, user=request.user))
    except authoring.AuthoringError as exc:
        raise ApiError(409, "already_published", str(exc)) from exc


@router.post(
    "/authoring/workflows/{slug}/versions/{number}/rollback",
    response={200: VersionOut, ERRORS: ErrorOut},
    url_name="author_rollback",
)
def rollback(request: HttpRequest, slug: str, number: int) -> Any:
    """Make an earlier published version current again."""
    _author(request, Scope.RUN)
    workflow = get_workflow_for_author(request.user, slug)
    try:
        return _version(authoring.rollback(workflow=workflow, number=number, user=request.user))
    except authoring.AuthoringError as exc:
        raise ApiError(409, "not_published", str(exc)) from exc


@router.get("/authoring/workflows/{slug}/diff", response={200: DiffOut, ERRORS: ErrorOut}, url_name="author_diff")
def diff(request: HttpRequest, slug: str, from_version: int, to_version: int) -> Any:
    """A unified diff of two versions' YAML (`from_version`, `to_version` are version numbers)."""
    _author(request, Scope.READ)
    old, new = _get_version(request, slug, from_version), _get_version(request, slug, to_version)
    lines = [{"kind": line.kind, "text": line.text} for line in authoring.diff(old, new)]
    return {"workflow": slug, "from_version": old.number, "to_version": new.number, "lines": lines}


def _get_version(request: HttpRequest, slug: str, number: int) -> WorkflowVersion:
    return version_numbered(get_workflow_for_author(request.user, slug), number)
