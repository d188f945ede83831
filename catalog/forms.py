"""A Django form generated from a workflow's `inputs` JSON Schema, checked again with jsonschema on the server."""

from __future__ import annotations

from typing import Any

from django import forms

from providers.resolution import ModelChoice
from runs.money import format_usd

from . import inputs


def _field(prop: dict[str, Any], required: bool) -> forms.Field:
    common: dict[str, Any] = {
        "label": prop.get("title"),
        "help_text": prop.get("description", ""),
        "initial": prop.get("default"),
        "required": required,
    }
    kind = prop["type"]
    common["error_messages"] = {
        "min_value": "Enter a number of at least %(limit_value)s.",
        "max_value": "Enter a number of at most %(limit_value)s.",
        "required": "This field is required.",
        "invalid": "Enter a number." if kind in ("integer", "number") else "Enter a valid value.",
    }
    if kind == "string" and prop.get("format") == "skill":
        # Template skills are not offered; the licence is shown where students pick.
        from .inputs import skill_refs
        from .models import Skill

        # One choice per skill: the plain name, or library/name where two libraries share the name.
        skills = Skill.objects.filter(is_template=False).order_by("name", "library")
        rows = skills.values_list("description", "license")
        choices = [
            (ref, f"{ref} — {d[:70]}" + (f" (licence: {lic[:60]})" if lic else ""))
            for ref, (d, lic) in zip(skill_refs(Skill.objects), rows, strict=True)
        ]
        return forms.ChoiceField(choices=choices, **common)
    if kind == "string" and "enum" in prop:
        return forms.ChoiceField(choices=[(v, str(v).replace("-", " ").capitalize()) for v in prop["enum"]], **common)
    if kind == "string":
        widget = forms.Textarea(attrs={"rows": 5}) if prop.get("format") == "textarea" else forms.TextInput()
        return forms.CharField(
            max_length=prop.get("maxLength"), min_length=prop.get("minLength"), widget=widget, strip=True, **common
        )
    if kind == "integer":
        return forms.IntegerField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
    if kind == "number":
        return forms.FloatField(min_value=prop.get("minimum"), max_value=prop.get("maximum"), **common)
    if kind == "boolean":
        common["required"] = False  # an unticked box is a valid False
        return forms.BooleanField(**common)
    if kind == "array":
        choices = [(v, str(v).replace("-", " ").capitalize()) for v in prop["items"]["enum"]]
        return forms.MultipleChoiceField(choices=choices, widget=forms.CheckboxSelectMultiple, **common)
    raise ValueError(f"unsupported input type {kind}")


class InputsForm(forms.Form):
    """Fields from the schema; `cleaned_inputs` holds the normalized, schema-valid values."""

    def __init__(self, schema: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema
        self.cleaned_inputs: dict[str, Any] = {}
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            self.fields[name] = _field(prop, name in required)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        values = {
            name: value
            for name, value in data.items()
            if not (value in ("", None) and name not in self.schema.get("required", []))
        }
        try:
            self.cleaned_inputs = inputs.validate(self.schema, values)
        except inputs.InputError as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        return data


class ModelForm(forms.Form):
    """The model a run uses: one of those the spec allows that are connected now, checked again on submit
    (a choice made up in the browser, or one whose connection went away, is refused)."""

    model = forms.ChoiceField(
        label="Model",
        required=False,  # a form posted without it (an older page, a script) gets the default
        error_messages={"invalid_choice": "Choose one of the models offered: that one is not available (any more)."},
    )

    def __init__(
        self, choices: list[ModelChoice], *args: Any, estimates: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("prefix", "run")  # apart from the spec's own inputs, whatever they are named
        super().__init__(*args, **kwargs)
        field = self.fields["model"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(c.name, _label(c, (estimates or {}).get(c.name))) for c in choices]
        field.initial = self.default = choices[0].name
        field.help_text = (
            "The models connected for this workflow, the operator's default first. "
            "The offline demo model is not AI: it only shows how a run works."
        )

    def clean_model(self) -> str:
        return self.cleaned_data.get("model") or self.default


def _label(choice: ModelChoice, estimate: dict[str, Any] | None) -> str:
    if choice.offline:
        return f"{choice.label} — free"
    if estimate and estimate.get("test") is not None:
        return f"{choice.label} — a test run costs up to {format_usd(estimate['test'])}"
    return choice.label
