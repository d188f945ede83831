"""Run inputs: defaults, validation against the workflow's JSON Schema, typing of CLI values, and a hash."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from . import file_inputs

MAX_INPUT_BYTES = 64 * 1024


class InputError(Exception):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))


def defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {name: prop.get("default") for name, prop in schema["properties"].items() if "default" in prop}


def friendly(error: ValidationError) -> str:
    v, schema = error.validator, error.schema if isinstance(error.schema, dict) else {}
    if v == "maxLength":
        return f"Use at most {schema['maxLength']} characters."
    if v == "minLength":
        return (
            "This field is required." if schema["minLength"] == 1 else f"Use at least {schema['minLength']} characters."
        )
    if v == "minimum":
        return f"Enter a number of at least {schema['minimum']}."
    if v == "maximum":
        return f"Enter a number of at most {schema['maximum']}."
    if v == "enum":
        if schema.get("format") == "skill":
            return "Choose one of the imported skills."
        return "Choose one of: " + ", ".join(map(str, schema["enum"])) + "."
    if v == "type":
        return f"Enter a value of type {schema['type']}."
    if v == "required":
        return "This field is required."
    if v == "additionalProperties":
        return "Unknown input: " + error.message.split("(")[-1].rstrip(")")
    if v in ("maxItems", "minItems", "uniqueItems"):
        return error.message
    return error.message


def skill_input(schema: dict[str, Any]) -> str | None:
    """The name of the input that chooses a skill (a workflow that is a template over any skill), if any."""
    return next((name for name, prop in schema["properties"].items() if prop.get("format") == "skill"), None)


def with_skill_choices(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with the skill input limited to the skills that exist now (templates are not skills to run)."""
    name = skill_input(schema)
    if name is None:
        return schema
    from .models import Skill

    properties = {**schema["properties"], name: {**schema["properties"][name], "enum": skill_refs(Skill.objects)}}
    return {**schema, "properties": properties}


def skill_refs(skills: Any) -> list[str]:
    """How each runnable skill is chosen: its plain name when only one library has that name, else
    `library/name` (so importing a second `pdf` never silently changes what `skill=pdf` runs)."""
    rows = list(skills.filter(is_template=False).order_by("name", "library").values_list("library", "name"))
    counts = Counter(name for _, name in rows)
    return [name if counts[name] == 1 else f"{library}/{name}" for library, name in rows]


def canonical_skill(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """`library/name` of a skill whose name no other library has is written as the plain name."""
    name = skill_input(schema)
    value = values.get(name) if name and isinstance(values, dict) else None
    if not isinstance(value, str) or "/" not in value:
        return values
    from .models import Skill

    library, _, plain = value.partition("/")
    if (
        Skill.objects.filter(name=plain, is_template=False).count() == 1
        and Skill.objects.filter(library=library, name=plain).exists()
    ):
        return {**values, str(name): plain}
    return values


def validate(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, then checked; returns the normalized inputs or raises InputError by field."""
    schema = file_inputs.for_validation(with_skill_choices(schema))  # a file input holds descriptors
    if not isinstance(values, dict):
        raise InputError({"": "Inputs must be an object of named values."})
    values = canonical_skill(schema, values)
    merged = {**defaults(schema), **values}
    if len(json.dumps(merged, default=str)) > MAX_INPUT_BYTES:
        raise InputError({"": f"The inputs are larger than {MAX_INPUT_BYTES // 1024} KiB."})
    strict = {**schema, "additionalProperties": schema.get("additionalProperties", False)}
    errors: dict[str, str] = {}
    for error in sorted(Draft202012Validator(strict).iter_errors(merged), key=lambda e: list(e.absolute_path)):
        field = str(error.absolute_path[0]) if error.absolute_path else ""
        if error.validator == "required":
            field = error.message.split("'")[1]
        errors.setdefault(field, friendly(error))
    if errors:
        raise InputError(errors)
    return merged


def coerce(schema: dict[str, Any], name: str, raw: str) -> Any:
    """A CLI value (`--input key=value`) typed by the schema."""
    props = schema["properties"]
    if name not in props:
        raise InputError({name: f"Unknown input. Known inputs: {', '.join(props)}."})
    if file_inputs.rule_of(props[name]):
        raise InputError({name: f"This input takes files: give them with --file {name}=PATH."})
    kind = props[name]["type"]
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        if kind == "boolean":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "array":
            return [item.strip() for item in raw.split(",") if item.strip()]
    except ValueError:
        raise InputError({name: f"'{raw}' is not a valid {kind}."}) from None
    return raw


def inputs_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
