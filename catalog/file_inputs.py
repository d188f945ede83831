"""File inputs in a workflow's JSON Schema: which inputs take files, their limits, and how a run's inputs
record them (a descriptor per file: name, size, type and SHA-256, so the inputs hash covers the contents).

A file input is `type: string, format: binary` (one file) or `type: array, items: {type: string, format:
binary}` (a list), `contentMediaType` standing for `format: binary`. Limits: `maxBytes` (per file, at most the
server's RUN_FILE_MAX_BYTES), `maxItems` (how many), `accept` (file name endings or media types, e.g.
[".csv", "application/pdf"]); `contentMediaType` alone accepts that type only.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

DEFAULT_MAX_FILES = 5
SHA256 = "^[0-9a-f]{64}$"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
DESCRIPTOR = {
    "type": "object",
    "required": ["name", "sha256", "size", "type"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "sha256": {"type": "string", "pattern": SHA256},
        "size": {"type": "integer", "minimum": 0},
        "type": {"type": "string", "maxLength": 120},
    },
}


@dataclass(frozen=True)
class FileRule:
    multiple: bool
    max_files: int
    max_bytes: int
    accept: tuple[str, ...]

    def accepts(self, name: str, media_type: str) -> bool:
        if not self.accept:
            return True
        lower = name.lower()
        return any(lower.endswith(a.lower()) if a.startswith(".") else media_type == a.lower() for a in self.accept)

    def describe_limits(self) -> str:
        kinds = f" ({', '.join(self.accept)})" if self.accept else ""
        count = f"up to {self.max_files} files" if self.multiple else "one file"
        return f"{count}{kinds}, at most {self.max_bytes // 1024**2 or 1} MiB each"


@dataclass(frozen=True)
class Upload:
    """A file given to a run: from a form, the API, `runworkflow --file`, or an earlier run."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _is_file(prop: dict[str, Any]) -> bool:
    return prop.get("format") == "binary" or "contentMediaType" in prop


def rule_of(prop: dict[str, Any]) -> FileRule | None:
    multiple = prop.get("type") == "array"
    item = prop.get("items", {}) if multiple else prop
    if not isinstance(item, dict) or not _is_file(item):
        return None
    accept = (
        prop.get("accept") or item.get("accept") or ([item["contentMediaType"]] if "contentMediaType" in item else [])
    )
    ceiling = settings.RUN_FILE_MAX_BYTES
    return FileRule(
        multiple=multiple,
        max_files=int(prop.get("maxItems", DEFAULT_MAX_FILES)) if multiple else 1,
        max_bytes=min(int(prop.get("maxBytes", item.get("maxBytes", ceiling))), ceiling),
        accept=tuple(str(a) for a in accept),
    )


def file_rules(schema: dict[str, Any]) -> dict[str, FileRule]:
    return {name: rule for name, prop in schema["properties"].items() if (rule := rule_of(prop)) is not None}


def for_validation(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each file input replaced by what a run's inputs hold for it: descriptors."""
    rules = file_rules(schema)
    if not rules:
        return schema
    properties = dict(schema["properties"])
    for name, rule in rules.items():
        kept = {k: properties[name][k] for k in ("title", "default") if k in properties[name]}
        if rule.multiple:
            properties[name] = {"type": "array", "items": DESCRIPTOR, "maxItems": rule.max_files, **kept}
        else:
            properties[name] = {"anyOf": [DESCRIPTOR, {"const": ""}, {"type": "null"}], **kept}
    return {**schema, "properties": properties}


def safe_name(name: str) -> str:
    """A file name that is only a name: no folder, no odd characters, not hidden, at most 100 characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:80] or "file"
    ext = _UNSAFE.sub("", ext)[:15]
    return f"{stem}.{ext}" if ext else stem


def media_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def describe(rule: FileRule, uploads: list[Upload]) -> tuple[list[dict[str, Any]] | dict[str, Any] | str, str]:
    """The input value for these uploads, or an error message (the limits, in plain words)."""
    if len(uploads) > rule.max_files:
        return "", f"Give at most {rule.max_files} file{'s' if rule.max_files > 1 else ''}."
    seen: set[str] = set()
    described = []
    for upload in uploads:
        name = safe_name(upload.name)
        while name in seen:
            name = f"{len(seen)}-{name}"
        seen.add(name)
        kind = media_type(name)
        if len(upload.data) > rule.max_bytes:
            return "", f"{name} is larger than {rule.max_bytes // 1024**2 or 1} MiB."
        if not rule.accepts(name, kind):
            return "", f"{name} is not a file this input takes ({', '.join(rule.accept)})."
        described.append({"name": name, "sha256": upload.sha256, "size": len(upload.data), "type": kind})
    if rule.multiple:
        return described, ""
    return (described[0] if described else ""), ""


def descriptors(schema: dict[str, Any], values: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(input name, descriptor) for every file the inputs name."""
    out = []
    for name in file_rules(schema):
        value = values.get(name)
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        out += [(name, item) for item in items if isinstance(item, dict)]
    return out
