"""System checks, so `manage.py check`, the start-up commands (migrate, qcluster) and the operator page all
report a wrong FIELD_ENCRYPTION_KEYS before anyone wonders why every run is refused.

A warning, not an error: an error would stop the web process too, and the operator needs it to enter the
keys again. Runs stay safe either way: an unreadable key is never sent (providers.resolution).
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.db import DatabaseError

from providers import crypto
from providers.models import ProviderConnection


def unreadable_connections() -> list[ProviderConnection]:
    """Connections whose stored key the configured FIELD_ENCRYPTION_KEYS cannot decrypt (or, with no usable
    keys configured at all, every connection with a stored key)."""
    unreadable = []
    for connection in ProviderConnection.objects.exclude(encrypted_key="").order_by("provider", "label"):
        try:
            crypto.decrypt(connection.encrypted_key)
        except (crypto.SecretUnreadable, crypto.EncryptionNotConfigured):
            unreadable.append(connection)
    return unreadable


@checks.register(checks.Tags.security)
def check_stored_keys_decrypt(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        unreadable = unreadable_connections()
    except DatabaseError:  # not migrated yet: there are no stored keys to check
        return []
    if not unreadable:
        return []
    names = ", ".join(f"{c.get_provider_display()} “{c.label}” (#{c.pk})" for c in unreadable)
    return [
        checks.Warning(
            f"The stored API keys of {names} cannot be decrypted with FIELD_ENCRYPTION_KEYS.",
            hint="Put the key they were saved with back in FIELD_ENCRYPTION_KEYS (after the new primary key; "
            "then `manage.py rotate_encryption_keys`), or enter those API keys again in Settings. Runs using "
            "them are refused.",
            id="settings_app.W001",
        )
    ]
