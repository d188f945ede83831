from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog.inputs import InputError
from providers.offline import MODEL as OFFLINE_MODEL
from settings_app.audit import client_ip
from settings_app.htmx import HtmxHttpRequest

from . import actions, timeline
from .access import get_run_for_user, visible_runs
from .artifacts import KeptArtifact, artifact_named, artifacts_of
from .forms import HistoryFilter
from .models import Artifact, Mode, Run
from .money import NOT_RUN, format_usd, run_cost
from .paging import page_of
from .rendering import markdown_to_html
from .services import QueueFull, RunRefused, acts_on_behalf, request_cancel, rerun, resume_run, start_from
from .usage import rollup_for
from .usage import summary as usage_summary

MAX_PREVIEW_BYTES = 512 * 1024


def _read(artifact: Artifact | KeptArtifact | None) -> str:
    if artifact is None or artifact.size > MAX_PREVIEW_BYTES:
        return ""
    with artifact.file.open("rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def _body_context(request: HttpRequest, run: Run) -> dict:
    artifacts = artifacts_of(run) if run.is_finished else []
    notes = next((a for a in artifacts if a.name.endswith(".md")), None)
    offline = run.model_used == OFFLINE_MODEL
    return {
        "run": run,
        "steps": timeline.build(run, timeline.read_trace(run, artifacts)),
        "elapsed": timeline.elapsed_seconds(run),
        "estimated_cost": format_usd(run.estimated_cost_usd, offline=offline) if run.model_used else NOT_RUN,
        "actual_cost": run_cost(run),
        "artifacts": artifacts,
        "input_files": list(run.files.all()),
        "previews": _previews(artifacts, notes),
        "notes": notes,
        "notes_html": markdown_to_html(_read(notes)) if notes else "",
        "poll_seconds": settings.RUN_POLL_SECONDS,
        "actions": actions.for_run(run, request.user),
        "on_behalf": acts_on_behalf(run),
    }


PREVIEW_TEXT_CHARS = 20_000


def _previews(artifacts: list[Artifact | KeptArtifact], notes: Artifact | KeptArtifact | None) -> list[dict]:
    """Files the run's code wrote, shown on the page: text (its start) and images; the notes have their own card."""
    shown = []
    for artifact in artifacts:
        kind = artifact.previewable
        if artifact is notes or artifact.name in ("trace.json", "validation.json") or not kind:
            continue
        text = _read(artifact)[:PREVIEW_TEXT_CHARS] if kind == "text" else ""
        shown.append(
            {"artifact": artifact, "kind": kind, "text": text, "cut": kind == "text" and artifact.size > len(text)}
        )
    return shown


def detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/detail.html", _body_context(request, run))


def status(request: HtmxHttpRequest, run_id: str) -> HttpResponse:
    """The live part of the run page, polled by HTMX and morphed in place until the run has finished."""
    run = get_run_for_user(request.user, run_id)
    response = render(request, "runs/_run_body.html", _body_context(request, run))
    if run.is_finished and request.htmx:
        response.status_code = 286  # htmx: swap this last update, then stop polling
    return response


# The history shows these columns only: of a run's JSON only the (small) inputs are read for a list, never its
# outputs or the spec.
HISTORY_COLUMNS = (
    "id", "created_at", "mode", "status", "reason", "steps_done", "cost_usd", "cost_unpriced", "model_used",
    "prompt_tokens", "completion_tokens", "started_at", "finished_at", "inputs", "user__username",
    "workflow_version__workflow__title", "workflow_version__source_text",
)  # fmt: skip


def history(request: HttpRequest) -> HttpResponse:
    form = HistoryFilter(request.GET or None)
    runs = form.apply(visible_runs(request.user)).only(*HISTORY_COLUMNS)
    page = page_of(runs, before=request.GET.get("before"), after=request.GET.get("after"))
    query = request.GET.copy()
    for name in ("before", "after", "page"):
        query.pop(name, None)
    context = {"page": page, "form": form, "filters": form.choices(), "query": query.urlencode()}
    return render(request, "runs/history.html", context)


def usage(request: HttpRequest) -> HttpResponse:
    return render(request, "runs/usage.html", usage_summary(rollup_for(request.user), request.user))


def download_all(request: HttpRequest, run_id: str) -> HttpResponse:
    """Every artifact of a run as one zip."""
    run = get_run_for_user(request.user, run_id)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for artifact in artifacts_of(run):
            with artifact.file.open("rb") as handle:
                archive.writestr(artifact.name, handle.read())
        for given in run.files.all():  # the files the run was given, beside what it made
            with given.file.open("rb") as handle:
                archive.writestr(f"inputs/{given.name}", handle.read())
    name = f"{run.workflow_version.workflow.slug}-{str(run.pk)[:8]}.zip"
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,80}$")


def download(request: HttpRequest, run_id: str, name: str) -> FileResponse:
    run = get_run_for_user(request.user, run_id)
    if not _SAFE_NAME.match(name):
        raise Http404("No such artifact.")
    artifact = artifact_named(run, name)
    if artifact is None:
        raise Http404("No such artifact.")
    response = FileResponse(
        artifact.file.open("rb"), as_attachment=True, filename=name, content_type=artifact.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


def preview(request: HttpRequest, run_id: str, name: str) -> FileResponse:
    """An image the run's code wrote, inline for the run page: raster types only (never SVG or HTML), in a
    CSP sandbox, with nosniff."""
    run = get_run_for_user(request.user, run_id)
    artifact = run.artifacts.filter(name=name).first() if _SAFE_NAME.match(name) else None
    if artifact is None or artifact.previewable != "image":
        raise Http404("No such image.")
    response = FileResponse(artifact.file.open("rb"), content_type=artifact.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def input_file(request: HttpRequest, run_id: str, name: str) -> FileResponse:
    """A file the run was given, as a download (attachment, octet-stream: never rendered by the browser)."""
    run = get_run_for_user(request.user, run_id)
    given = run.files.filter(name=name).first()
    if given is None:
        raise Http404("No such file.")
    response = FileResponse(
        given.file.open("rb"), as_attachment=True, filename=given.name, content_type="application/octet-stream"
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
def cancel(request: HtmxHttpRequest, run_id: str) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    asked = request_cancel(run, actor=request.user, ip=client_ip(request))
    if request.htmx:  # the button itself says "Cancelling…"; no message waits for the next page
        return status(request, run_id)
    messages.info(
        request,
        "Cancel requested: the run stops after its current call." if asked else "This run has already finished.",
    )
    return redirect("runs:detail", run_id=run.pk)


@require_POST
def run_full(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(
        request,
        run_id,
        lambda run: start_from(run, user=request.user, mode=Mode.FULL),
    )


@require_POST
def run_test(request: HttpRequest, run_id: str) -> HttpResponse:
    """From a passed validation: the test run with the same inputs and models."""
    return _again(
        request,
        run_id,
        lambda run: start_from(run, user=request.user, mode=Mode.TEST),
    )


def _again(request: HttpRequest, run_id: str, make: Callable[[Run], Run]) -> HttpResponse:
    earlier = get_run_for_user(request.user, run_id)
    try:
        run = make(earlier)
    except (RunRefused, InputError) as exc:
        messages.error(request, str(exc))
        if isinstance(exc, QueueFull):  # too many runs at once: say so on the run's page, as HTTP 429
            response = detail(request, str(earlier.pk))
            response.status_code = 429
            return response
        return redirect("runs:detail", run_id=earlier.pk)
    return redirect("runs:detail", run_id=run.pk)


@require_POST
def resume(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(request, run_id, lambda run: resume_run(run, actor=request.user, ip=client_ip(request)))


@require_POST
def rerun_view(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(request, run_id, lambda run: rerun(run, user=request.user))


@require_POST
def replay(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(request, run_id, lambda run: rerun(run, user=request.user, replay=True))
