"""Writes to the catalog: loading skills and workflow specs into versioned rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Max
from django.utils import timezone

from .models import (
    Persona,
    Skill,
    SkillVersion,
    VersionOrigin,
    VersionStatus,
    Workflow,
    WorkflowFileProblem,
    WorkflowVersion,
)
from .skill_archive import extract, library_folder
from .skills import ParsedSkill, SkillError, find_skill_folders, parse_skill
from .specs import LoadedSpec, SpecError, load_spec


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path: field: what is wrong", one per file set aside
    kept: list[str] = field(default_factory=list)  # files that did not replace an operator's published version

    def summary(self) -> str:
        text = (
            f"{len(self.created)} new, {len(self.updated)} with a new version, {len(self.unchanged)} unchanged "
            f"workflows; {len(self.skills)} skills"
        )
        return text + (f"; {len(self.problems)} file(s) set aside" if self.problems else "")


def save_skill(parsed: ParsedSkill, *, library: str = "") -> tuple[SkillVersion, bool]:
    """Create or update the skill of this name in this library (another library's skill of the same name is
    another skill, never touched); a changed content adds a version, the old ones stay. Returns
    (version, changed)."""
    skill, _ = Skill.objects.get_or_create(
        library=library[:200], name=parsed.name,
        defaults={"description": parsed.description, "source": str(parsed.path)},
    )  # fmt: skip
    version, created = SkillVersion.objects.get_or_create(
        skill=skill,
        content_hash=parsed.content_hash,
        defaults={
            "metadata": parsed.metadata,
            "body": parsed.body,
            "references": parsed.references,
            "assets": parsed.assets,
            "warnings": parsed.warnings,
        },
    )
    fields = {
        "description": parsed.description,
        "source": str(parsed.path),
        "license": parsed.license,
        "is_template": parsed.is_template,
        "latest_id": version.pk,
    }
    if created or any(getattr(skill, k) != v for k, v in fields.items()):
        for key, value in fields.items():
            setattr(skill, key, value)
        skill.save()
    return version, created


def _save_spec(loaded: LoadedSpec, skills: dict[str, SkillVersion], report: SyncReport) -> None:
    """A file's spec becomes a published version, unless an operator published from the editor or the API
    since: then the file's new content waits as a draft, and the report says so (nothing is overwritten)."""
    spec = loaded.spec
    workflow, created = Workflow.objects.get_or_create(
        slug=loaded.id,
        defaults={"title": spec["title"], "summary": spec["summary"], "source": str(loaded.path)},
    )
    current = workflow.latest_version
    version = workflow.versions.filter(spec_hash=loaded.hash).first()
    operator_owns = current is not None and current.origin != VersionOrigin.FILE
    if version is not None and (version == current or operator_owns or version.is_draft):
        report.unchanged.append(loaded.id)
        return
    if version is None:
        number = (workflow.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = WorkflowVersion.objects.create(
            workflow=workflow,
            number=number,
            version=spec["version"],
            spec=spec,
            spec_hash=loaded.hash,
            source_text=_text_of(loaded.path),
            status=VersionStatus.DRAFT if operator_owns else VersionStatus.PUBLISHED,
            published_at=None if operator_owns else timezone.now(),
        )
        version.skills.set({skills[name] for name in spec["skills"]})
    if operator_owns:
        assert current is not None
        report.kept.append(
            f"{loaded.id}: the file's new content is draft version {version.number}; version {current.number}, "
            "published in the editor, stays current (publish the draft there to use the file)"
        )
        return
    (report.created if created else report.updated).append(loaded.id)
    workflow.title = spec["title"]
    workflow.summary = spec["summary"]
    workflow.personas = spec["personas"]
    workflow.tags = spec["tags"]
    workflow.source = str(loaded.path)
    workflow.latest_version = version
    workflow.save()


def _text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError):
        return ""


def _load_each(directory: Path) -> tuple[list[LoadedSpec], dict[str, str]]:
    """Every spec that loads, and for each file that does not, why (one broken file sets aside that file only)."""
    loaded, problems = [], {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            loaded.append(load_spec(path))
        except SpecError as exc:
            problems[str(path)] = str(exc)
    return loaded, problems


def spec_skills(own: dict[str, SkillVersion]) -> dict[str, SkillVersion]:
    """What a spec's `skills:` entries may name: the project's own skills by name, every skill as
    `library/name`, and other skills by plain name where no other library has that name."""
    found = {f"{sv.skill.library}/{name}" if sv.skill.library else name: sv for name, sv in own.items()}
    found.update(own)
    others = [s for s in Skill.objects.select_related("latest").exclude(latest=None) if s.latest not in own.values()]
    counts = Counter(s.name for s in others)
    for skill in others:
        assert skill.latest is not None
        found.setdefault(skill.ref, skill.latest)
        if counts[skill.name] == 1:
            found.setdefault(skill.name, skill.latest)
    return found


def sync_workflows(*, workflows_dir: Path, skills_dir: Path | None = None) -> SyncReport:
    """Load the project's skills and every spec that is usable. A file with a problem is skipped, and the
    problems are kept in WorkflowFileProblem (replacing the last sync's) for operators to see in the admin."""
    specs, problems = _load_each(workflows_dir)
    parsed: list[ParsedSkill] = []
    library = skills_dir.name if skills_dir else ""
    for folder in find_skill_folders(skills_dir) if skills_dir and skills_dir.is_dir() else []:
        try:
            parsed.append(parse_skill(folder))
        except SkillError as exc:
            problems[str(folder / "SKILL.md")] = str(exc)
    report = SyncReport()
    Persona.ensure_defaults()  # the five built-in personas exist whatever the specs say
    with transaction.atomic():
        known_personas = set(Persona.objects.values_list("slug", flat=True))
        skills = spec_skills({p.name: save_skill(p, library=library)[0] for p in parsed})
        for loaded in specs:
            unknown = sorted(set(loaded.spec["personas"]) - known_personas)
            missing = [name for name in loaded.spec["skills"] if name not in skills]
            if unknown:
                problems[str(loaded.path)] = (
                    f"{loaded.path}: personas: no persona {', '.join(unknown)} (add it in the admin first)"
                )
            elif missing:
                problems[str(loaded.path)] = (
                    f"{loaded.path}: skills: no skill named {', '.join(missing)} (import it first)"
                )
            else:
                _save_spec(loaded, skills, report)
        report.skills = sorted({sv.skill.ref for sv in skills.values()})
        WorkflowFileProblem.objects.all().delete()
        WorkflowFileProblem.objects.bulk_create(
            WorkflowFileProblem(path=path[:500], error=error) for path, error in sorted(problems.items())
        )
    report.problems = [problems[path] for path in sorted(problems)]
    return report


@dataclass
class ImportReport:
    found: int = 0
    imported: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "path: reason"
    warnings: list[str] = field(default_factory=list)  # "path: warning"
    lines: list[str] = field(default_factory=list)  # one per skill, in folder order

    def summary(self) -> str:
        return (
            f"{self.found} skills found: {len(self.imported)} imported, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.skipped)} skipped"
        )


def _import_one(folder: Path, library: str, seen: dict[str, Path], report: ImportReport) -> None:
    try:
        parsed = parse_skill(folder)
    except SkillError as exc:
        report.skipped.append(str(exc))
        report.lines.append(f"skipped    {folder.name}: {str(exc).removeprefix(str(folder / 'SKILL.md') + ': ')}")
        return
    if parsed.name in seen:
        reason = f"the name '{parsed.name}' is used by {seen[parsed.name]}"
        report.skipped.append(f"{folder / 'SKILL.md'}: {reason}")
        report.lines.append(f"skipped    {folder.name}: {reason}")
        return
    seen[parsed.name] = folder
    existed = Skill.objects.filter(library=library[:200], name=parsed.name).exists()
    elsewhere = sorted(
        Skill.objects.filter(name=parsed.name).exclude(library=library[:200]).values_list("library", flat=True)
    )
    try:
        with transaction.atomic():  # one skill at a time: a database refusal skips this skill only
            _, changed = save_skill(parsed, library=library)
    except (DatabaseError, UnicodeError) as exc:
        reason = f"the database refused it ({str(exc).splitlines()[0][:200]})"
        report.skipped.append(f"{folder / 'SKILL.md'}: {reason}")
        report.lines.append(f"skipped    {parsed.name}: {reason}")
        return
    report.warnings += [f"{folder / 'SKILL.md'}: {w}" for w in parsed.warnings]
    outcome = "updated" if existed and changed else "unchanged" if existed else "imported"
    ref = f"{library[:200]}/{parsed.name}" if library else parsed.name
    getattr(report, outcome).append(parsed.name)
    note = f" ({len(parsed.warnings)} warning{'s' if len(parsed.warnings) != 1 else ''})" if parsed.warnings else ""
    if elsewhere:  # both kept: say so, and how to choose each
        others = ", ".join(f"{lib}/{parsed.name}" if lib else parsed.name for lib in elsewhere)
        note += f"; another library has this name too ({others}): both are kept, choose this one as {ref}"
    report.lines.append(f"{outcome:<10} {parsed.name}{note}")


def import_skills(root: Path, *, library: str = "") -> ImportReport:
    """Import every skill under root. Re-importing updates changed skills and keeps their earlier versions.
    Each skill is saved on its own, so one unusable SKILL.md (or one the database refuses) skips that skill
    only."""
    report = ImportReport()
    folders = find_skill_folders(root)
    report.found = len(folders)
    seen: dict[str, Path] = {}
    for folder in folders:
        _import_one(folder, library or root.resolve().name, seen, report)
    return report


def import_archive(*, upload: IO[bytes], filename: str) -> ImportReport:
    """Unpack an uploaded zip of a skill library under DATA_DIR (kept: it is the skills' source for re-imports)
    and import it. Raises skill_archive.ArchiveError when the zip is refused."""
    dest, library = library_folder(Path(settings.DATA_DIR) / "skill-libraries", filename)
    extract(upload, dest)
    return import_skills(dest, library=library)
