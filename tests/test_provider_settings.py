from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import connection as db_connection
from django.urls import reverse

from providers import ratelimit, services
from providers.models import ConnectionStatus, ProviderConnection
from providers.ssrf import UnsafeURL, check_base_url
from settings_app.models import AuditEvent

from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db
KEY = "sk-settings-page-key-0123456789abcdef"


@pytest.fixture
def operator(client, alice):
    for codename in ("change_providerconnection", "delete_providerconnection"):
        alice.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(alice)
    return client


def add(client, **data):
    form = {
        "provider": "openai",
        "label": "Team",
        "api_key": KEY,
        "api_base": "",
        "default_model": "openai/gpt-4o-mini",
    }
    form.update(data)
    return client.post(reverse("settings:providers"), form)


def test_students_cannot_see_or_change_provider_settings(alice_client):
    assert alice_client.get(reverse("settings:providers")).status_code == 403
    assert add(alice_client).status_code == 403
    assert not ProviderConnection.objects.exists()


def test_a_key_is_write_only_and_stored_encrypted(operator):
    response = add(operator)
    assert response.status_code == 302
    connection = ProviderConnection.objects.get()
    assert connection.encrypted_key and KEY not in connection.encrypted_key
    assert connection.key_last4 == "cdef"
    for url in (reverse("settings:providers"), reverse("settings:edit", args=[connection.pk])):
        page = operator.get(url).content.decode()
        assert KEY not in page
        assert "••••cdef" in page
    assert list(AuditEvent.objects.values_list("action", "actor_name", "ip_address")) == [
        ("created", "alice", "127.0.0.1")
    ]


def test_editing_without_a_key_keeps_the_stored_key(operator):
    add(operator)
    connection = ProviderConnection.objects.get()
    before = connection.encrypted_key
    operator.post(
        reverse("settings:edit", args=[connection.pk]),
        {"provider": "openai", "label": "Renamed", "api_key": "", "default_model": "openai/gpt-4o"},
    )
    connection.refresh_from_db()
    assert (connection.label, connection.default_model, connection.encrypted_key) == (
        "Renamed",
        "openai/gpt-4o",
        before,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"api_key": ""}, "needs an API key"),
        (
            {"provider": "openai_compatible", "api_key": "", "default_model": "openai_compatible/llama3.2"},
            "needs its base URL",
        ),
        ({"default_model": "anthropic/claude-haiku-4-5-20251001"}, "Use a model of OpenAI, e.g. openai/gpt-4o-mini"),
        ({"api_base": "http://169.254.169.254/latest/"}, "never allowed"),
        ({"api_base": "http://127.0.0.1:11434/v1"}, "an operator must allow private networks"),
    ],
)
def test_a_connection_that_cannot_work_is_refused_in_plain_words(operator, data, message):
    response = add(operator, **data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not ProviderConnection.objects.exists()


def test_a_local_server_is_allowed_when_the_operator_says_so(operator):
    response = add(
        operator,
        provider="openai_compatible",
        api_key="",
        api_base="http://127.0.0.1:11434/v1",
        allow_private_network="on",
        default_model="openai_compatible/llama3.2",
    )
    assert response.status_code == 302
    assert ProviderConnection.objects.get().allow_private_network


def test_test_connection_says_connected_or_what_is_wrong(operator):
    with fake_llm("openai") as server:
        add(operator, api_base=server.base_url, allow_private_network="on")
        connection = ProviderConnection.objects.get()
        url = reverse("settings:test", args=[connection.pk])
        fragment = operator.post(url, HTTP_HX_REQUEST="true").content.decode()
        assert "Connected to OpenAI." in fragment and "<html" not in fragment
        connection.refresh_from_db()
        assert connection.status == ConnectionStatus.CONNECTED and connection.last_tested_at
        server.push({"status": 401})
        fragment = operator.post(url, HTTP_HX_REQUEST="true").content.decode()
        assert "OpenAI rejected the API key (wrong or revoked key)." in fragment
        server.push({"status": 429, "message": "You exceeded your current quota"})
        assert "no quota or credit left" in operator.post(url, HTTP_HX_REQUEST="true").content.decode()
        assert len(server.requests) == 3
    last = operator.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "refused the connection" in last, last
    assert AuditEvent.objects.filter(action="tested").count() == 4


def test_the_offline_model_can_be_connected_and_tested(operator):
    add(operator, provider="offline", label="Offline demo", api_key="", default_model="offline/demo")
    connection = ProviderConnection.objects.get()
    response = operator.post(reverse("settings:test", args=[connection.pk]), follow=True)
    assert "Connected to Offline demo model (not AI)." in response.content.decode()


def test_deleting_removes_the_key_and_is_audited(operator):
    add(operator)
    connection = ProviderConnection.objects.get()
    operator.post(reverse("settings:delete", args=[connection.pk]))
    assert not ProviderConnection.objects.exists()
    assert list(AuditEvent.objects.order_by("at").values_list("action", flat=True)) == ["created", "deleted"]


def test_keys_from_the_environment_become_one_encrypted_connection_each():
    env = {"OPENAI_API_KEY": KEY, "DEEPSEEK_API_KEY": "sk-deep-0123456789abcdef", "GEMINI_API_KEY": ""}
    made = services.import_environment(env)
    assert sorted(c.provider for c in made) == ["deepseek", "openai"]
    services.import_environment(env)
    assert ProviderConnection.objects.count() == 2
    assert AuditEvent.objects.filter(action="created").count() == 2  # unchanged keys are not rewritten
    services.import_environment({**env, "OPENAI_API_KEY": KEY + "-new"})
    assert ProviderConnection.objects.get(provider="openai").key_last4 == "-new"


@pytest.mark.parametrize(
    ("url", "allow", "ok"),
    [
        ("https://api.openai.com/v1", False, None),
        ("http://169.254.169.254/", True, "never allowed"),
        ("http://[fe80::1]/", True, "never allowed"),
        ("http://metadata.google.internal/", True, "never allowed"),
        ("http://10.0.0.5:8000/v1", False, "private or loopback"),
        ("http://10.0.0.5:8000/v1", True, None),
        ("http://localhost:11434/v1", False, "private or loopback"),
        ("ftp://example.com/", True, "must start with http"),
        ("http://user:pw@example.com/", True, "credentials"),
    ],
)
def test_the_ssrf_guard(url, allow, ok, monkeypatch):
    import socket

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: [(0, 0, 0, "", ("127.0.0.1" if host == "localhost" else "93.184.216.34", 0))],
    )
    if ok is None:
        assert check_base_url(url, allow_private=allow) == url
    else:
        with pytest.raises(UnsafeURL, match=ok):
            check_base_url(url, allow_private=allow)


@pytest.mark.django_db(transaction=True)
def test_rate_limits_are_shared_through_the_database_not_process_memory():
    connection = ProviderConnection.objects.create(provider="openai", label="limited", requests_per_minute=2)
    assert ratelimit.reserve(connection.pk, tokens=10, rpm=2, tpm=None) == 0.0
    waits: list[float] = []

    def other_worker() -> None:  # a thread has its own database connection, like another process
        waits.append(ratelimit.reserve(connection.pk, tokens=10, rpm=2, tpm=None))
        waits.append(ratelimit.reserve(connection.pk, tokens=10, rpm=2, tpm=None))
        db_connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    thread.join()
    assert waits[0] == 0.0 and 0 < waits[1] <= 60


# -- The page follows the chosen provider, keeps a pasted key, confirms removal; the admin uses the service --


def test_choosing_a_provider_sets_its_label_base_url_hint_and_only_its_models(operator):
    fragment = operator.get(
        reverse("settings:providers"), {"provider": "anthropic", "label": "OpenAI"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "<html" not in fragment
    assert 'value="Anthropic"' in fragment  # the label follows unless the operator typed their own
    assert "/v1/messages" in fragment and 'placeholder="https://api.anthropic.com"' in fragment
    models = fragment.split('<datalist id="model-suggestions">')[1].split("</datalist>")[0]
    assert '<option value="anthropic/claude-haiku-4-5-20251001">' in models
    assert "openai/" not in models and "gemini/" not in models
    typed = operator.get(reverse("settings:providers"), {"provider": "deepseek", "label": "Lab key"}).content.decode()
    assert 'value="Lab key"' in typed


def test_a_bare_model_name_belongs_to_the_chosen_provider(operator):
    response = add(
        operator,
        provider="openai_compatible",
        api_key="",
        api_base="http://127.0.0.1:11434/v1",
        allow_private_network="on",
        default_model="qwen2.5:7b",
    )
    assert response.status_code == 302
    assert ProviderConnection.objects.get().default_model == "openai_compatible/qwen2.5:7b"


def test_a_pasted_key_survives_a_validation_error_without_being_sent_back(operator):
    response = add(operator, label="")  # the label is missing; the key was pasted
    assert response.status_code == 422
    page = response.content.decode()
    assert KEY not in page and "ending cdef" in page
    assert add(operator, api_key="").status_code == 302  # the operator fixes the label only
    connection = ProviderConnection.objects.get()
    from providers import crypto

    assert crypto.decrypt(connection.encrypted_key) == KEY


def test_removing_asks_first_and_says_what_happens_to_runs(operator, catalog, alice):
    add(operator)
    connection = ProviderConnection.objects.get()
    from runs.models import Run

    Run.objects.create(
        user=alice, workflow_version=catalog.latest_version, mode="test", inputs={}, connection=connection
    )
    url = reverse("settings:delete", args=[connection.pk])
    page = operator.get(url).content.decode()
    assert "Remove OpenAI — Team?" in page
    assert "1 queued or running run uses it" in page and "1 run used it" in page
    assert ProviderConnection.objects.exists()
    assert operator.post(url).status_code == 302
    assert not ProviderConnection.objects.exists()


def test_the_admin_saves_through_the_service_and_a_new_key_resets_the_status(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    add(client)
    connection = ProviderConnection.objects.get()
    ProviderConnection.objects.filter(pk=connection.pk).update(status=ConnectionStatus.CONNECTED)
    form = {
        "provider": "openai",
        "label": "Team",
        "api_key": "sk-new-admin-key-0123456789abcdef",
        "api_base": "",
        "default_model": "openai/gpt-4o-mini",
        "enabled": "on",
        "position": "5",
    }
    response = client.post(reverse("admin:providers_providerconnection_change", args=[connection.pk]), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.UNTESTED and connection.position == 5
    assert connection.key_last4 == "cdef" and "sk-new" not in connection.encrypted_key
    event = AuditEvent.objects.filter(action="changed").latest("pk")
    assert "key" in str(event.__dict__) and "position" in str(event.__dict__)
