"""A stored key goes only where it was entered for: pointing a connection elsewhere (base URL or provider)
clears the key, so an operator cannot make the platform send an admin's key to a server they control."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from providers import services
from providers.models import ConnectionStatus, ProviderConnection
from settings_app.models import AuditEvent

from .factories import UserFactory
from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db
ADMIN_KEY = "sk-ant-api03-Adm1nSecretKeyThatMustStayHome-0123456789"


@pytest.fixture
def admins_connection(django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    return services.save_connection(
        actor=root, ip=None, provider="anthropic", label="School", api_key=ADMIN_KEY,
        default_model="anthropic/claude-haiku-4-5-20251001",
    )  # fmt: skip


@pytest.fixture
def mallory():
    user = UserFactory(username="mallory")
    for codename in ("change_providerconnection", "delete_providerconnection"):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def edit_form(connection: ProviderConnection, **changes: str) -> dict[str, str]:
    form = {
        "provider": connection.provider,
        "label": connection.label,
        "api_key": "",
        "api_base": connection.api_base,
        "default_model": connection.default_model,
    }
    form.update(changes)
    return form


def test_an_operator_pointing_an_admins_connection_at_their_server_never_receives_the_key(admins_connection, mallory):
    with fake_llm("anthropic") as theirs:
        url = reverse("settings:edit", args=[admins_connection.pk])
        response = mallory.post(url, edit_form(admins_connection, api_base=theirs.base_url, allow_private_network="on"))
        # The key is cleared with the move: an Anthropic connection without a key cannot be saved.
        assert response.status_code == 422
        assert "clears the stored key: enter the API key again" in response.content.decode()
        admins_connection.refresh_from_db()
        assert admins_connection.api_base == "" and admins_connection.encrypted_key
        # Saved through the service directly (as the admin does), the move still drops the key first.
        with pytest.raises(services.ConnectionError_):
            services.save_connection(
                actor=None, ip=None, provider="anthropic", label="School", api_base=theirs.base_url,
                allow_private_network=True, connection=admins_connection,
                default_model=admins_connection.default_model,
            )  # fmt: skip
        mallory.post(reverse("settings:test", args=[admins_connection.pk]))
        seen = [dict(r["headers"]) for r in theirs.requests]
    assert not any(ADMIN_KEY in str(h) for h in seen)
    assert seen == []


def test_a_moved_keyless_connection_loses_its_key_and_the_audit_log_has_both_addresses(mallory, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    local = services.save_connection(
        actor=root, ip=None, provider="openai_compatible", label="Lab", api_key="sk-lab-server-key-0123456789",
        api_base="http://127.0.0.1:11434/v1", allow_private_network=True,
        default_model="openai_compatible/llama3.2",
    )  # fmt: skip
    ProviderConnection.objects.filter(pk=local.pk).update(status=ConnectionStatus.CONNECTED)
    with fake_llm("openai") as theirs:
        form = edit_form(local, api_base=theirs.base_url, allow_private_network="on")
        assert mallory.post(reverse("settings:edit", args=[local.pk]), form).status_code == 302
        local.refresh_from_db()
        assert local.encrypted_key == "" and local.key_last4 == "" and local.status == ConnectionStatus.UNTESTED
        mallory.post(reverse("settings:test", args=[local.pk]))
        assert theirs.requests, "the test call went out, keyless"
        assert all("sk-lab-server-key" not in str(dict(r["headers"])) for r in theirs.requests)
    event = AuditEvent.objects.filter(action="changed").latest("pk")
    assert event.actor_name == "mallory"
    assert event.detail["api_base"] == {"from": "http://127.0.0.1:11434/v1", "to": theirs.base_url}
    assert "key cleared" in event.detail["fields"]


def test_changing_the_provider_clears_the_key_in_the_admin_too(admins_connection, client, django_user_model):
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(boss)
    form = {
        **edit_form(admins_connection, provider="openai_compatible", api_base="http://127.0.0.1:9/v1"),
        "allow_private_network": "on",
        "default_model": "openai_compatible/llama3.2",
        "enabled": "on",
        "position": "100",
    }
    url = reverse("admin:providers_providerconnection_change", args=[admins_connection.pk])
    assert client.post(url, form).status_code == 302
    admins_connection.refresh_from_db()
    assert admins_connection.provider == "openai_compatible" and admins_connection.encrypted_key == ""
    event = AuditEvent.objects.filter(action="changed").latest("pk")
    assert event.detail["provider"] == {"from": "anthropic", "to": "openai_compatible"}


def test_a_new_key_typed_with_the_new_base_url_is_kept(admins_connection):
    services.save_connection(
        actor=None, ip=None, provider="anthropic", label="School", api_key="sk-ant-api03-AnotherKey-000000000001",
        api_base="http://127.0.0.1:9", allow_private_network=True, connection=admins_connection,
        default_model=admins_connection.default_model,
    )  # fmt: skip
    admins_connection.refresh_from_db()
    assert admins_connection.key_last4 == "0001"
