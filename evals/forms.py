from __future__ import annotations

from typing import Any

from django import forms

from catalog.models import Workflow
from providers.resolution import ModelChoice

from .services import EvalError, parse_cases


class EvalSetForm(forms.Form):
    workflow = forms.ModelChoiceField(
        queryset=Workflow.objects.filter(enabled=True, latest_version__isnull=False).order_by("title"),
        to_field_name="slug",
        empty_label=None,
    )
    name = forms.CharField(max_length=120, help_text="Saving under an existing name replaces that set's inputs.")
    cases = forms.CharField(
        label="Input sets",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text='One JSON object of inputs per line, e.g. {"topic": "Memory", "level": "advanced"}; '
        "inputs left out take their defaults.",
    )

    def clean_cases(self) -> list[dict[str, Any]]:
        try:
            return parse_cases(self.cleaned_data["cases"])
        except EvalError as exc:
            raise forms.ValidationError(str(exc)) from None


class BatchForm(forms.Form):
    models = forms.MultipleChoiceField(
        label="Models to compare",
        widget=forms.CheckboxSelectMultiple,
        help_text="Every input set runs as a test run on each model, under the workflow's test limits and budgets.",
        error_messages={"required": "Choose at least one model.", "invalid_choice": "That model is not connected."},
    )

    def __init__(self, choices: list[ModelChoice], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["models"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(c.name, c.label) for c in choices]
