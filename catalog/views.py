from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from providers.resolution import NO_MODEL_FOR_OPERATORS, NO_MODEL_FOR_STUDENTS, model_choices, policy, run_models
from runs import estimates, progression
from runs.access import get_run_for_user, recent_runs_for_user
from runs.models import Mode, Run
from runs.services import QueueFull, RunRefused, start_run
from runs.workspace import scripts_of
from settings_app.htmx import HtmxHttpRequest

from .access import (
    enabled_workflows,
    find_skills,
    get_skill_for_user,
    get_workflow_for_user,
    offered_skills,
    workflows_for_skill,
)
from .forms import InputsForm, ModelForm
from .models import Persona, Workflow
from .skill_display import metadata_items, shown_files
from .skill_rules import allowed_tools
from .skill_tree import resource_tree


def index(request: HtmxHttpRequest) -> HttpResponse:
    personas = list(Persona.objects.values_list("slug", "name"))
    persona = request.GET.get("persona", "")
    persona = persona if persona in dict(personas) else ""
    query = request.GET.get("q", "").strip()[:100]
    tag = request.GET.get("tag", "").strip()[:40]
    workflows = enabled_workflows(query=query, persona=persona, tag=tag)
    context = {"workflows": workflows, "personas": personas, "persona": persona, "q": query, "tag": tag}
    template = "catalog/_workflow_list.html" if request.htmx else "catalog/index.html"
    return render(request, template, context)


def detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    workflow = get_workflow_for_user(request.user, slug)
    version = workflow.current_version
    assert version is not None
    # A link may preset inputs (a skill's page links its template workflows with ?skill=<name>).
    preset = {name: request.GET[name] for name in version.input_schema["properties"] if name in request.GET}
    earlier = _earlier_run(request, workflow)  # "Edit and re-run": the form starts from that run's inputs
    if earlier is not None:
        preset = {k: v for k, v in earlier.inputs.items() if k in version.input_schema["properties"]}
    form = InputsForm(version.input_schema, request.POST or None, request.FILES or None, initial=preset)
    status = 422 if request.method == "POST" else 200
    costs = estimates.for_version(version)
    choices = model_choices(version.spec)
    model_form = ModelForm(choices, request.POST or None, estimates={e["model"]: e for e in costs})
    if earlier is not None and earlier.requested_models and not request.POST:
        model_form.initial["model"] = earlier.requested_models[0]
    if request.method == "POST" and all([form.is_valid(), model_form.is_valid()]):
        mode = request.POST.get("mode", Mode.TEST)
        models = run_models(version.spec, model_form.cleaned_data["model"])
        try:
            run = start_run(
                workflow_version=version,
                user=request.user,
                inputs=form.cleaned_inputs,
                mode=mode,
                models=models,
                files=form.cleaned_files,
            )
        except RunRefused as exc:
            form.add_error(None, str(exc))
            status = 429 if isinstance(exc, QueueFull) else status
        else:
            return redirect("runs:detail", run_id=run.pk)
    context = {
        "workflow": workflow,
        "version": version,
        "form": form,
        "skills": version.skills.select_related("skill").order_by("skill__name"),
        "recent_runs": recent_runs_for_user(request.user, workflow=workflow)[:5],
        "ready_for_full": progression.ready_for_full(request.user, version)[:3],
        "caps": version.spec["caps"],
        "estimates": costs,
        "model_form": model_form,
        "no_model": _no_model_notice(request, version.spec, choices),
        "earlier": earlier,
    }
    return render(request, "catalog/detail.html", context, status=status)


def _earlier_run(request: HtmxHttpRequest, workflow: Workflow) -> Run | None:
    """The run named by ?from=, when the user may see it and it ran this workflow (else none: a blank form)."""
    if not request.GET.get("from"):
        return None
    try:
        run = get_run_for_user(request.user, request.GET["from"])
    except Http404:
        return None
    return run if run.workflow_version.workflow_id == workflow.pk else None


def skill_index(request: HtmxHttpRequest) -> HttpResponse:
    """All skills a user may pick, with search and filters by library, licence and persona."""
    personas = list(Persona.objects.values_list("slug", "name"))
    offered = offered_skills(request.user)
    libraries = sorted(set(offered.exclude(library="").values_list("library", flat=True)))
    licenses = sorted(set(offered.exclude(license="").values_list("license", flat=True)))
    chosen = {
        "q": request.GET.get("q", "").strip()[:100],
        "library": _one_of(request.GET.get("library", ""), libraries),
        "license": _one_of(request.GET.get("license", ""), licenses),
        "persona": _one_of(request.GET.get("persona", ""), [slug for slug, _ in personas]),
    }
    skills = find_skills(
        request.user,
        query=chosen["q"],
        library=chosen["library"],
        license=chosen["license"],
        persona=chosen["persona"],
    )
    context = {"skills": skills, "personas": personas, "libraries": libraries, "licenses": licenses, **chosen}
    template = "catalog/_skill_list.html" if request.htmx else "catalog/skills.html"
    return render(request, template, context)


APPLY_WORKFLOW = "apply-skill"


def _apply_url(name: str, workflows: list[Any]) -> str:
    """The apply-skill workflow's form with this skill chosen, when that workflow is offered."""
    if not any(w.slug == APPLY_WORKFLOW for w in workflows):
        return ""
    return reverse("catalog:detail", args=[APPLY_WORKFLOW]) + "?" + urlencode({"skill": name})


def _one_of(value: str, allowed: list[str]) -> str:
    return value if value in allowed else ""


def _no_model_notice(request: HtmxHttpRequest, spec: dict, choices: list) -> str:
    """When only the offline demo model is offered: which connection to add, or whom to ask."""
    if any(not c.offline for c in choices):
        return ""
    preferred, any_model = policy(spec)
    needs = "" if any_model else f"This workflow runs on {', '.join(preferred)}. "
    ask = (
        NO_MODEL_FOR_OPERATORS
        if request.user.has_perm("providers.change_providerconnection")
        else NO_MODEL_FOR_STUDENTS
    )
    return f"No model provider is connected for this workflow yet, so only the offline demo runs. {needs}{ask}"


def skill_detail(request: HtmxHttpRequest, name: str, library: str | None = None) -> HttpResponse:
    skill = get_skill_for_user(request.user, name, library=library)
    using, templates = workflows_for_skill(skill, enabled_workflows())
    version = skill.latest
    metadata = version.metadata if version else {}
    shared = getattr(skill, "name_uses", 1) > 1
    context = {
        "skill": skill,
        "skill_choice": skill.ref if shared else skill.name,  # how a template workflow's skill input names it
        "version": version,
        "using": using,
        "templates": templates,
        "tree": resource_tree(version) if version else [],
        "compatibility": metadata.get("compatibility", ""),
        "allowed_tools": allowed_tools(metadata),
        "extra": metadata_items(
            {k: v for k, v in metadata.items() if k not in ("license", "compatibility", "allowed-tools")}
        ),
        "files": shown_files(version) if version else [],
        "parts": len(version.parts) if version else 0,
        "apply_url": _apply_url(skill.name, [*using, *templates]),
        "scripts": scripts_of(version) if version else [],
    }
    return render(request, "catalog/skill.html", context)
