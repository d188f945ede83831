"""Spec problems pinned to lines of the YAML an author wrote: what the editor and the API's 422 show."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .specs import MAX_SPEC_BYTES, SpecError, field_path, spec_schema, validate_spec

WHERE = "spec"
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based; None when the problem is not at one place
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}" if self.line else f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


def problems_in(text: str) -> tuple[dict[str, Any] | None, list[Problem]]:
    """(the spec, []) when the YAML is a valid spec, else (None or the parsed mapping, every problem found)."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        return None, [Problem(None, "(file)", f"larger than {MAX_SPEC_BYTES // 1024} KiB")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(mark.line + 1 if mark else None, "(yaml)", f"not valid YAML: {problem}")]
    if not isinstance(data, dict):
        return None, [Problem(1, "(top level)", "a spec is a mapping of fields (id, version, title, …)")]
    errors = sorted(Draft202012Validator(spec_schema()).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        return None, [
            Problem(line_of(text, list(e.absolute_path)), field_path(e.absolute_path), e.message)
            for e in errors[:MAX_PROBLEMS]
        ]
    try:
        spec = validate_spec(copy.deepcopy(data), WHERE)
    except SpecError as exc:  # the rules a schema cannot say stop at the first one
        field, _, message = str(exc).removeprefix(f"{WHERE}: ").partition(": ")
        return None, [Problem(line_of(text, parse_path(field)), field, message)]
    return spec, []


def parse_path(field: str) -> list[str | int]:
    """`steps[0].prompt` → ["steps", 0, "prompt"]."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field):
        parts.append(int(index) if index else name)
    return parts


def line_of(text: str, path: list[Any]) -> int | None:
    """The 1-based line of the deepest node of `path` that exists in the YAML (the field's own line when it is
    there, its parent's when it is missing)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child, line = value, key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
