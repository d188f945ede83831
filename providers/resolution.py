"""Which model a run uses: the first of the preferred models that has a usable connection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .crypto import decrypt
from .models import Provider, ProviderConnection
from .offline import MODEL as OFFLINE_MODEL
from .registry import PROVIDERS
from .ssrf import check_base_url


class ModelNotAvailable(Exception):
    pass


@dataclass(frozen=True)
class Target:
    """A model ready to call. Holds the decrypted key in memory only; repr never shows it."""

    model: str  # as the user names it: provider/model
    provider: str
    litellm_model: str
    api_key: str | None = field(default=None, repr=False)
    api_base: str | None = None
    connection_id: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @property
    def is_offline(self) -> bool:
        return self.provider == Provider.OFFLINE


# A model's own name: letters, digits and . _ : @ + - in segments separated by single slashes, no segment
# starting with a dot. Provider adapters put the name into URL paths (Gemini: /models/{model}:generate…), so
# `..`, `?`, `#`, `%` and spaces would steer a request (and its key) elsewhere: refused before any call.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:@+.-]*(?:/[A-Za-z0-9][A-Za-z0-9_:@+.-]*)*")
MAX_MODEL_NAME = 120


def split_model(name: str) -> tuple[str, str]:
    provider, sep, model = str(name).partition("/")
    if not sep or not model or provider not in Provider.values:
        known = ", ".join(Provider.values)
        raise ModelNotAvailable(f"'{name}' is not a model name of the form provider/model (providers: {known}).")
    if len(model) > MAX_MODEL_NAME or not _MODEL_NAME.fullmatch(model) or ".." in model:
        raise ModelNotAvailable(
            f"'{name[:MAX_MODEL_NAME]}' is not a usable model name: use letters, digits and . _ : @ + - "
            "(no '..', spaces or URL characters)."
        )
    return provider, model


def normalise_base(provider: str, api_base: str) -> str:
    """LiteLLM adds /v1/messages to an Anthropic base URL itself, so a base written the common way, ending in
    /v1 (or /v1/messages), would reach /v1/v1/messages: cut it back to the host (docs/providers.md)."""
    base = api_base.rstrip("/")
    if provider == Provider.ANTHROPIC:
        for suffix in ("/v1/messages", "/v1"):
            if base.endswith(suffix):
                return base[: -len(suffix)]
    return base


def target_for(name: str, connection: ProviderConnection | None) -> Target:
    """A callable target: the key decrypted (SecretUnreadable if it cannot be) and the base URL checked
    against the SSRF guard at call time, since DNS answers can change after the URL was saved."""
    provider, model = split_model(name)
    if provider == Provider.OFFLINE:
        return Target(model=f"{provider}/{model}", provider=provider, litellm_model=OFFLINE_MODEL)
    assert connection is not None
    if model == "default" and connection.default_model:
        name, model = connection.default_model, split_model(connection.default_model)[1]
    if connection.api_base:
        check_base_url(connection.api_base, allow_private=connection.allow_private_network)
    key = decrypt(connection.encrypted_key) if connection.encrypted_key else None
    # An OpenAI-compatible server speaks the OpenAI protocol at its own base URL.
    litellm_model = f"openai/{model}" if provider == Provider.OPENAI_COMPATIBLE else name
    return Target(
        model=name,
        provider=provider,
        litellm_model=litellm_model,
        api_key=key or ("not-needed" if provider == Provider.OPENAI_COMPATIBLE else None),
        api_base=normalise_base(provider, connection.api_base) if connection.api_base else None,
        connection_id=connection.pk,
        requests_per_minute=connection.requests_per_minute,
        tokens_per_minute=connection.tokens_per_minute,
    )


def _usable(connection: ProviderConnection) -> bool:
    if connection.provider == Provider.OPENAI_COMPATIBLE:
        return bool(connection.api_base)
    return bool(connection.encrypted_key)


def configured_connections() -> dict[str, ProviderConnection]:
    """The connection each provider's models go through: the operator's first (by position) usable one."""
    found: dict[str, ProviderConnection] = {}
    for conn in ProviderConnection.objects.filter(enabled=True).order_by("position", "pk"):
        if _usable(conn):
            found.setdefault(conn.provider, conn)
    return found


def resolve(preferences: list[str], *, explicit: bool) -> list[Target]:
    """Targets in preference order, the first being the one to use and the rest its fallbacks.

    `explicit` preferences (the caller's) are used as given. A workflow's own list falls back to the
    offline model only when no provider at all is connected, and the offline model is never a fallback
    for a real provider that failed.
    """
    for name in preferences:
        split_model(name)
    connections = configured_connections()
    targets = [
        target_for(name, connections.get(split_model(name)[0]))
        for name in preferences
        if split_model(name)[0] == Provider.OFFLINE or split_model(name)[0] in connections
    ]
    if targets:
        if not targets[0].is_offline:
            targets = [t for t in targets if not t.is_offline]
        return targets
    if not explicit and not connections:
        return [target_for(OFFLINE_MODEL, None)]
    raise ModelNotAvailable(
        "None of the models " + ", ".join(preferences) + " has a connected provider. " + NO_MODEL_FOR_STUDENTS
    )


# -- What a workflow may run on ------------------------------------------------------------------------------

OFFLINE_LABEL = "Offline demo model (not AI)"
NO_MODEL_FOR_STUDENTS = (
    "Ask an operator to connect a model provider (an OpenAI-compatible server such as Ollama works)."
)
NO_MODEL_FOR_OPERATORS = (
    "Connect a provider under Providers: an OpenAI-compatible server (Ollama, vLLM, LM Studio) or a cloud key."
)


@dataclass(frozen=True)
class ModelChoice:
    name: str  # provider/model
    label: str
    offline: bool = False


def policy(spec: dict[str, Any]) -> tuple[list[str], bool]:
    """A spec's preferred models (best first) and whether any connected chat model may run it (default yes)."""
    return list(spec.get("models") or []), bool(spec.get("any_model", True))


def model_choices(spec: dict[str, Any]) -> list[ModelChoice]:
    """The models a run of this spec may use now: connected ones in the operator's order (each connection's
    default model, then the spec's preferred models it serves), or only the preferred ones when the spec
    says so; the offline demo model always last."""
    preferred, any_model = policy(spec)
    connections = configured_connections()
    names: list[str] = []
    if any_model:
        for provider, conn in sorted(connections.items(), key=lambda item: (item[1].position, item[1].pk)):
            names.append(conn.default_model or f"{provider}/{PROVIDERS[provider].models[0]}")
            names += [n for n in preferred if n.partition("/")[0] == provider]
    else:
        names = [n for n in preferred if n.partition("/")[0] in connections]
    choices: list[ModelChoice] = []
    for name in dict.fromkeys(names):
        provider, _, model = name.partition("/")
        if provider in Provider.values and provider != Provider.OFFLINE:
            label = f"{model} — {Provider(provider).label} ({connections[provider].label})"
            choices.append(ModelChoice(name=name, label=label))
    return [*choices, ModelChoice(name=OFFLINE_MODEL, label=OFFLINE_LABEL, offline=True)]


def run_models(spec: dict[str, Any], chosen: str) -> list[str]:
    """What a run records as its models: the chosen one, then the other real choices as its fallbacks."""
    if split_model(chosen)[0] == Provider.OFFLINE:
        return [chosen]
    return [chosen, *(c.name for c in model_choices(spec) if not c.offline and c.name != chosen)]


def offered_models(spec: dict[str, Any], requested: list[str]) -> list[str]:
    """The one model rule for every way a run starts (web, API, CLI, rerun, resume): each name well formed,
    the first one offered for this spec now (allowed by the spec, served by a connection); fallbacks no
    longer offered are dropped. Raises ModelNotAvailable in plain words. Makes no network call."""
    for name in requested:
        split_model(name)
    if not requested:
        return []
    offered = [c.name for c in model_choices(spec)]
    if requested[0] not in offered:
        raise ModelNotAvailable(
            f"'{requested[0]}' is not offered for this workflow now. Choose one of: {', '.join(offered)}."
        )
    return [requested[0], *(n for n in dict.fromkeys(requested[1:]) if n in offered and n != requested[0])]


def resolve_for_run(spec: dict[str, Any], requested: list[str]) -> list[Target]:
    """Targets for a run: the models it asked for, or else what the spec allows that is connected now."""
    if requested:
        return resolve(requested, explicit=True)
    real = [c.name for c in model_choices(spec) if not c.offline]
    if real:
        return [target_for(name, configured_connections()[split_model(name)[0]]) for name in real]
    if not configured_connections():
        return [target_for(OFFLINE_MODEL, None)]
    preferred, _ = policy(spec)
    raise ModelNotAvailable(
        "This workflow only runs on "
        + ", ".join(preferred)
        + ", and none of their providers is connected. "
        + NO_MODEL_FOR_STUDENTS
    )
