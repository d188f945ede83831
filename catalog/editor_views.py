"""The workflow editor for operators: write YAML with live checks and a form preview, save drafts, test-run
them, publish, compare versions and roll back. Thin views over catalog.authoring."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from runs.models import Mode
from runs.services import RunRefused, start_run
from settings_app.htmx import HtmxHttpRequest

from . import authoring
from .access import can_author, get_skill_for_user, get_workflow_for_author, version_numbered
from .forms import InputsForm
from .models import Skill, Workflow


def _authors_only(request: HtmxHttpRequest) -> None:
    if not can_author(request.user):
        raise Http404("No such page.")  # students do not learn the editor exists


def _context(text: str, workflow: Workflow | None) -> dict[str, Any]:
    checked = authoring.check(text, workflow=workflow) if text.strip() else authoring.Checked(None, [])
    preview = InputsForm(checked.spec["inputs"], prefix="preview") if checked.spec else None
    return {
        "text": text,
        "checked": checked,
        "preview": preview,
        "skills": Skill.objects.filter(latest__isnull=False).order_by("name").values_list("name", flat=True),
        "models": _known_models(),
    }


def _known_models() -> list[str]:
    from providers.resolution import model_choices

    return [c.name for c in model_choices({"models": [], "any_model": True})]


def new(request: HtmxHttpRequest) -> HttpResponse:
    _authors_only(request)
    text = request.POST.get("source", "")
    if not text and request.GET.get("skill"):
        text = authoring.starter_for_skill(get_skill_for_user(request.user, request.GET["skill"]))
    if request.method == "POST":
        try:
            draft = authoring.save_draft(text=text, user=request.user)
        except authoring.AuthoringError:
            return render(request, "catalog/editor.html", {**_context(text, None), "creating": True}, status=422)
        return redirect("catalog:edit", slug=draft.workflow.slug)
    return render(request, "catalog/editor.html", {**_context(text, None), "creating": True})


def edit(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_author(request.user, slug)
    draft = authoring.open_draft(workflow)
    if request.method == "POST":
        text = request.POST.get("source", "")
        try:
            draft = authoring.save_draft(text=text, user=request.user, workflow=workflow)
        except authoring.AuthoringError as exc:
            context = {**_context(text, workflow), "workflow": workflow, "draft": draft, "save_error": exc.problems}
            return render(request, "catalog/editor.html", context, status=422)
        return redirect("catalog:edit", slug=slug)
    base = draft or workflow.latest_version
    text = authoring.source_of(base) if base else ""
    return render(request, "catalog/editor.html", {**_context(text, workflow), "workflow": workflow, "draft": draft})


@require_POST
def check(request: HtmxHttpRequest) -> HttpResponse:
    """The live check as you type: problems by line and the form preview (an HTMX fragment)."""
    _authors_only(request)
    slug = request.POST.get("workflow", "")
    workflow = get_workflow_for_author(request.user, slug) if slug else None
    return render(request, "catalog/_editor_check.html", _context(request.POST.get("source", ""), workflow))


@require_POST
def publish(request: HtmxHttpRequest, slug: str, number: int) -> HttpResponse:
    workflow = get_workflow_for_author(request.user, slug)
    version = version_numbered(workflow, number)
    with suppress(authoring.AuthoringError):  # already published (a double click): the versions page shows it
        authoring.publish(version=version, user=request.user)
    return redirect("catalog:versions", slug=slug)


@require_POST
def test_draft(request: HtmxHttpRequest, slug: str, number: int) -> HttpResponse:
    """Validate or test-run a draft with its default inputs, as its author."""
    workflow = get_workflow_for_author(request.user, slug)
    version = version_numbered(workflow, number)
    mode = Mode.VALIDATE if request.POST.get("mode") == Mode.VALIDATE else Mode.TEST
    defaults = {name: prop["default"] for name, prop in version.input_schema["properties"].items()}
    try:
        run = start_run(workflow_version=version, user=request.user, inputs=defaults, mode=mode)
    except RunRefused as exc:
        context = {**_context(authoring.source_of(version), workflow), "workflow": workflow, "draft": version}
        return render(request, "catalog/editor.html", {**context, "run_error": str(exc)}, status=409)
    return redirect("runs:detail", run_id=run.pk)


@require_POST
def rollback(request: HtmxHttpRequest, slug: str, number: int) -> HttpResponse:
    workflow = get_workflow_for_author(request.user, slug)
    try:
        authoring.rollback(workflow=workflow, number=number, user=request.user)
    except authoring.AuthoringError as exc:
        raise Http404(str(exc)) from exc
    return redirect("catalog:versions", slug=slug)


def versions(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_author(request.user, slug)
    context = {
        "workflow": workflow,
        "versions": authoring.versions_of(workflow),
        "draft": authoring.open_draft(workflow),
    }
    return render(request, "catalog/versions.html", context)


def diff(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_author(request.user, slug)
    try:
        old, new_ = (version_numbered(workflow, int(request.GET.get(k, ""))) for k in ("from", "to"))
    except ValueError as exc:
        raise Http404("Choose two versions.") from exc
    context = {"workflow": workflow, "old": old, "new": new_, "lines": authoring.diff(old, new_)}
    return render(request, "catalog/diff.html", context)
