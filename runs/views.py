from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from catalog.inputs import InputError

from . import actions
from .access import get_run_for_user, visible_runs
from .models import Mode, Run
from .rendering import markdown_to_html
from .services import RunRefused, request_cancel, rerun, resume_run, start_run

MAX_PREVIEW_BYTES = 512 * 1024


def _body_context(run: Run) -> dict:
    artifacts = list(run.artifacts.all())
    notes_html = ""
    notes = next((a for a in artifacts if a.name.endswith(".md")), None)
    if run.is_finished and notes is not None and notes.size <= MAX_PREVIEW_BYTES:
        with notes.file.open("rb") as handle:
            notes_html = markdown_to_html(handle.read().decode("utf-8", errors="replace"))
    return {
        "run": run,
        "artifacts": artifacts,
        "notes": notes,
        "notes_html": notes_html,
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


def history(request: HttpRequest) -> HttpResponse:
    page = Paginator(visible_runs(request.user).order_by("-created_at"), 25).get_page(request.GET.get("page"))
    return render(request, "runs/history.html", {"page": page})


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
    test_run = get_run_for_user(request.user, run_id)
    try:
        run = start_run(
            workflow_version=test_run.workflow_version,
            user=request.user,
            inputs=test_run.inputs,
            mode=Mode.FULL,
            models=test_run.requested_models,
        )
    except RunRefused as exc:
        messages.error(request, str(exc))
        return redirect("runs:detail", run_id=test_run.pk)
    return redirect("runs:detail", run_id=run.pk)


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
