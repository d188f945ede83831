"""Reading Agent Skills (agentskills.io): a folder with SKILL.md and any supporting files.

Lenient by design: a rule of the specification that is broken gives a warning, and only what cannot be
used (no SKILL.md, unreadable front matter, too large) is refused. Every text file in the folder becomes a
resource the tools can read; binary files are listed, never read; nothing is ever executed. Every file is
opened without following symlinks and checked by real path to be inside the skill folder.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import posixpath
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import skill_rules

MAX_SKILL_BYTES = 512 * 1024
MAX_RESOURCES_TOTAL = 4 * 1024 * 1024
# Reads are paged (a long file is read a part at a time), so one file may use the skill's whole allowance.
MAX_RESOURCE_BYTES = MAX_RESOURCES_TOTAL
MAX_FILES = 500
# The prompt gets the body up to this many characters; the rest is read through the tools as SKILL.md#part-N,
# in parts that one read returns whole.
PROMPT_BODY_CHARS = 8000
PART_CHARS = 6000
PART_PREFIX = "SKILL.md#part-"
BINARY_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".ico", ".bmp", ".tif", ".tiff", ".pdf", ".zip", ".gz", ".tgz",
    ".bz2", ".xz", ".7z", ".tar", ".whl", ".so", ".dll", ".exe", ".bin", ".pt", ".pth", ".onnx", ".safetensors",
    ".ttf", ".otf", ".woff", ".woff2", ".mp3", ".wav", ".ogg", ".mp4", ".mov", ".webm", ".docx", ".xlsx",
    ".pptx", ".pyc", ".db", ".sqlite", ".parquet", ".npy", ".npz", ".pkl",
}  # fmt: skip
IGNORED_NAMES = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".DS_Store", ".ipynb_checkpoints"}
_FRONT = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_SLUG = re.compile(r"[^a-z0-9]+")
_NOT_NAME = re.compile(r"[\W_]+")  # not a letter or digit of any script
_CODE_BLOCK = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


class SkillError(Exception):
    """A SKILL.md that cannot be used, with the file named."""


@dataclass
class ParsedSkill:
    name: str
    description: str
    metadata: dict[str, Any]
    body: str
    references: dict[str, str]  # every readable text file but SKILL.md: {relative path: text}
    path: Path
    assets: list[dict[str, Any]] = field(default_factory=list)  # listed, never read: [{path, size, type, note}]
    warnings: list[str] = field(default_factory=list)
    is_template: bool = False

    @property
    def license(self) -> str:
        return skill_rules.license_of(self.metadata, self.references, self.assets)

    @property
    def content_hash(self) -> str:
        payload = {"m": self.metadata, "b": self.body, "r": self.references, "a": self.assets}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def slugify(value: str) -> str:
    return _SLUG.sub("-", value.lower()).strip("-")[:120]


MAX_NAME_CHARS = 120  # the column; the specification's 64 is a warning (skill_rules)


def skill_name(value: str) -> str:
    """A skill's name as the Agent Skills specification has it: NFKC-normalized Unicode, lower case, letters
    and digits of any script joined by single hyphens (`données-outils`, `技能`). Anything else between
    them becomes one hyphen; '' when nothing usable is left."""
    text = unicodedata.normalize("NFKC", value).lower()
    return "-".join(w for w in _NOT_NAME.split(text) if w)


def _name_problem(raw: str, name: str) -> str | None:
    """Why a front-matter name cannot name a skill, or None."""
    if not name:
        return f"the name '{raw}' has no letters or digits to name the skill"
    if len(name) > MAX_NAME_CHARS:
        return f"the name '{name[:40]}…' is {len(name)} characters; at most {MAX_NAME_CHARS} can name a skill"
    return None


def _decode(data: bytes) -> str:
    """Strict UTF-8 (a BOM allowed), line ends normalized. Raises UnicodeDecodeError."""
    return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")


def _inside(path: Path, root_real: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), root_real]) == root_real


def _read_contained(path: Path, root_real: str, limit: int) -> bytes:
    """The bytes of a regular file inside the skill, opened without following a symlink (no swap between
    the check and the read). Raises OSError with a reason."""
    if not _inside(path, root_real):
        raise OSError("its real path is outside the skill folder")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"larger than {limit // 1024} KiB")
    return data


def _walk(folder: Path, warnings: list[str]) -> list[Path]:
    """The files of a skill: no symlinks (file or folder), no nested skill, no VCS or cache folders."""
    files: list[Path] = []
    for current, dirs, names in os.walk(folder, followlinks=False):
        here = Path(current)
        kept = []
        for name in sorted(dirs):
            sub = here / name
            if name in IGNORED_NAMES:
                continue
            if sub.is_symlink():
                warnings.append(f"folder {sub.relative_to(folder)} skipped: it is a symlink")
            elif (sub / "SKILL.md").exists():
                continue  # a skill of its own, imported on its own
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(names):
            path = here / name
            if name in IGNORED_NAMES or (here == folder and name == "SKILL.md"):
                continue
            if path.is_symlink():
                warnings.append(f"{path.relative_to(folder)} skipped: it is a symlink")
                continue
            files.append(path)
    return files


def _is_binary_name(path: Path) -> bool:
    kind = mimetypes.guess_type(path.name)[0] or ""
    return path.suffix.lower() in BINARY_SUFFIXES or kind.split("/")[0] in ("image", "audio", "video", "font")


def _resources(folder: Path, root_real: str, warnings: list[str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    texts: dict[str, str] = {}
    assets: list[dict[str, Any]] = []
    total = 0
    files = _walk(folder, warnings)
    if len(files) > MAX_FILES:
        warnings.append(f"{len(files)} files: only the first {MAX_FILES} are kept")
        files = files[:MAX_FILES]
    for path in files:
        rel = path.relative_to(folder).as_posix()
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            warnings.append(f"a file name that is not valid UTF-8 in {path.parent.relative_to(folder)} skipped")
            continue
        size = path.lstat().st_size
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if _is_binary_name(path):
            assets.append({"path": rel, "size": size, "type": kind})
            continue
        if size > MAX_RESOURCE_BYTES or total + size > MAX_RESOURCES_TOTAL:
            limit = "the per-file limit" if size > MAX_RESOURCE_BYTES else "the skill's total limit"
            warnings.append(f"{rel} not readable: {size // 1024} KiB is past {limit}")
            assets.append({"path": rel, "size": size, "type": kind, "note": "too large to read"})
            continue
        try:
            data = _read_contained(path, root_real, MAX_RESOURCE_BYTES)
        except OSError as exc:
            warnings.append(f"{rel} skipped: {exc.strerror or exc}")
            continue
        if b"\x00" in data:
            if path.suffix:  # a text name holding NUL bytes: PostgreSQL can't store it, and it is not text
                warnings.append(f"{rel} not readable: it contains NUL bytes")
            assets.append({"path": rel, "size": size, "type": kind, "note": "binary"})
            continue
        try:
            texts[rel] = _decode(data)
        except UnicodeDecodeError:
            warnings.append(f"{rel} not readable: it is not valid UTF-8 text")
            assets.append({"path": rel, "size": size, "type": kind, "note": "not UTF-8"})
            continue
        total += size
    return texts, assets


def _unstorable(value: Any) -> bool:
    """A NUL or a lone surrogate (YAML escapes can make both): no database stores them as text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return "\x00" in value
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def parse_skill(folder: Path) -> ParsedSkill:
    skill_md = folder / "SKILL.md"
    if folder.is_symlink() or skill_md.is_symlink():
        raise SkillError(f"{skill_md}: the skill folder or its SKILL.md is a symlink")
    root_real = os.path.realpath(folder)
    try:
        raw = _read_contained(skill_md, root_real, MAX_SKILL_BYTES)
    except FileNotFoundError:
        raise SkillError(f"{skill_md}: no SKILL.md in the folder") from None
    except OSError as exc:
        raise SkillError(f"{skill_md}: {exc.strerror or exc}") from None
    if b"\x00" in raw:
        raise SkillError(f"{skill_md}: it contains NUL bytes")
    try:
        text = _decode(raw)
    except UnicodeDecodeError:
        raise SkillError(f"{skill_md}: not valid UTF-8 text") from None
    match = _FRONT.match(text)
    if not match:
        raise SkillError(f"{skill_md}: no YAML front matter (a block between --- lines at the top)")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise SkillError(f"{skill_md}: front matter is not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(meta, dict):
        raise SkillError(f"{skill_md}: front matter is not a mapping of fields")
    meta = json.loads(json.dumps(meta, default=str))
    if _unstorable(meta):
        raise SkillError(f"{skill_md}: the front matter holds a NUL or an invalid character")
    description = " ".join(str(meta.get("description") or "").split())
    if not description:
        raise SkillError(f"{skill_md}: no description in the front matter")
    raw_name = str(meta.get("name") or "").strip() or folder.name
    name = skill_name(raw_name)
    problem = _name_problem(raw_name, name)
    if problem:
        raise SkillError(f"{skill_md}: {problem}")
    warnings = skill_rules.check(meta, folder.name)
    body = text[match.end() :].strip()
    references, assets = _resources(folder, root_real, warnings)
    warnings += broken_links(body, references, assets)
    is_template = skill_rules.looks_like_template(folder.name, raw_name, description)
    if is_template:
        warnings.append("looks like a template or example skill: not offered to students")
    return ParsedSkill(
        name=name,
        description=description,
        metadata={k: v for k, v in meta.items() if k not in ("name", "description")},
        body=body,
        references=references,
        path=folder,
        assets=assets,
        warnings=warnings,
        is_template=is_template,
    )


def normalize_path(path: str) -> str | None:
    """A resource path as a model or a link writes it (`./forms.md`, `reference/../forms.md#usage`), made
    canonical; None for anything that would leave the skill (absolute, `..`) or is empty."""
    path = path.strip().replace("\\", "/")
    if not path.startswith(PART_PREFIX):
        path = path.split("#", 1)[0].split("?", 1)[0]
    if not path or path.startswith("/") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path):
        return None
    clean = posixpath.normpath(path)
    if clean == ".." or clean.startswith("../") or clean == ".":
        return None
    return clean


def broken_links(body: str, references: dict[str, str], assets: list[dict[str, Any]]) -> list[str]:
    """Relative links in SKILL.md that lead to no file of the skill: said at import, not found at run time."""
    known = set(references) | {a["path"] for a in assets}
    missing = []
    prose = _INLINE_CODE.sub("", _CODE_BLOCK.sub("", body))  # code shows `f(x)[y](z)`, not links
    for target in _LINK.findall(prose):
        if target.startswith("#") or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue
        clean = normalize_path(target)
        if clean is None:
            missing.append(f"SKILL.md links to {target}, outside the skill")
        elif clean not in known and not any(k.startswith(clean.rstrip("/") + "/") for k in known):
            missing.append(f"SKILL.md links to {clean}, which is not in the skill")
    return sorted(set(missing))


def body_parts(body: str, first: int = PROMPT_BODY_CHARS, rest: int = PART_CHARS) -> list[str]:
    """The body cut into parts (the first up to `first` characters, the others up to `rest`), at a heading,
    else a blank line, else a line end in the second half of the part. Part 1 goes into the prompt; the
    others are resources."""
    parts: list[str] = []
    remaining = body
    budget = first
    while len(remaining) > budget:
        window = remaining[: budget + 1]
        cut = max(window.rfind("\n#"), 0)
        if cut < budget // 2:
            cut = window.rfind("\n\n")
        if cut < budget // 2:
            cut = window.rfind("\n")
        if cut < budget // 2:
            cut = budget
        parts.append(remaining[:cut].rstrip())
        remaining = remaining[cut:].lstrip("\n")
        budget = rest
    parts.append(remaining)
    return parts


def find_skill_folders(root: Path) -> list[Path]:
    """Folders holding a SKILL.md under root; symlinked folders are not walked into."""
    found = []
    for current, dirs, names in os.walk(root, followlinks=False):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES)
        if "SKILL.md" in names:
            found.append(here)
        # A symlinked skill folder is found too, so that the import names it and says why it is refused.
        found += [here / d for d in dirs if (here / d).is_symlink() and (here / d / "SKILL.md").exists()]
    return sorted(found)
