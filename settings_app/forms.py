from __future__ import annotations

from typing import Any

from django import forms

from providers.models import Provider
from providers.registry import PROVIDERS, model_choices

# What the form suggests per provider: a label and where its base URL points.
LABELS = {
    Provider.OPENAI: "OpenAI",
    Provider.ANTHROPIC: "Anthropic",
    Provider.GEMINI: "Google Gemini",
    Provider.DEEPSEEK: "DeepSeek",
    Provider.OPENAI_COMPATIBLE: "Local server",
    Provider.OFFLINE: "Offline demo",
}
BASE_HINTS = {
    Provider.OPENAI: ("https://api.openai.com/v1", "Leave empty for OpenAI itself; set it only for a proxy."),
    Provider.ANTHROPIC: (
        "https://api.anthropic.com",
        "Leave empty for Anthropic itself. A proxy's URL may end in /v1 or not: both reach /v1/messages.",
    ),
    Provider.GEMINI: (
        "https://generativelanguage.googleapis.com/v1beta",
        "Leave empty for Google itself; set it only for a proxy.",
    ),
    Provider.DEEPSEEK: ("https://api.deepseek.com", "Leave empty for DeepSeek itself; set it only for a proxy."),
    Provider.OPENAI_COMPATIBLE: (
        "http://127.0.0.1:11434/v1",
        "Required: the server's OpenAI-style URL (Ollama: http://127.0.0.1:11434/v1, vLLM: "
        "http://127.0.0.1:8000/v1, LM Studio: http://127.0.0.1:1234/v1).",
    ),
    Provider.OFFLINE: ("", "Not used: the offline demo model is built in."),
}


class ConnectionForm(forms.Form):
    """A connection as the operator writes it. The model list, label and base URL hint follow the chosen
    provider (re-rendered by the server when the provider changes, so it works without JavaScript too)."""

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
    api_base = forms.URLField(label="Base URL", required=False, assume_scheme="https")
    allow_private_network = forms.BooleanField(
        label="The server is on my own network (allow private and loopback addresses)", required=False
    )
    allow_unpriced = forms.BooleanField(
        label="Allow runs on models without a price (a server you do not pay per token)",
        required=False,
        help_text="Otherwise a model with no known price is refused, since no dollar budget could hold it; "
        "you can also set prices in the admin (Model prices).",
    )
    default_model = forms.CharField(
        label="Default model",
        required=False,
        max_length=120,
        help_text="The model runs use first. Empty: the provider's first suggestion.",
    )

    input_price = forms.DecimalField(
        label="Price per million input tokens (USD)",
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=6,
        help_text="For the default model. A server on your own network starts at 0 (free): runs on it are then "
        "allowed and shown as free. Empty: the price LiteLLM knows, if any.",
    )
    output_price = forms.DecimalField(
        label="Price per million output tokens (USD)", required=False, min_value=0, max_digits=12, decimal_places=6
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        raw = (self.data.get("provider") if self.is_bound else None) or self.initial.get("provider")
        self.chosen = raw if raw in PROVIDERS else Provider.OPENAI
        self.suggestions = model_choices(self.chosen)
        placeholder, hint = BASE_HINTS[self.chosen]
        self.fields["api_base"].help_text = hint
        self.fields["api_base"].widget.attrs["placeholder"] = placeholder
        self.fields["default_model"].widget.attrs.update(
            {"list": "model-suggestions", "placeholder": self.suggestions[0], "autocomplete": "off"}
        )
        self.fields["provider"].widget.attrs.update({"data-provider-select": ""})

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("input_price") is None) != (data.get("output_price") is None):
            self.add_error("output_price", "Give both prices (input and output), or leave both empty.")
        return data

    def clean_default_model(self) -> str:
        model = self.cleaned_data.get("default_model", "").strip()
        if not model:
            return ""
        provider, sep, name = model.partition("/")
        if not sep:  # a bare name ("llama3.2") belongs to the chosen provider
            return f"{self.chosen}/{model}"
        if provider != self.chosen:
            raise forms.ValidationError(f"Use a model of {Provider(self.chosen).label}, e.g. {self.suggestions[0]}.")
        if not name:
            raise forms.ValidationError("Name the model after the slash.")
        return model


def provider_initial(provider: str, label: str = "") -> dict[str, Any]:
    """The form's starting values for a provider: a label unless the operator typed their own."""
    provider = provider if provider in PROVIDERS else Provider.OPENAI
    keep = label and label not in LABELS.values()
    return {
        "provider": provider,
        "label": label if keep else LABELS[Provider(provider)],
        "default_model": model_choices(provider)[0],
        "allow_private_network": provider == Provider.OPENAI_COMPATIBLE,
        # A local server costs nothing per token: priced at $0, its runs are allowed (and editable here).
        "input_price": 0 if provider == Provider.OPENAI_COMPATIBLE else None,
        "output_price": 0 if provider == Provider.OPENAI_COMPATIBLE else None,
    }
