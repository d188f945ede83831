"""Which model a run uses: the first of the preferred models that has a usable connection."""

from __future__ import annotations

from dataclasses import dataclass, field

from .crypto import decrypt
from .models import Provider, ProviderConnection
from .offline import MODEL as OFFLINE_MODEL
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


def split_model(name: str) -> tuple[str, str]:
    provider, sep, model = name.partition("/")
    if not sep or not model or provider not in Provider.values:
        known = ", ".join(Provider.values)
        raise ModelNotAvailable(f"'{name}' is not a model name of the form provider/model (providers: {known}).")
    return provider, model


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
        api_base=connection.api_base or None,
        connection_id=connection.pk,
        requests_per_minute=connection.requests_per_minute,
        tokens_per_minute=connection.tokens_per_minute,
    )


def _usable(connection: ProviderConnection) -> bool:
    if connection.provider == Provider.OPENAI_COMPATIBLE:
        return bool(connection.api_base)
    return bool(connection.encrypted_key)


def configured_connections() -> dict[str, ProviderConnection]:
    found: dict[str, ProviderConnection] = {}
    for conn in ProviderConnection.objects.filter(enabled=True).order_by("pk"):
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
        "None of the models " + ", ".join(preferences) + " has a connected provider. Connect one in Settings."
    )
