from __future__ import annotations

from typing import Any

from django import forms

from providers.models import Provider
from providers.registry import PROVIDERS, model_choices


def _model_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    return [(Provider(p).label, [(m, m) for m in model_choices(p)]) for p in PROVIDERS]


class ConnectionForm(forms.Form):
    provider = forms.ChoiceField(choices=Provider.choices)
    label = forms.CharField(max_length=80, help_text="A name you will recognise, e.g. “Team OpenAI”.")
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: stored encrypted and never shown again. Leave empty to keep the stored key.",
    )
    api_base = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text="Only for an OpenAI-compatible server (Ollama: http://127.0.0.1:11434/v1) or a proxy.",
    )
    allow_private_network = forms.BooleanField(
        label="The server is on my own network (allow private and loopback addresses)", required=False
    )
    default_model = forms.ChoiceField(label="Default model", choices=_model_choices)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        provider, model = data.get("provider"), data.get("default_model", "")
        if provider and model and not model.startswith(f"{provider}/"):
            self.add_error("default_model", "Choose a model of the selected provider.")
        return data
