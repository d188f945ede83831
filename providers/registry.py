"""What the platform knows about each provider: its label, environment variables and suggested models."""

from __future__ import annotations

from dataclasses import dataclass

from .models import Provider


@dataclass(frozen=True)
class ProviderInfo:
    provider: Provider
    env_key: str | None
    env_base: str | None
    models: tuple[str, ...]
    needs_key: bool = True


PROVIDERS: dict[str, ProviderInfo] = {
    Provider.OPENAI: ProviderInfo(
        Provider.OPENAI, "OPENAI_API_KEY", "OPENAI_API_BASE", ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")
    ),
    Provider.ANTHROPIC: ProviderInfo(
        Provider.ANTHROPIC,
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_API_BASE",
        ("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"),
    ),
    Provider.GEMINI: ProviderInfo(
        Provider.GEMINI, "GEMINI_API_KEY", "GEMINI_API_BASE", ("gemini-2.5-flash", "gemini-2.5-pro")
    ),
    Provider.DEEPSEEK: ProviderInfo(
        Provider.DEEPSEEK, "DEEPSEEK_API_KEY", "DEEPSEEK_API_BASE", ("deepseek-chat", "deepseek-reasoner")
    ),
    Provider.OPENAI_COMPATIBLE: ProviderInfo(
        Provider.OPENAI_COMPATIBLE, None, None, ("llama3.2", "qwen2.5", "mistral"), needs_key=False
    ),
    Provider.OFFLINE: ProviderInfo(Provider.OFFLINE, None, None, ("demo",), needs_key=False),
}


def model_choices(provider: str) -> list[str]:
    return [f"{provider}/{m}" for m in PROVIDERS[provider].models]
