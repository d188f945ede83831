"""What Validate checks in a spec's `checks:` block beyond its JSON Schema (catalog/spec_schema.json): the
steps and inputs it names exist, its patterns compile, its JSON Schema is one, its names are unique."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

MAX_PATTERN_CHARS = 300


def check_name(check: dict[str, Any]) -> str:
    return str(check.get("name") or check["kind"])


def problems(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each problem of the checks block, first one first; [] when it is sound."""
    found: list[tuple[str, str]] = []
    steps = [step["id"] for step in spec["steps"]]
    inputs = spec["inputs"]["properties"]
    seen: set[str] = set()
    for i, check in enumerate(spec.get("checks") or []):
        where = f"checks[{i}]"
        name = check_name(check)
        if name in seen:
            found.append((f"{where}.name", f"'{name}' is used by an earlier check: give each check its own name"))
        seen.add(name)
        if "step" in check and check["step"] not in steps:
            found.append((f"{where}.step", f"'{check['step']}' is not a step of this workflow ({', '.join(steps)})"))
        when = check.get("when")
        if when and when["input"] not in inputs:
            found.append((f"{where}.when.input", f"'{when['input']}' is not an input of this workflow"))
        for field in ("must_match", "must_not_match"):
            for j, pattern in enumerate(check.get(field) or []):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    found.append((f"{where}.{field}[{j}]", f"not a regular expression ({exc})"))
        if check["kind"] == "json_schema":
            try:
                Draft202012Validator.check_schema(check["schema"])
            except jsonschema.SchemaError as exc:
                found.append((f"{where}.schema", exc.message))
        if check["kind"] == "length":
            low, high = check.get("min_words"), check.get("max_words")
            if low is None and high is None:
                found.append((where, "a length check needs min_words, max_words or both"))
            elif low is not None and high is not None and low > high:
                found.append((f"{where}.min_words", f"{low} is above max_words {high}"))
        if check["kind"] == "patterns" and not (check.get("must_match") or check.get("must_not_match")):
            found.append((where, "a patterns check needs must_match, must_not_match or both"))
        if check["kind"] == "rubric":
            names = [c["name"] for c in check["criteria"]]
            if len(set(names)) != len(names):
                found.append((f"{where}.criteria", "each criterion needs its own name"))
        if check["kind"] == "references" and not (spec["skills"] or _has_skill_input(inputs)):
            found.append((f"{where}.kind", "a references check counts the skills' files, but the spec names no skills"))
    return found


def _has_skill_input(inputs: dict[str, Any]) -> bool:
    return any(prop.get("format") == "skill" for prop in inputs.values())
