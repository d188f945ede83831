"""A Django form generated from a workflow's `inputs` JSON Schema, checked again with jsonschema on the server."""

from __future__ import annotations

from typing import Any

from django import forms

from providers.resolution import ModelChoice
from runs.money import format_usd

from . import file_inputs, inputs


def _words(text: str, limit: int) -> str:
    """The text whole if it fits `limit` characters, else its first whole words within it and an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.—-") + "…"


def _field(prop: dict[str, Any], required: bool) -> forms.Field:
    common: dict[str, Any] = {
        "label": prop.get("title"),
        "help_text": prop.get("description", ""),
        "initial": prop.get("default"),
        "required": required,
    }
    rule = file_inputs.rule_of(prop)
    if rule is not None:
        common.update(initial=None, help_text=f"{common['help_text']} ({rule.describe_limits()})".strip())
        accept = ",".join(rule.accept)
        attrs = {"multiple": True} if rule.multiple else {}
        return FilesField(widget=FilesInput(attrs={**attrs, **({"accept": accept} if accept else {})}), **common)
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

        # One choice per skill: the plain name, or library/name where two libraries share the name, with the
        # start of its description (whole words, so the chosen label fits the box; the skill's page has it all).
        skills = Skill.objects.filter(is_template=False).order_by("name", "library")
        rows = skills.values_list("description", "license")
        choices = [
            (ref, f"{ref} — {_words(d, 48)}" + (f" (licence: {lic[:60]})" if lic else ""))
            for ref, (d, lic) in zip(skill_refs(Skill.objects), rows, strict=True)
        ]
        return forms.ChoiceField(choices=choices, widget=forms.Select(attrs={"class": "full"}), **common)
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


class FilesInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class FilesField(forms.FileField):
    """One or several uploaded files, as a list (checked against the input's limits in InputsForm.clean)."""

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if self.required and not files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


class InputsForm(forms.Form):
    """Fields from the schema; `cleaned_inputs` holds the normalized, schema-valid values and `cleaned_files`
    the uploaded files' bytes by SHA-256 (for runs.services.start_run)."""

    def __init__(self, schema: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema = schema
        self.cleaned_inputs: dict[str, Any] = {}
        self.cleaned_files: dict[str, file_inputs.Upload] = {}
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            self.fields[name] = _field(prop, name in required)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        rules = file_inputs.file_rules(self.schema)
        values = {
            name: value
            for name, value in data.items()
            if name not in rules and not (value in ("", None) and name not in self.schema.get("required", []))
        }
        for name, rule in rules.items():
            uploads = self._uploads(name, rule, data.get(name) or [])
            if uploads is None:
                return data
            value, problem = file_inputs.describe(rule, uploads)
            if problem:
                self.add_error(name, problem)
                return data
            values[name] = value
            self.cleaned_files.update({u.sha256: u for u in uploads})
        try:
            self.cleaned_inputs = inputs.validate(self.schema, values)
        except inputs.InputError as exc:
            for field, message in exc.errors.items():
                self.add_error(field if field in self.fields else None, message)
        return data

    def _uploads(self, name: str, rule: file_inputs.FileRule, files: list[Any]) -> list[file_inputs.Upload] | None:
        """The bytes of the files posted for one input; None (with the error on the field) when one is too
        large, which is said before its bytes are read."""
        for upload in files:
            if upload.size > rule.max_bytes:
                self.add_error(name, f"{upload.name} is larger than {rule.max_bytes // 1024**2 or 1} MiB.")
                return None
        if len(files) > rule.max_files:
            self.add_error(name, f"Give at most {rule.max_files} file{'s' if rule.max_files > 1 else ''}.")
            return None
        return [file_inputs.Upload(upload.name, upload.read()) for upload in files]


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
