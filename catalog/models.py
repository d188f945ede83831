from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any

from django.conf import settings
from django.db import models

from .skills import PART_PREFIX, body_parts

DEFAULT_PERSONAS = [
    ("student", "Student", "Learns a topic from expert skills without prompt engineering."),
    ("researcher", "Researcher", "Plans experiments, reads papers, maps the literature."),
    ("ml-engineer", "ML engineer", "Builds, debugs, evaluates and deploys models."),
    ("educator", "Educator", "Teaches skills to others: lessons, quizzes, workshops."),
    ("tech-lead", "Tech lead", "Decides for a team: adoption, risk, cost, onboarding."),
]


class Persona(models.Model):
    """Who a workflow is for. Operators edit names, descriptions and order in the admin, and can add more."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def ensure_defaults(cls) -> None:
        for position, (slug, name, description) in enumerate(DEFAULT_PERSONAS):
            cls.objects.get_or_create(
                slug=slug, defaults={"name": name, "description": description, "position": position}
            )


class Skill(models.Model):
    """An Agent Skill (a folder with SKILL.md). Each distinct content is kept as a SkillVersion. A skill is
    identified by its library and its name (`library/name`): two libraries may each have a `pdf`."""

    name = models.CharField(max_length=120, help_text="As SKILL.md names it: Unicode lowercase letters, digits, -.")
    description = models.TextField()
    source = models.CharField(max_length=500, help_text="Where it was loaded from.")
    library = models.CharField(max_length=200, blank=True, help_text="The library (folder or zip) it came from.")
    license = models.CharField(max_length=200, blank=True, help_text="As the skill declares it, or its bundled file.")
    is_template = models.BooleanField(
        default=False, help_text="A template or example skill: kept, but not offered to students."
    )
    latest = models.ForeignKey("SkillVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "library"]
        constraints = [models.UniqueConstraint(fields=["library", "name"], name="unique_skill_in_library")]

    def __str__(self) -> str:
        return self.ref

    def get_absolute_url(self) -> str:
        """/skills/<name>/ when no other library has the name (catalog.access.offered_skills counts them as
        `name_uses`), else /skills/<library>/<name>/; both forms resolve."""
        from django.urls import reverse

        if self.library and getattr(self, "name_uses", 2) != 1:
            return reverse("catalog:library_skill", args=[self.library, self.name])
        return reverse("catalog:skill", args=[self.name])

    @property
    def ref(self) -> str:
        """The full reference: `library/name` (just the name for a skill loaded without a library)."""
        return f"{self.library}/{self.name}" if self.library else self.name


class SkillVersion(models.Model):
    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="versions")
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict)
    body = models.TextField()
    # {relative path: text} of every readable text file of the skill but SKILL.md, read by the tools.
    references = models.JSONField(default=dict)
    # [{path, size, type, note?}] of files listed but never read (binary, too large, not UTF-8).
    assets = models.JSONField(default=list)
    # What the import found odd (the specification's rules, skipped files, broken links), shown on the page.
    warnings = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["skill", "content_hash"], name="unique_skill_content")]

    def __str__(self) -> str:
        return f"{self.skill.name}@{self.content_hash[:8]}"

    @cached_property
    def parts(self) -> list[str]:
        """The body in parts: part 1 goes into the prompt, the others are read as SKILL.md#part-N."""
        return body_parts(self.body)

    @property
    def prompt_body(self) -> str:
        """The body as the prompt gets it: part 1, and where the rest is if there is more (never cut silently)."""
        if len(self.parts) == 1:
            return self.body
        rest = sum(len(p) for p in self.parts[1:])
        return (
            f"{self.parts[0]}\n\n[SKILL.md continues: {rest} more characters in parts 2-{len(self.parts)}. "
            f"Read them with read_reference, path '{PART_PREFIX}2' and so on.]"
        )

    @property
    def resources(self) -> dict[str, str]:
        """Every readable text of the skill: its files, and the parts of a long SKILL.md body."""
        extra = {f"{PART_PREFIX}{n}": text for n, text in enumerate(self.parts[1:], 2)}
        return {**self.references, **extra}


class Workflow(models.Model):
    slug = models.SlugField(max_length=120, unique=True)
    title = models.CharField(max_length=200)
    summary = models.TextField()
    personas = models.JSONField(default=list)
    tags = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    latest_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pinned_version = models.ForeignKey(
        "WorkflowVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Runs use this version instead of the latest one while it is set.",
    )
    source = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    @property
    def current_version(self) -> WorkflowVersion | None:
        """The version new runs use: the pinned one if an operator pinned one, else the latest."""
        return self.pinned_version or self.latest_version


class VersionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"  # operators only: students never see or run it
    PUBLISHED = "published", "Published"


class VersionOrigin(models.TextChoices):
    FILE = "file", "workflows/ file"
    EDITOR = "editor", "Editor"
    API = "api", "API"


class WorkflowVersion(models.Model):
    """A snapshot of a spec. Runs point at the exact version they ran. A published version never changes; a
    draft may be saved over until a run uses it or it is published."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    version = models.CharField(max_length=40, help_text="The spec's own version string.")
    spec = models.JSONField()
    spec_hash = models.CharField(max_length=64)
    skills = models.ManyToManyField(SkillVersion, blank=True, related_name="workflow_versions")
    status = models.CharField(max_length=12, choices=VersionStatus.choices, default=VersionStatus.PUBLISHED)
    origin = models.CharField(max_length=12, choices=VersionOrigin.choices, default=VersionOrigin.FILE)
    # The YAML as its author wrote it (comments and order kept), shown in the editor and in diffs.
    source_text = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="unique_workflow_version_number"),
            models.UniqueConstraint(fields=["workflow", "spec_hash"], name="unique_workflow_spec_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.slug} v{self.number} ({self.version})"

    @property
    def input_order(self) -> list[str]:
        """The input names as the author ordered them (lists read only `source_text`, not the whole spec)."""
        return _property_order(self.source_text)

    @property
    def input_schema(self) -> dict:
        """The inputs' JSON Schema with its properties in the order the author wrote them: PostgreSQL's jsonb
        does not keep an object's key order, so the order is read from the version's own source text."""
        schema = self.spec["inputs"]
        order = self.input_order
        properties = schema.get("properties") or {}
        if not order or list(properties) == order:
            return schema
        ranked = {name: properties[name] for name in order if name in properties}
        return {**schema, "properties": {**ranked, **properties}}

    def caps(self, mode: str) -> dict:
        return self.spec["caps"][mode]

    @property
    def is_draft(self) -> bool:
        return self.status == VersionStatus.DRAFT


@lru_cache(maxsize=256)
def _property_order(source_text: str) -> list[str]:
    """The input names in the order a spec's YAML lists them ([] when there is no readable source)."""
    import yaml

    try:
        data: Any = yaml.safe_load(source_text) if source_text else None
        properties = data["inputs"]["properties"]
        return [str(name) for name in properties] if isinstance(properties, dict) else []
    except (yaml.YAMLError, TypeError, KeyError):
        return []


class WorkflowFileProblem(models.Model):
    """A workflow file the last sync could not load, with why: listed for operators, the others still load."""

    path = models.CharField(max_length=500, unique=True)
    error = models.TextField()
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["path"]
        verbose_name = "workflow file problem"

    def __str__(self) -> str:
        return self.path
