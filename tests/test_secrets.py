"""A planted key must never leave the backend in plain text, and a key that cannot be decrypted is never used."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.management import call_command
from django.urls import reverse

from providers import resilience
from providers.models import ProviderConnection
from runs.models import Run, Status
from settings_app.models import AuditEvent

from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db
PLANTED = "sk-planted-Zq8vX3mN5bW2kR7tY1uI4oP6aS9dF0gH"
OTHER_KEYS = "pWl3WpQ9dY0bX1k5hKxFv0o6JjH0Zt0iJrX0s3bB2lE="


def runworkflow(*args: str) -> dict:
    out = StringIO()
    with contextlib.suppress(SystemExit):
        call_command("runworkflow", "learn-agentic-ai", "--json", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def database_text() -> str:
    chunks = []
    for model in apps.get_models():
        chunks.append(serializers.serialize("json", model.objects.all()))
    return "\n".join(chunks)


def files_containing(root: Path, text: str) -> list[str]:
    """Files under root holding text, searched by grep in another process: opening and closing the SQLite
    file from this process would drop this process's locks on it (POSIX advisory locks are per process)."""
    found = subprocess.run(["grep", "-rlaF", text, str(root)], capture_output=True, text=True)
    return found.stdout.split()


@pytest.fixture
def openai_env(monkeypatch):
    with fake_llm("openai") as server:
        monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
        monkeypatch.setenv("OPENAI_API_BASE", server.base_url)
        yield server


def test_a_run_retries_two_429s_and_succeeds_with_the_key_from_the_environment(catalog, openai_env):
    openai_env.push({"status": 429, "headers": {"Retry-After": "0"}}, {"status": 429, "headers": {"Retry-After": "0"}})
    result = runworkflow("--mode", "test", "--model", "openai/gpt-4o-mini")
    assert result["status"] == "succeeded", result["reason"]
    assert result["model"] == "openai/gpt-4o-mini"
    assert Decimal(result["cost_usd"]) > 0 and Decimal(result["estimated_cost_usd"]) > 0  # decimal strings
    trace = json.loads(Path(next(a["path"] for a in result["artifacts"] if a["name"] == "trace.json")).read_text())
    # The first 429 answers validation's connection check (busy is fine: the run retries), the second the
    # first step's first attempt, which is retried.
    check = next(c for c in trace["validation"]["checks"] if c["check"] == "connection")
    assert check["ok"] and check["found"].startswith("busy (rate_limit)")
    first_call = trace["steps"][0]["calls"][0]
    assert [a["status"] for a in first_call["attempts"]] == ["rate_limit", "ok"]
    assert [r["body"]["max_tokens"] for r in openai_env.requests[:3]] == [1, 600, 600]
    connection = ProviderConnection.objects.get(provider="openai")
    assert connection.from_environment and connection.key_last4 == PLANTED[-4:]
    assert all(r["headers"]["Authorization"] == f"Bearer {PLANTED}" for r in openai_env.requests)


def test_the_key_is_nowhere_in_plain_text_after_good_and_failing_runs(
    catalog, openai_env, alice_client, admin_client, caplog
):
    caplog.set_level(logging.DEBUG)
    assert runworkflow("--model", "openai/gpt-4o-mini")["status"] == "succeeded"
    openai_env.push({"status": 401, "message": f"Incorrect API key provided: {PLANTED}"})
    # Other topics, so the workflow's response cache does not answer instead of the provider.
    failed = runworkflow("--model", "openai/gpt-4o-mini", "--input", "topic=Planning")
    assert failed["status"] == "failed" and "rejected the API key" in failed["reason"]
    openai_env.push(*[{"status": 500, "message": f"upstream said {PLANTED}"}] * resilience.attempts())
    assert runworkflow("--model", "openai/gpt-4o-mini", "--input", "topic=Memory")["status"] == "failed"
    connection = ProviderConnection.objects.get()
    pages = [
        admin_client.get(reverse("settings:providers")).content.decode(),
        admin_client.get(reverse("settings:edit", args=[connection.pk])).content.decode(),
        admin_client.get(reverse("admin:providers_providerconnection_change", args=[connection.pk])).content.decode(),
        admin_client.get(reverse("admin:providers_providerconnection_changelist")).content.decode(),
    ]
    pages += [admin_client.get(reverse("runs:detail", args=[run.pk])).content.decode() for run in Run.objects.all()]
    places = {
        "database": database_text(),
        "logs": caplog.text,
        "pages": "\n".join(pages),
        "run reasons": " ".join(Run.objects.values_list("reason", flat=True)),
    }
    assert files_containing(Path(settings.DATA_DIR), PLANTED) == []
    assert files_containing(Path(settings.DATA_DIR), PLANTED[3:-4]) == []
    for where, text in places.items():
        assert PLANTED not in text, f"the key is in the {where}"
        assert PLANTED[3:-4] not in text, f"part of the key is in the {where}"
    assert "••••" + PLANTED[-4:] in pages[0]


def test_with_other_encryption_keys_the_run_is_refused_before_any_provider_call(
    catalog, openai_env, monkeypatch, settings
):
    assert runworkflow("--model", "openai/gpt-4o-mini")["status"] == "succeeded"
    calls_before = len(openai_env.requests)
    monkeypatch.delenv("OPENAI_API_KEY")
    settings.FIELD_ENCRYPTION_KEYS = [OTHER_KEYS]
    result = runworkflow("--model", "openai/gpt-4o-mini")
    assert result["status"] == "failed"
    assert "cannot be decrypted with the configured FIELD_ENCRYPTION_KEYS" in result["reason"]
    assert len(openai_env.requests) == calls_before


def test_the_first_model_failing_ends_succeeded_through_the_second(catalog, openai_env, monkeypatch):
    with fake_llm("anthropic") as claude:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" + "k" * 40)
        monkeypatch.setenv("ANTHROPIC_API_BASE", claude.base_url)
        openai_env.push(*[{"status": 503}] * 50)
        result = runworkflow("--model", "openai/gpt-4o-mini", "--model", "anthropic/claude-haiku-4-5-20251001")
    assert result["status"] == "succeeded", result["reason"]
    assert result["model"] == "anthropic/claude-haiku-4-5-20251001"
    assert claude.requests


def test_the_offline_model_is_never_a_silent_fallback(catalog, openai_env):
    openai_env.push(*[{"status": 500}] * 50)
    result = runworkflow("--model", "openai/gpt-4o-mini", "--model", "offline/demo")
    assert result["status"] == "failed"
    assert Run.objects.get().model_used == "openai/gpt-4o-mini"


def test_rotation_re_encrypts_every_key_under_the_new_primary_key(catalog, openai_env, settings):
    runworkflow("--model", "openai/gpt-4o-mini")
    old = ProviderConnection.objects.get().encrypted_key
    settings.FIELD_ENCRYPTION_KEYS = [OTHER_KEYS, *settings.FIELD_ENCRYPTION_KEYS]
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 1 provider key(s)" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEYS = [OTHER_KEYS]  # the old key can go now
    connection = ProviderConnection.objects.get()
    assert connection.encrypted_key != old
    from providers.crypto import decrypt

    assert decrypt(connection.encrypted_key) == PLANTED
    assert AuditEvent.objects.filter(action="rotated", target_id=str(connection.pk)).exists()


def test_audit_events_say_who_used_which_connection_without_the_key(catalog, openai_env):
    runworkflow("--model", "openai/gpt-4o-mini")
    events = list(AuditEvent.objects.order_by("at").values_list("action", "actor_name"))
    assert events == [("created", "system"), ("used", "cli")]
    assert PLANTED not in json.dumps(list(AuditEvent.objects.values()), default=str)
    run = Run.objects.get()
    assert run.status == Status.SUCCEEDED
