from __future__ import annotations

import pytest

from catalog import inputs
from catalog.forms import InputsForm

SCHEMA = {
    "type": "object",
    "required": ["topic"],
    "properties": {
        "topic": {
            "type": "string",
            "title": "Topic",
            "default": "agents",
            "maxLength": 20,
            "description": "What to learn",
        },
        "notes": {"type": "string", "title": "Notes", "format": "textarea", "default": ""},
        "level": {"type": "string", "title": "Level", "enum": ["beginner", "advanced"], "default": "beginner"},
        "minutes": {"type": "integer", "title": "Minutes", "minimum": 10, "maximum": 60, "default": 30},
        "ratio": {"type": "number", "title": "Ratio", "minimum": 0, "maximum": 1, "default": 0.5},
        "quiz": {"type": "boolean", "title": "Quiz", "default": True},
        "focus": {
            "type": "array",
            "title": "Focus",
            "items": {"type": "string", "enum": ["a", "b", "c"]},
            "default": ["a"],
        },
    },
}


def test_the_form_has_a_widget_for_each_kind_of_input():
    form = InputsForm(SCHEMA)
    widgets = {name: field.widget.__class__.__name__ for name, field in form.fields.items()}
    assert widgets == {
        "topic": "TextInput",
        "notes": "Textarea",
        "level": "Select",
        "minutes": "NumberInput",
        "ratio": "NumberInput",
        "quiz": "CheckboxInput",
        "focus": "CheckboxSelectMultiple",
    }
    assert form.fields["topic"].required and not form.fields["notes"].required
    assert form.fields["topic"].initial == "agents"
    assert form.fields["topic"].help_text == "What to learn"
    assert form.fields["minutes"].max_value == 60


def test_a_valid_form_gives_schema_valid_inputs():
    data = {"topic": "tools", "level": "advanced", "minutes": "45", "ratio": "0.2", "focus": ["b", "c"]}
    form = InputsForm(SCHEMA, data)
    assert form.is_valid(), form.errors
    assert form.cleaned_inputs == {
        "topic": "tools",
        "notes": "",
        "level": "advanced",
        "minutes": 45,
        "ratio": 0.2,
        "quiz": False,
        "focus": ["b", "c"],
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"topic": "x" * 21, "level": "beginner", "minutes": "30", "ratio": "0.5"}, "topic"),
        ({"topic": "ok", "level": "expert", "minutes": "30", "ratio": "0.5"}, "level"),
        ({"topic": "ok", "level": "beginner", "minutes": "5", "ratio": "0.5"}, "minutes"),
        ({"topic": "", "level": "beginner", "minutes": "30", "ratio": "0.5"}, "topic"),
        ({"topic": "ok", "level": "beginner", "minutes": "30", "ratio": "2"}, "ratio"),
        ({"topic": "ok", "level": "beginner", "minutes": "30", "ratio": "0.5", "focus": ["z"]}, "focus"),
    ],
)
def test_a_bad_value_gets_an_error_beside_its_field(data, field):
    form = InputsForm(SCHEMA, data)
    assert not form.is_valid()
    assert field in form.errors


def test_validate_fills_defaults_and_refuses_unknown_inputs():
    assert inputs.validate(SCHEMA, {})["minutes"] == 30
    with pytest.raises(inputs.InputError) as err:
        inputs.validate(SCHEMA, {"bogus": 1})
    assert "Unknown input" in str(err.value)


def test_validate_says_what_is_wrong_in_plain_words():
    with pytest.raises(inputs.InputError) as err:
        inputs.validate(SCHEMA, {"minutes": 500, "topic": "x" * 30})
    assert err.value.errors == {"minutes": "Enter a number of at most 60.", "topic": "Use at most 20 characters."}


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("minutes", "42", 42),
        ("ratio", "0.25", 0.25),
        ("quiz", "no", False),
        ("focus", "a, c", ["a", "c"]),
        ("topic", "7", "7"),
    ],
)
def test_cli_values_are_typed_by_the_schema(name, raw, value):
    assert inputs.coerce(SCHEMA, name, raw) == value


def test_a_cli_value_of_the_wrong_type_is_refused():
    with pytest.raises(inputs.InputError, match="not a valid integer"):
        inputs.coerce(SCHEMA, "minutes", "many")


def test_the_inputs_hash_ignores_key_order():
    assert inputs.inputs_hash({"a": 1, "b": 2}) == inputs.inputs_hash({"b": 2, "a": 1})
