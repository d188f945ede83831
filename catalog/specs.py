"""Workflow specs: YAML files checked against catalog/spec_schema.json and a few rules a schema cannot say."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from django.conf import settings
from jsonschema import Draft202012Validator

from . import check_rules, file_inputs, templating

SCHEMA_PATH = Path(__file__).with_name("spec_schema.json")
MAX_SPEC_BYTES = 256 * 1024
log = logging.getLogger(__name__)
REFERENCE_TOOLS = {"list_references", "read_reference", "search_references", "run_script"}


class SpecError(Exception):
    """A spec that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class LoadedSpec:
    path: Path
    spec: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.spec["id"])

    @property
    def hash(self) -> str:
        return spec_hash(self.spec)


@lru_cache(maxsize=1)
def spec_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _fail(where: str, field: str, message: str) -> SpecError:
    return SpecError(f"{where}: {field}: {message}")


def validate_spec(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _fail(where, "(top level)", "a spec is a mapping of fields (id, version, title, …)")
    errors = sorted(Draft202012Validator(spec_schema()).iter_errors(spec), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        raise _fail(where, field_path(error.absolute_path), error.message)
    inputs = spec["inputs"]
    try:
        Draft202012Validator.check_schema(inputs)
    except jsonschema.SchemaError as exc:
        raise _fail(where, "inputs" + (f".{field_path(exc.path)}" if exc.path else ""), exc.message) from exc
    for name in inputs.get("required", []):
        if name not in inputs["properties"]:
            raise _fail(where, "inputs.required", f"'{name}' is required but not a property")
    skill_inputs = [name for name, prop in inputs["properties"].items() if prop.get("format") == "skill"]
    if len(skill_inputs) > 1:
        raise _fail(where, "inputs", "at most one input can choose a skill (format: skill)")
    file_rules = file_inputs.file_rules(inputs)
    for name, prop in inputs["properties"].items():
        if prop["type"] == "array" and name not in file_rules and not prop.get("items", {}).get("enum"):
            raise _fail(where, f"inputs.properties.{name}.items", "an array input needs items with an enum")
        if prop.get("format") == "skill" and prop["type"] != "string":
            raise _fail(where, f"inputs.properties.{name}.type", "a skill input is a string")
    defaults = {name: prop["default"] for name, prop in inputs["properties"].items()}
    problem = next(iter(Draft202012Validator(inputs).iter_errors(defaults)), None)
    if problem:
        raise _fail(where, f"inputs.properties.{field_path(problem.absolute_path)}.default", problem.message)
    seen: set[str] = set()
    for i, step in enumerate(spec["steps"]):
        if step["id"] in seen:
            raise _fail(where, f"steps[{i}].id", f"'{step['id']}' is used by an earlier step")
        seen.add(step["id"])
        for key in ("system", "prompt"):
            if key in step:
                _check_template(step[key], where, f"steps[{i}].{key}")
        if set(step.get("tools", [])) & REFERENCE_TOOLS and not spec["skills"] and not skill_inputs:
            raise _fail(where, f"steps[{i}].tools", "tools read skill references, but the spec names no skills")
    names = [a["name"] for a in spec["artifacts"]]
    for i, artifact in enumerate(spec["artifacts"]):
        if artifact["name"] in ("trace.json", "validation.json") or names.count(artifact["name"]) > 1:
            raise _fail(where, f"artifacts[{i}].name", f"'{artifact['name']}' is reserved or used twice")
        _check_template(artifact["template"], where, f"artifacts[{i}].template")
    for field, message in check_rules.problems(spec)[:1]:
        raise _fail(where, field, message)
    _clamp_timeouts(spec, where)
    return spec


def _clamp_timeouts(spec: dict[str, Any], where: str) -> None:
    """A mode's time limit can't be longer than a worker lets a run live (RUN_MAX_SECONDS): clamp it, loudly,
    so the run stops at its own limit with its reason instead of being killed by the worker."""
    for mode, caps in spec["caps"].items():
        if caps["timeout_seconds"] > settings.RUN_MAX_SECONDS:
            log.warning(
                "%s: caps.%s.timeout_seconds: %s s is above the workers' limit (RUN_MAX_SECONDS); using %s s",
                where,
                mode,
                caps["timeout_seconds"],
                settings.RUN_MAX_SECONDS,
            )
            caps["timeout_seconds"] = settings.RUN_MAX_SECONDS


def _check_template(source: str, where: str, field: str) -> None:
    try:
        templating.check(source)
    except templating.TemplateError as exc:
        raise _fail(where, field, str(exc)) from exc


def load_spec(path: Path) -> LoadedSpec:
    where = str(path)
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise _fail(where, "(file)", f"larger than {MAX_SPEC_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise _fail(where, "(file)", "not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "(file)"
        raise _fail(where, line, f"not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    spec = validate_spec(data, where)
    if path.stem != spec["id"]:
        raise _fail(where, "id", f"'{spec['id']}' must match the file name '{path.stem}'")
    return LoadedSpec(path=path, spec=spec)


def load_specs(directory: Path) -> list[LoadedSpec]:
    """Every spec in a folder, or SpecError listing every bad file (nothing partly loaded)."""
    loaded, problems = [], []
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        try:
            loaded.append(load_spec(path))
        except SpecError as exc:
            problems.append(str(exc))
    if problems:
        raise SpecError("\n".join(problems))
    return loaded
