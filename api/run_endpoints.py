"""/api/v1/runs…: the same services (runs/services.py) and access helper (runs/access.py) as the run pages,
so the rules (progression, caps, budgets, queue limit, someone else's run is a 404) hold here too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal
from uuid import UUID

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import Query, Router
from pydantic import ValidationError as PydanticError

from catalog.access import get_workflow_for_user
from catalog.file_inputs import Upload
from runs import files as run_files
from runs.access import get_run_for_user, visible_runs
from runs.artifacts import artifact_named, artifacts_of
from runs.forms import HistoryFilter
from runs.models import Mode, Run
from runs.services import request_cancel, rerun, resume_run, start_from, start_run
from settings_app.audit import client_ip

from . import events, idempotency, paging, serialize
from .auth import require
from .errors import ApiError
from .event_hub import AsyncStream
from .model_check import require_offered_model
from .models import Scope
from .schemas import ERRORS, ArtifactPageOut, Day, ErrorOut, RunIn, RunOut, RunPageOut

router = Router(tags=["runs"])
NEW_RUN = {201: RunOut, ERRORS: ErrorOut}
IDEMPOTENCY = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Any unique string (a UUID): a retry with the same key and body answers the same run.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        }
    ]
}


def _run(request: HttpRequest, run_id: UUID) -> Run:
    return get_run_for_user(request.user, run_id)


@router.get("/runs", response={200: RunPageOut, ERRORS: ErrorOut}, url_name="runs")
def list_runs(
    request: HttpRequest,
    workflow: str = "",
    status: Literal["", "queued", "running", "succeeded", "failed", "cancelled", "stopped"] = "",
    mode: Literal["", "validate", "test", "full"] = "",
    since: Day | None = None,
    until: Day | None = None,
    after: str = Query("", max_length=400, pattern=paging.CURSOR_PATTERN, description=paging.AFTER),
    limit: int = Query(paging.DEFAULT_LIMIT, ge=1, le=paging.MAX_LIMIT),
) -> Any:
    """Runs I may see (mine; an operator sees everyone's), newest first, filtered like the history page."""
    require(request, Scope.READ)
    query = {"workflow": workflow, "status": status, "mode": mode, "since": since, "until": until}
    form = HistoryFilter({k: v for k, v in query.items() if v})
    if form.is_bound and not form.is_valid():
        errors = {name: " ".join(str(m) for m in messages) for name, messages in form.errors.items()}
        raise ApiError(422, "invalid_request", "Some filters are not valid.", errors=errors)
    runs = form.apply(visible_runs(request.user)).prefetch_related("artifacts")
    items, next_page = paging.page_of_runs(request, runs, after, limit)
    return {"items": [serialize.run(request, r) for r in items], "next": next_page}


def _created(response: HttpResponse, request: HttpRequest, run: Run) -> tuple[int, dict[str, Any]]:
    body = serialize.run(request, run)
    response["Location"] = body["url"]
    return 201, body


@router.post("/runs", response=NEW_RUN, url_name="start_run", openapi_extra=IDEMPOTENCY)
def create_run(request: HttpRequest, payload: RunIn, response: HttpResponse) -> Any:
    """Start a run. A full run needs a passed test run with the same inputs (409 full_run_locked). With an
    `Idempotency-Key` header, a retried request answers the run the first one started."""
    require(request, Scope.RUN)
    version = get_workflow_for_user(request.user, payload.workflow).current_version
    assert version is not None
    if payload.model:
        require_offered_model(version.spec, payload.model)

    def start() -> Run:
        return start_run(
            workflow_version=version,
            user=request.user,
            inputs=payload.inputs,
            mode=payload.mode,
            models=[payload.model] if payload.model else None,
            budget_usd=payload.budget_usd,
        )

    key = request.headers.get("Idempotency-Key", "")
    run = idempotency.once(request.user, key, payload.model_dump(mode="json"), start) if key else start()
    return _created(response, request, run)


MULTIPART = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["run"],
                "properties": {
                    "run": {"$ref": "#/components/schemas/RunIn", "description": "The run, as POST /runs takes it."},
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "Files for a file input: one part per file, named after the input.",
                    },
                },
            },
            # The `run` part is JSON (so clients and generated tests send the object, not any string).
            "encoding": {"run": {"contentType": "application/json"}},
        }
    },
}


@router.post(
    "/runs/upload", response=NEW_RUN, url_name="start_run_with_files", openapi_extra={"requestBody": MULTIPART}
)
def create_run_with_files(request: HttpRequest) -> Any:
    """Start a run with files (multipart/form-data): a `run` part holding the JSON of POST /runs, and one part
    per file named after its input (repeat the name for several). Limits are the input's (size, count, type)."""
    require(request, Scope.RUN)
    try:
        payload = RunIn.model_validate_json(request.POST.get("run") or "")
    except PydanticError as exc:
        raise ApiError(422, "invalid_request", "The `run` part must be the JSON of a run: " + str(exc)[:300]) from None
    version = get_workflow_for_user(request.user, payload.workflow).current_version
    assert version is not None
    given = {name: uploads_of(request.FILES.getlist(name)) for name in request.FILES}
    values, blobs = run_files.uploads_for(version.input_schema, given)
    run = start_run(
        workflow_version=version,
        user=request.user,
        inputs={**payload.inputs, **values},
        mode=payload.mode,
        models=[payload.model] if payload.model else None,
        budget_usd=payload.budget_usd,
        files=blobs,
    )
    return 201, serialize.run(request, run)


def uploads_of(parts: list[Any]) -> list[Upload]:
    """The bytes of uploaded parts, refusing one over the server's per-file limit before reading it."""
    for part in parts:
        if part.size > settings.RUN_FILE_MAX_BYTES:
            raise ApiError(413, "file_too_large", f"{part.name} is larger than the server takes for one file.")
    return [Upload(part.name, part.read()) for part in parts]


@router.get("/runs/{uuid:run_id}", response={200: RunOut, ERRORS: ErrorOut}, url_name="run")
def get_run(request: HttpRequest, run_id: UUID) -> Any:
    """Status, reason, progress, costs, tokens, steps and artifact links."""
    require(request, Scope.READ)
    return serialize.run(request, _run(request, run_id))


@router.post("/runs/{uuid:run_id}/cancel", response={202: RunOut, ERRORS: ErrorOut}, url_name="cancel_run")
def cancel_run(request: HttpRequest, run_id: UUID) -> Any:
    """Ask the run to stop: a queued run stops at once, a running one after its current call."""
    require(request, Scope.RUN)
    run = _run(request, run_id)
    if not request_cancel(run, actor=request.user, ip=client_ip(request)):
        raise ApiError(409, "run_finished", "This run has already finished.")
    return 202, serialize.run(request, run)


def _again(request: HttpRequest, response: HttpResponse, run_id: UUID, make: Callable[[Run], Run]) -> Any:
    require(request, Scope.RUN)
    return _created(response, request, make(_run(request, run_id)))


@router.post("/runs/{uuid:run_id}/resume", response=NEW_RUN, url_name="resume_run")
def resume(request: HttpRequest, run_id: UUID, response: HttpResponse) -> Any:
    """A new run that continues a failed, cancelled or stopped one from its first unfinished step."""
    return _again(request, response, run_id, lambda run: resume_run(run, actor=request.user, ip=client_ip(request)))


@router.post("/runs/{uuid:run_id}/rerun", response=NEW_RUN, url_name="rerun_run")
def rerun_run(request: HttpRequest, run_id: UUID, response: HttpResponse) -> Any:
    """A new run with the same version, inputs and models."""
    return _again(request, response, run_id, lambda run: rerun(run, user=request.user))


@router.post("/runs/{uuid:run_id}/replay", response=NEW_RUN, url_name="replay_run")
def replay_run(request: HttpRequest, run_id: UUID, response: HttpResponse) -> Any:
    """A rerun that reuses cached responses at no cost."""
    return _again(request, response, run_id, lambda run: rerun(run, user=request.user, replay=True))


@router.post("/runs/{uuid:run_id}/full", response=NEW_RUN, url_name="full_run")
def full_run(request: HttpRequest, run_id: UUID, response: HttpResponse) -> Any:
    """A full run with the inputs and models of this (passed) test run."""
    return _again(
        request,
        response,
        run_id,
        lambda run: start_from(run, user=request.user, mode=Mode.FULL),
    )


@router.get("/runs/{uuid:run_id}/artifacts", response={200: ArtifactPageOut, ERRORS: ErrorOut}, url_name="artifacts")
def list_artifacts(
    request: HttpRequest,
    run_id: UUID,
    after: str = Query("", max_length=400, pattern=paging.CURSOR_PATTERN, description=paging.AFTER),
    limit: int = Query(paging.DEFAULT_LIMIT, ge=1, le=paging.MAX_LIMIT),
) -> Any:
    """The run's files, by name."""
    require(request, Scope.READ)
    run = _run(request, run_id)
    items, next_page = paging.page_by_name(request, artifacts_of(run), lambda a: a.name, after, limit)
    return {"items": [serialize.artifact(request, run, a) for a in items], "next": next_page}


FILE = {  # served with the type of its name (runs.models.Artifact.content_type)
    "description": "The file, as an attachment",
    "content": {media: {"schema": {"type": "string"}} for media in ("text/markdown", "application/json", "text/plain")},
}


@router.get(
    "/runs/{uuid:run_id}/artifacts/{name}",
    response={ERRORS: ErrorOut},
    url_name="artifact",
    openapi_extra={"responses": {"200": FILE}},
)
def download_artifact(request: HttpRequest, run_id: UUID, name: str) -> Any:
    """One artifact's file (notes.md, trace.json, …)."""
    require(request, Scope.READ)
    artifact = artifact_named(_run(request, run_id), name)
    if artifact is None:
        raise Http404("No such artifact.")
    response = FileResponse(
        artifact.file.open("rb"), as_attachment=True, filename=name, content_type=artifact.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


EVENTS = {
    "description": "Server-Sent Events: `status`, `output`, then `end` (or `timeout`); each has an `id:`.",
    "content": {"text/event-stream": {"schema": {"type": "string", "description": "An SSE stream."}}},
}


def _last_event_id(request: HttpRequest) -> int:
    raw = request.headers.get("Last-Event-ID", "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or len(raw) > 10:
        raise ApiError(422, "invalid_request", "Last-Event-ID must be the id of an event this stream sent.")
    return int(raw)


@router.get(
    "/runs/{uuid:run_id}/events",
    response={ERRORS: ErrorOut},
    url_name="run_events",
    openapi_extra={"responses": {"200": EVENTS}},
)
def run_events(request: HttpRequest, run_id: UUID) -> Any:
    """Follow a run: `status` and `output` events until `end` (or `timeout`: reconnect with Last-Event-ID)."""
    require(request, Scope.READ)
    run = _run(request, run_id)
    after = _last_event_id(request)
    user_id = int(request.user.pk or 0)
    try:
        events.take_slot(user_id)
    except events.Busy as busy:
        raise ApiError(429, "too_many_streams", str(busy), headers={"Retry-After": "5"}) from None
    stream: Any
    if isinstance(request, ASGIRequest):
        stream = AsyncStream(run.pk, user_id, after)
    else:
        stream = events.SyncStream(run.pk, user_id, after)
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass each event on at once
    return response
