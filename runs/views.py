from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog.inputs import InputError

from . import actions
from .access import get_run_for_user, visible_runs
from .forms import HistoryFilter
from .models import Artifact, Mode, Run
from .paging import page_of
from .rendering import markdown_to_html
from .services import RunRefused, request_cancel, rerun, resume_run, start_run
from .usage import rollup_for
from .usage import summary as usage_summary

MAX_PREVIEW_BYTES = 512 * 1024


def _read(artifact: Artifact | None) -> str:
    if artifact is None or artifact.size > MAX_PREVIEW_BYTES:
        return ""
    with artifact.file.open("rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def _body_context(run: Run) -> dict:
    artifacts = list(run.artifacts.all())
    by_name = {a.name: a for a in artifacts}
    notes = next((a for a in artifacts if a.name.endswith(".md")), None)
    notes_html = markdown_to_html(_read(notes)) if run.is_finished and notes else ""
    trace_steps = []
    if run.is_finished and "trace.json" in by_name:
        try:
            trace_steps = json.loads(_read(by_name["trace.json"]) or "{}").get("steps", [])
        except ValueError:
            trace_steps = []
    latest = ""
    if not run.is_finished and run.step_outputs:
        order = [step["id"] for step in run.workflow_version.spec["steps"]]
        done = [sid for sid in order if sid in run.step_outputs]
        latest = markdown_to_html(run.step_outputs[done[-1]][:20000]) if done else ""
    return {
        "run": run,
        "artifacts": artifacts,
        "notes": notes,
        "notes_html": notes_html,
        "trace_steps": trace_steps,
        "latest_output_html": latest,
        "poll_seconds": settings.RUN_POLL_SECONDS,
        "actions": actions.for_run(run),
    }


def detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/detail.html", _body_context(run))


def status(request: HttpRequest, run_id: str) -> HttpResponse:
    """The live part of the run page, polled by HTMX until the run has finished."""
    run = get_run_for_user(request.user, run_id)
    return render(request, "runs/_run_body.html", _body_context(run))


# The history shows these columns only: a run's JSON (inputs, outputs, the spec) is never parsed for a list.
HISTORY_COLUMNS = (
    "id", "created_at", "mode", "status", "cost_usd", "cost_unpriced", "user__username",
    "workflow_version__workflow__title",
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
        for artifact in run.artifacts.all():
            with artifact.file.open("rb") as handle:
                archive.writestr(artifact.name, handle.read())
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
    artifact = run.artifacts.filter(name=name).first()
    if artifact is None:
        raise Http404("No such artifact.")
    response = FileResponse(
        artifact.file.open("rb"), as_attachment=True, filename=name, content_type=artifact.content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
def cancel(request: HttpRequest, run_id: str) -> HttpResponse:
    run = get_run_for_user(request.user, run_id)
    if request_cancel(run):
        messages.info(request, "Cancel requested: the run stops after its current call.")
    else:
        messages.info(request, "This run has already finished.")
    return redirect("runs:detail", run_id=run.pk)


@require_POST
def run_full(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(
        request,
        run_id,
        lambda run: start_run(
            workflow_version=run.workflow_version,
            user=request.user,
            inputs=run.inputs,
            mode=Mode.FULL,
            models=run.requested_models,
        ),
    )


def _again(request: HttpRequest, run_id: str, make: Callable[[Run], Run]) -> HttpResponse:
    earlier = get_run_for_user(request.user, run_id)
    try:
        run = make(earlier)
    except (RunRefused, InputError) as exc:
        messages.error(request, str(exc))
        return redirect("runs:detail", run_id=earlier.pk)
    return redirect("runs:detail", run_id=run.pk)


@require_POST
def resume(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(request, run_id, resume_run)


@require_POST
def rerun_view(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(request, run_id, lambda run: rerun(run, user=request.user))


@require_POST
def replay(request: HttpRequest, run_id: str) -> HttpResponse:
    return _again(request, run_id, lambda run: rerun(run, user=request.user, replay=True))
