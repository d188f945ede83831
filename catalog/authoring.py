"""Writing workflows in the browser or the API: drafts, publishing, versions, diffs and rollback.

A workflow's `latest_version` is the published version students get. Drafts are versions with status DRAFT:
only operators see or run them (validate and test), and publishing one makes it `latest_version`. Every
published version stays, so runs keep the version they ran and a rollback is one click.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import yaml
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from settings_app import audit
from settings_app.models import AuditAction

from .models import Persona, Skill, VersionOrigin, VersionStatus, Workflow, WorkflowVersion
from .spec_lines import Problem, line_of, problems_in
from .specs import spec_hash

# Paths under /workflows/ that a workflow id may not take.
RESERVED_IDS = {"new", "check", "editor"}


class AuthoringError(Exception):
    """A spec that cannot be saved, with each problem pinned to a line of the YAML where one is known."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Checked:
    """What the editor shows as you type: the parsed spec (when it is valid) and the problems."""

    spec: dict[str, Any] | None
    problems: list[Problem]


def check(text: str, *, workflow: Workflow | None = None) -> Checked:
    """Validate YAML against the spec schema and the catalog (skills, personas, the id)."""
    spec, problems = problems_in(text)
    if spec is None:
        return Checked(None, problems)
    problems += _catalog_problems(spec, text, workflow)
    return Checked(spec if not problems else None, problems)


def _catalog_problems(spec: dict[str, Any], text: str, workflow: Workflow | None) -> list[Problem]:
    found = []
    known_skills = set(Skill.objects.filter(name__in=spec["skills"]).values_list("name", flat=True))
    for i, name in enumerate(spec["skills"]):
        if name not in known_skills:
            found.append(Problem(line_of(text, ["skills", i]), f"skills[{i}]", f"no skill named '{name}'"))
    personas = set(Persona.objects.values_list("slug", flat=True))
    for i, slug in enumerate(spec["personas"]):
        if slug not in personas:
            found.append(Problem(line_of(text, ["personas", i]), f"personas[{i}]", f"no persona '{slug}'"))
    spec_id = str(spec["id"])
    if workflow is not None and spec_id != workflow.slug:
        found.append(Problem(line_of(text, ["id"]), "id", f"must stay '{workflow.slug}' (it names the workflow)"))
    elif workflow is None and (spec_id in RESERVED_IDS or Workflow.objects.filter(slug=spec_id).exists()):
        found.append(Problem(line_of(text, ["id"]), "id", f"'{spec_id}' is taken: choose another id"))
    return found


def open_draft(workflow: Workflow) -> WorkflowVersion | None:
    """The draft being worked on: the newest draft newer than the published version."""
    after = workflow.latest_version.number if workflow.latest_version else 0
    return workflow.versions.filter(status=VersionStatus.DRAFT, number__gt=after).order_by("-number").first()


def save_draft(
    *, text: str, user: Any, workflow: Workflow | None = None, origin: str = VersionOrigin.EDITOR
) -> WorkflowVersion:
    """Save YAML as the workflow's draft (a new workflow when `workflow` is None). The open draft is saved
    over until a run uses it; then a new draft version starts. Raises AuthoringError."""
    checked = check(text, workflow=workflow)
    if checked.spec is None:
        raise AuthoringError(checked.problems)
    spec = checked.spec
    digest = spec_hash(spec)
    with transaction.atomic():
        if workflow is None:
            workflow = Workflow.objects.create(
                slug=spec["id"], title=spec["title"], summary=spec["summary"], source=f"{origin} draft"
            )
        else:
            workflow = Workflow.objects.select_for_update().get(pk=workflow.pk)
        same = workflow.versions.filter(spec_hash=digest).first()
        if same is not None and not same.is_draft:
            raise AuthoringError([Problem(None, "(spec)", f"no change: this is published version {same.number}")])
        draft = same or open_draft(workflow)
        if draft is not None and draft.runs.exists() and draft.spec_hash != digest:
            draft = None  # a run pinned it: keep it as it ran
        if draft is None:
            number = (workflow.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            draft = WorkflowVersion(workflow=workflow, number=number, status=VersionStatus.DRAFT)
        draft.spec, draft.spec_hash, draft.version = spec, digest, spec["version"]
        draft.source_text, draft.origin, draft.created_by = text, origin, user
        draft.save()
        draft.skills.set([s.latest_id for s in Skill.objects.filter(name__in=spec["skills"]) if s.latest_id])
        audit.record(AuditAction.DRAFTED, workflow, actor=user, version=draft.number, origin=origin)
    return draft


def publish(*, version: WorkflowVersion, user: Any) -> WorkflowVersion:
    """Make a draft the version students get. Earlier published versions stay for history and rollback."""
    if not version.is_draft:
        raise AuthoringError([Problem(None, "(version)", f"version {version.number} is already published")])
    with transaction.atomic():
        workflow = Workflow.objects.select_for_update().get(pk=version.workflow_id)
        before = workflow.latest_version.number if workflow.latest_version else None
        version.status, version.published_at = VersionStatus.PUBLISHED, timezone.now()
        version.save(update_fields=["status", "published_at"])
        _make_current(workflow, version)
        version.workflow = workflow  # the caller reads the fresh row (its latest_version is this version)
        audit.record(AuditAction.PUBLISHED, workflow, actor=user, version=version.number, previous=before)
    return version


def rollback(*, workflow: Workflow, number: int, user: Any) -> WorkflowVersion:
    """Make an earlier published version current again (a new publish supersedes it as usual)."""
    target = workflow.versions.filter(number=number, status=VersionStatus.PUBLISHED).first()
    if target is None:
        raise AuthoringError([Problem(None, "(version)", f"no published version {number}")])
    with transaction.atomic():
        locked = Workflow.objects.select_for_update().get(pk=workflow.pk)
        before = locked.latest_version.number if locked.latest_version else None
        _make_current(locked, target)
        target.workflow = locked
        audit.record(AuditAction.ROLLED_BACK, locked, actor=user, version=number, previous=before)
    return target


def _make_current(workflow: Workflow, version: WorkflowVersion) -> None:
    spec = version.spec
    workflow.latest_version = version
    workflow.pinned_version = None  # publishing says "this is what students get": no older pin hides it
    workflow.title, workflow.summary = spec["title"], spec["summary"]
    workflow.personas, workflow.tags = spec["personas"], spec["tags"]
    workflow.save()


def source_of(version: WorkflowVersion) -> str:
    """The YAML of a version: as written, or (for versions saved before texts were kept) dumped from the spec."""
    return version.source_text or yaml.safe_dump(version.spec, sort_keys=False, allow_unicode=True, width=110)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "hunk", "same"
    text: str


def diff(old: WorkflowVersion, new: WorkflowVersion) -> list[DiffLine]:
    """A unified diff of two versions' YAML, line by line, for the page and the API."""
    lines = difflib.unified_diff(
        source_of(old).splitlines(),
        source_of(new).splitlines(),
        fromfile=f"version {old.number}",
        tofile=f"version {new.number}",
        lineterm="",
    )
    out = []
    for line in lines:
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append(DiffLine(kind, line))
    return out


def versions_of(workflow: Workflow) -> list[WorkflowVersion]:
    return list(workflow.versions.select_related("created_by").order_by("-number"))


def starter_for_skill(skill: Skill) -> str:
    """A sensible first spec for a skill, for "New workflow from this skill": the operator adjusts it."""
    slug = f"apply-{skill.name}"[:60].strip("-")
    description = " ".join(skill.description.split())[:300]
    return STARTER.format(slug=slug, name=skill.name, description=description.replace('"', "'"))


STARTER = """\
# A workflow that uses the skill '{name}'. Adjust the inputs, the prompt and the checks, then save and test.
id: {slug}
version: "0.1.0"
title: Use {name}
summary: >-
  {description}
personas: [student]
tags: [{name}]
skills: [{name}]
models: [openai/gpt-4o-mini]
any_model: true
inputs:
  type: object
  additionalProperties: false
  required: [task]
  properties:
    task:
      type: string
      title: What do you want to do?
      format: textarea
      default: Explain the main ideas of this skill with one worked example.
      minLength: 3
      maxLength: 2000
steps:
  - id: answer
    title: Answer with the skill
    tools: [list_references, read_reference, search_references]
    system: |
      You follow the skill's instructions. Read its references before you answer.
    prompt: |
      Task: {{{{ inputs.task | untrusted }}}}
      Write the answer in Markdown with a "## Answer" section.
artifacts:
  - name: notes.md
    title: Answer
    template: |
      {{{{ steps.answer }}}}
caps:
  test:
    max_output_tokens: 600
    timeout_seconds: 120
    max_tool_calls: 4
    max_steps: 1
    budget_usd: 0.05
  full:
    max_output_tokens: 2500
    timeout_seconds: 600
    max_tool_calls: 10
    max_steps: 1
    budget_usd: 0.5
"""
