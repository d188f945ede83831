"""Saved connections to the stand-in provider, as an operator leaves them after "Test connection"."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from providers import services as provider_services
from providers.models import ConnectionStatus, ProviderConnection

from .fake_llm import FakeLLM


def mark_checked(connection: ProviderConnection) -> ProviderConnection:
    """The connection passed its check just now, so validation makes no check call of its own and a test's
    scripted answers all go to the run's steps (tests/test_connection_checks.py covers that call)."""
    ProviderConnection.objects.filter(pk=connection.pk).update(
        status=ConnectionStatus.CONNECTED, last_tested_at=timezone.now(), status_message=""
    )
    connection.refresh_from_db()
    return connection


def connect(
    server: FakeLLM, *, provider: str = "openai", label: str = "Fake", checked: bool = True, **options: Any
) -> ProviderConnection:
    """Save a connection to `server` the way the settings page does; `checked=False` leaves it untested."""
    connection = provider_services.save_connection(
        actor=None, ip=None, provider=provider, label=label, api_key="sk-fake-0123456789abcdefghij",
        api_base=server.base_url, allow_private_network=True, **options,
    )  # fmt: skip
    return mark_checked(connection) if checked else connection
