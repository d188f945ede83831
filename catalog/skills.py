"""Reading Agent Skills (a folder with SKILL.md) leniently: warn about what is odd, refuse only what is unusable.

Nothing under scripts/ is ever read or run; only Markdown and text references are kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_SKILL_BYTES = 512 * 1024
MAX_REFERENCE_BYTES = 512 * 1024
MAX_REFERENCES_TOTAL = 4 * 1024 * 1024
REFERENCE_SUFFIXES = {".md", ".txt", ".markdown"}
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_SLUG = re.compile(r"[^a-z0-9]+")


class SkillError(Exception):
    """A SKILL.md that cannot be used, with the file named."""


@dataclass
class ParsedSkill:
    name: str
    description: str
    metadata: dict[str, Any]
    body: str
    references: dict[str, str]
    path: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        payload = {"m": self.metadata, "b": self.body, "r": self.references}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def slugify(value: str) -> str:
    return _SLUG.sub("-", value.lower()).strip("-")[:120]


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def parse_skill(folder: Path) -> ParsedSkill:
    skill_md = folder / "SKILL.md"
    if skill_md.stat().st_size > MAX_SKILL_BYTES:
        raise SkillError(f"{skill_md}: larger than {MAX_SKILL_BYTES // 1024} KiB")
    text = _read_text(skill_md)
    match = _FRONT.match(text)
    if not match:
        raise SkillError(f"{skill_md}: no YAML front matter (a block between --- lines at the top)")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise SkillError(f"{skill_md}: front matter is not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(meta, dict):
        raise SkillError(f"{skill_md}: front matter is not a mapping of fields")
    warnings: list[str] = []
    description = " ".join(str(meta.get("description") or "").split())
    if not description:
        raise SkillError(f"{skill_md}: no description in the front matter")
    raw_name = str(meta.get("name") or "").strip()
    name = slugify(raw_name) or slugify(folder.name)
    if not raw_name:
        warnings.append("no name in the front matter; using the folder name")
    elif raw_name != folder.name:
        warnings.append(f"name '{raw_name}' does not match its folder '{folder.name}'")
    references, total = {}, 0
    ref_dir = folder / "references"
    if ref_dir.is_dir():
        for ref in sorted(ref_dir.rglob("*")):
            if not ref.is_file() or ref.is_symlink() or ref.suffix.lower() not in REFERENCE_SUFFIXES:
                continue
            size = ref.stat().st_size
            if size > MAX_REFERENCE_BYTES or total + size > MAX_REFERENCES_TOTAL:
                warnings.append(f"reference {ref.relative_to(folder)} skipped: too large")
                continue
            total += size
            references[str(ref.relative_to(folder))] = _read_text(ref)
    metadata = {k: v for k, v in meta.items() if k not in ("name", "description")}
    return ParsedSkill(
        name=name,
        description=description,
        metadata=json.loads(json.dumps(metadata, default=str)),
        body=text[match.end() :].strip(),
        references=references,
        path=folder,
        warnings=warnings,
    )


def find_skill_folders(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("SKILL.md") if p.is_file() and not p.is_symlink())
