"""Writes to provider connections: save, delete, test, import from the environment, rotate keys.
Each one leaves an audit event (never the secret)."""

from __future__ import annotations

import os
from typing import Any

from django.db import transaction
from django.utils import timezone

from settings_app.audit import record
from settings_app.models import AuditAction

from . import crypto, llm
from .models import ConnectionStatus, ModelPrice, Provider, ProviderConnection
from .registry import PROVIDERS
from .resolution import Target, target_for
from .ssrf import UnsafeURL, check_base_url

ENV_LABEL = "From environment"


class ConnectionError_(Exception):
    """A connection that cannot be saved as asked, in plain words."""


def key_goes_elsewhere(existing: ProviderConnection | None, provider: str, api_base: str) -> bool:
    """Whether the stored key would be sent somewhere new: a key is for one provider at one address, so
    whoever changes either must type the key again (else an operator could point a base URL they control
    at an admin's key and press Test connection)."""
    return bool(existing and existing.encrypted_key and (existing.provider, existing.api_base) != (provider, api_base))


def check_connection_settings(
    provider: str, api_key: str, api_base: str, allow_private: bool, existing: ProviderConnection | None
) -> None:
    info = PROVIDERS[provider]
    if provider == Provider.OPENAI_COMPATIBLE and not api_base:
        raise ConnectionError_(
            "An OpenAI-compatible server needs its base URL (for example http://127.0.0.1:11434/v1)."
        )
    keeps_key = bool(existing and existing.encrypted_key) and not key_goes_elsewhere(existing, provider, api_base)
    if info.needs_key and not api_key and not keeps_key:
        if key_goes_elsewhere(existing, provider, api_base):
            raise ConnectionError_(
                "Changing the provider or the base URL clears the stored key: enter the API key again."
            )
        raise ConnectionError_(f"{Provider(provider).label} needs an API key.")
    if api_base:
        try:
            check_base_url(api_base, allow_private=allow_private)
        except UnsafeURL as exc:
            raise ConnectionError_(str(exc)) from exc


@transaction.atomic
def save_connection(
    *,
    actor: Any,
    ip: str | None,
    provider: str,
    label: str,
    api_key: str = "",
    api_base: str = "",
    default_model: str = "",
    allow_private_network: bool = False,
    connection: ProviderConnection | None = None,
    options: dict[str, Any] | None = None,
) -> ProviderConnection:
    """Create or change a connection: the settings page and the admin both save through here. `options` are
    the other fields the admin edits (enabled, rate limits, budget, position)."""
    check_connection_settings(provider, api_key, api_base, allow_private_network, connection)
    created = connection is None
    clear_key = not api_key and key_goes_elsewhere(connection, provider, api_base)
    conn = connection or ProviderConnection(provider=provider, created_by=actor if getattr(actor, "pk", None) else None)
    # Where the key goes is recorded with both values, so the audit log shows where it was pointed.
    moves = {
        name: {"from": getattr(conn, name), "to": value}
        for name, value in (("provider", provider), ("api_base", api_base))
        if not created and getattr(conn, name) != value
    }
    plain = [("label", label), ("default_model", default_model)] + ([("api_base", api_base)] if created else [])
    changed = [*moves] + [name for name, value in plain if getattr(conn, name) != value]
    for name, value in (options or {}).items():
        if getattr(conn, name) != value:
            changed.append(name)
            setattr(conn, name, value)
    conn.provider, conn.label, conn.api_base = provider, label, api_base
    conn.default_model = default_model or f"{provider}/{PROVIDERS[provider].models[0]}"
    conn.allow_private_network = allow_private_network
    if api_key or clear_key:
        conn.set_key(api_key)
        changed.append("key" if api_key else "key cleared")
    if not created and {"key", "key cleared", "api_base", "provider"} & set(changed):
        conn.status, conn.status_message = ConnectionStatus.UNTESTED, ""  # an earlier test says nothing now
    conn.save()
    action = AuditAction.CREATED if created else AuditAction.CHANGED
    record(action, conn, actor=actor, ip=ip, fields=sorted(changed), **moves)
    return conn


@transaction.atomic
def delete_connection(connection: ProviderConnection, *, actor: Any, ip: str | None) -> None:
    record(AuditAction.DELETED, connection, actor=actor, ip=ip)
    connection.delete()


def _for_operators(exc: llm.ProviderError) -> str:
    """The plain sentence, then what the provider said (redacted, short): only operators see a connection."""
    return f"{exc.message} Provider said: {exc.detail}" if exc.detail else exc.message


def test_connection(connection: ProviderConnection, *, actor: Any, ip: str | None) -> tuple[bool, str]:
    """One minimal real call. Returns (ok, a sentence for the user); the connection keeps the outcome."""
    label = Provider(connection.provider).label
    try:
        target = target_for(connection.default_model or f"{connection.provider}/default", connection)
        _ping(target, max_tokens=5)
    except crypto.SecretUnreadable as exc:
        ok, message = False, str(exc)
    except UnsafeURL as exc:
        ok, message = False, str(exc)
    except llm.ProviderError as exc:
        ok, message = False, _for_operators(exc)
    else:
        ok, message = True, f"Connected to {label}."
        warning = refusal_warning(connection)
        if warning:
            message = f"{message} {warning}"
    _remember(connection, ok, message)
    record(AuditAction.TESTED, connection, actor=actor, ip=ip, ok=ok)
    return ok, message


def refusal_warning(connection: ProviderConnection) -> str:
    """What a connected connection still lacks for runs to start, with what to do ("" when nothing): a model
    with no known price is refused unless the connection allows unpriced runs (runs.money.reserve)."""
    from runs.money import price_of

    if connection.provider == Provider.OFFLINE or connection.allow_unpriced:
        return ""
    model = connection.default_model or f"{connection.provider}/{PROVIDERS[connection.provider].models[0]}"
    if price_of(target_for(model, connection)) is not None:
        return ""
    return (
        f"But runs on {model} would be refused: it has no known price. Set its price on this connection's form "
        "($0 for a server you do not pay per token), or allow runs on models without a price."
    )


@transaction.atomic
def set_model_price(*, model: str, input_per_million: Any, output_per_million: Any, actor: Any, ip: str | None) -> None:
    """An operator's price for one model (per million tokens), e.g. $0 for a local server: runs.money asks it
    before LiteLLM's map."""
    price, created = ModelPrice.objects.get_or_create(
        model=model, defaults={"input_per_million": input_per_million, "output_per_million": output_per_million}
    )
    if not created and (price.input_per_million, price.output_per_million) == (input_per_million, output_per_million):
        return
    price.input_per_million, price.output_per_million = input_per_million, output_per_million
    price.save()
    record(AuditAction.CREATED if created else AuditAction.CHANGED, price, actor=actor, ip=ip)


def import_environment(environ: dict[str, str] | None = None) -> list[ProviderConnection]:
    """Create or update one encrypted connection per <PROVIDER>_API_KEY set in the environment.

    A `<PROVIDER>_API_BASE` set beside it is operator configuration, so a private or loopback address is
    allowed for that connection (link-local and metadata addresses never are)."""
    env = os.environ if environ is None else environ
    done = []
    for provider, info in PROVIDERS.items():
        key = env.get(info.env_key or "", "").strip() if info.env_key else ""
        if not key:
            continue
        base = env.get(info.env_base or "", "").strip() if info.env_base else ""
        existing = ProviderConnection.objects.filter(provider=provider, from_environment=True).first()
        unchanged = (
            existing is not None
            and existing.api_base == base
            and existing.encrypted_key
            and _same_key(existing.encrypted_key, key)
        )
        if unchanged:
            assert existing is not None
            done.append(existing)
            continue
        conn = save_connection(
            actor=None,
            ip=None,
            provider=provider,
            label=ENV_LABEL,
            api_key=key,
            api_base=base,
            default_model=existing.default_model if existing else "",
            allow_private_network=bool(base),
            connection=existing,
        )
        if not conn.from_environment:
            conn.from_environment = True
            conn.save(update_fields=["from_environment"])
        done.append(conn)
    return done


def _same_key(token: str, key: str) -> bool:
    try:
        return crypto.decrypt(token) == key
    except crypto.SecretUnreadable:
        return False


@transaction.atomic
def rotate_keys(*, actor: Any = None) -> int:
    """Re-encrypt every stored key under the primary key. Fails whole if one cannot be decrypted."""
    count = 0
    for conn in ProviderConnection.objects.select_for_update().exclude(encrypted_key=""):
        conn.encrypted_key = crypto.rotate(conn.encrypted_key)
        conn.save(update_fields=["encrypted_key"])
        record(AuditAction.ROTATED, conn, actor=actor)
        count += 1
    return count


def _ping(target: Target, *, max_tokens: int) -> llm.LLMResult:
    """The one minimal real call both the Test connection button and validation make."""
    from . import pricing

    messages = [{"role": "user", "content": "Reply with OK."}]
    return llm.complete(target, messages, max_tokens=max_tokens, timeout=20, price=pricing.price_of(target))


def _remember(connection: ProviderConnection, ok: bool, message: str) -> None:
    connection.status = ConnectionStatus.CONNECTED if ok else ConnectionStatus.FAILED
    connection.status_message = message[:300]
    connection.last_tested_at = timezone.now()
    connection.save(update_fields=["status", "status_message", "last_tested_at", "updated_at"])
