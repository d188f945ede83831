"""Reads of the catalog, and the one access helper each for workflows and skills."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, OuterRef, Subquery
from django.http import Http404

from .inputs import skill_input
from .models import Skill, Workflow, WorkflowVersion


def can_author(user: Any) -> bool:
    """Operators write workflows: drafts, publishing, rollback (students never see a draft)."""
    return bool(getattr(user, "is_authenticated", False) and user.has_perm("catalog.change_workflow"))


def get_workflow_for_author(user: Any, slug: str) -> Workflow:
    """Any workflow, drafts-only ones included, for an operator; 404 for everyone else."""
    workflow = Workflow.objects.select_related("latest_version").filter(slug=slug).first() if can_author(user) else None
    if workflow is None:
        raise Http404("No such workflow.")
    return workflow


def version_numbered(workflow: Workflow, number: int) -> WorkflowVersion:
    """One version of a workflow an author may see (drafts too), or 404."""
    version = workflow.versions.select_related("workflow", "created_by").filter(number=number).first()
    if version is None:
        raise Http404("No such version.")
    return version


def enabled_workflows(*, query: str = "", persona: str = "", tag: str = "") -> list[Workflow]:
    """Enabled workflows, filtered by a search over title, summary, tags and the names and descriptions of
    their skills (in a fixed number of queries: skills come prefetched)."""
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
        skills = [f"{sv.skill.name} {sv.skill.description}" for sv in workflow.latest_version.skills.all()]
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


def offered_skills(user: Any) -> Any:
    """Skills a user may pick and see: template or example skills only for staff. Each counts the skills of
    its name in every library (`name_uses`), so links name the library only where they must."""
    uses = Skill.objects.filter(name=OuterRef("name")).values("name").annotate(n=Count("pk")).values("n")
    queryset = Skill.objects.annotate(name_uses=Subquery(uses)).order_by("name", "library")
    return queryset if user.is_staff else queryset.filter(is_template=False)


def get_skill_for_user(user: Any, name: str, *, library: str | None = None) -> Skill:
    """The skill `library/name`, or (no library given) the one skill of that name: 404 when there is none,
    or when two libraries share the name (their pages name the library)."""
    skills = offered_skills(user).select_related("latest").filter(name=name)
    found = list(skills.filter(library=library) if library is not None else skills[:2])
    if len(found) != 1:
        raise Http404("No such skill.")
    return found[0]


def skill_by_ref(ref: Any, skills: Any = None) -> Skill | None:
    """The skill a reference names: `library/name`, or a plain name when exactly one library has it
    (a plain name two libraries share names neither: it must be written in full). None otherwise."""
    skills = Skill.objects.select_related("latest") if skills is None else skills
    library, sep, name = str(ref or "").partition("/")
    found = list(skills.filter(library=library, name=name) if sep else skills.filter(name=library)[:2])
    return found[0] if len(found) == 1 else None


def workflows_for_skill(skill: Skill, workflows: list[Workflow]) -> tuple[list[Workflow], list[Workflow]]:
    """(workflows written for this skill, template workflows that run over any skill)."""
    using, templates = [], []
    for workflow in workflows:
        assert workflow.latest_version is not None
        if skill_input(workflow.latest_version.input_schema):
            templates.append(workflow)
        elif any(sv.skill_id == skill.pk for sv in workflow.latest_version.skills.all()):
            using.append(workflow)
    return using, templates


def find_skills(user: Any, *, query: str = "", library: str = "", license: str = "", persona: str = "") -> list[Skill]:
    """Skills by words in name and description, library, licence, and persona (skills some workflow for
    that persona runs: one written for the skill, or a template over any skill)."""
    skills = offered_skills(user).defer("source")
    if library:
        skills = skills.filter(library=library)
    if license:
        skills = skills.filter(license=license)
    if persona:
        workflows = enabled_workflows(persona=persona)
        if not any(skill_input(w.latest_version.input_schema) for w in workflows if w.latest_version):
            named = {sv.skill_id for w in workflows if w.latest_version for sv in w.latest_version.skills.all()}
            skills = skills.filter(pk__in=named)
    words = query.lower().split()
    return [s for s in skills if all(word in f"{s.name} {s.description}".lower() for word in words)]
