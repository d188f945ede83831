"""One model rule for every way a run starts (web, API, CLI, rerun, resume): the model must be one the
workflow offers now, and a malformed name is refused before any request leaves the platform — the
stand-in provider's request log is the proof."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from api.tokens import create_token
from providers import services as provider_services
from runs import pipeline, services
from runs.models import Mode, Run, Status

from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db
KEY = "AIzaSyD-model-policy-test-key-0123456789"
PATH_ATTACK = "gemini/../../../../pwned-path"
ATTACKS = [
    PATH_ATTACK,
    "gemini/gemini-2.5-flash?key=x#",
    "gemini/gemini 2.5",
    "gemini/%2e%2e/pwned",
    "openai_compatible/../../admin",
    "gemini/" + "a" * 200,
]


@pytest.fixture
def gemini():
    """A Gemini connection to the stand-in server: every request it gets is in `server.requests`."""
    with fake_llm("gemini") as server:
        provider_services.save_connection(
            actor=None, ip=None, provider="gemini", label="Stand-in Gemini", api_key=KEY,
            api_base=server.base_url + "/v1beta", allow_private_network=True,
            default_model="gemini/gemini-2.5-flash",
        )  # fmt: skip
        yield server


def api_post(user, body):
    secret = create_token(user=user, name="policy", scope="run").secret
    return Client().post("/api/v1/runs", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.mark.parametrize("model", [*ATTACKS, "gemini/gemini-made-up-9000", "openai/gpt-4o-mini"])
def test_the_api_refuses_a_model_the_workflow_does_not_offer_and_calls_nobody(alice, catalog, gemini, model):
    response = api_post(alice, {"workflow": "learn-agentic-ai", "mode": "test", "model": model})
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid_model"
    assert not Run.objects.exists() and gemini.requests == []


def test_the_api_accepts_an_offered_model(alice, catalog, gemini):
    response = api_post(alice, {"workflow": "learn-agentic-ai", "mode": "validate", "model": "gemini/gemini-2.5-flash"})
    assert response.status_code == 201, response.content
    assert Run.objects.get().requested_models == ["gemini/gemini-2.5-flash"]


def test_the_web_form_refuses_the_same_names(alice_client, catalog, gemini):
    url = reverse("catalog:detail", args=["learn-agentic-ai"])
    for model in (PATH_ATTACK, "gemini/gemini-made-up-9000"):
        response = alice_client.post(url, {"mode": "test", "run-model": model, "topic": "agents"})
        assert response.status_code == 422
    assert not Run.objects.exists() and gemini.requests == []


def test_the_command_line_refuses_them_with_exit_2(catalog, gemini):
    for model in (PATH_ATTACK, "gemini/gemini-made-up-9000"):
        with pytest.raises(CommandError) as refused:
            call_command("runworkflow", "learn-agentic-ai", "--model", model)
        assert refused.value.returncode == 2
    assert not Run.objects.exists() and gemini.requests == []


@pytest.mark.parametrize("again", ["resume", "rerun", "replay", "full"])
def test_resume_and_rerun_of_a_run_holding_a_bad_name_are_refused_and_call_nobody(alice, catalog, gemini, again):
    """A run recorded before this rule (or written around it) cannot smuggle the name back in."""
    old = Run.objects.create(
        user=alice, workflow_version=catalog.current_version, mode=Mode.TEST, status=Status.FAILED,
        inputs={}, requested_models=[PATH_ATTACK],
    )  # fmt: skip
    secret = create_token(user=alice, name="again", scope="run").secret
    response = Client().post(f"/api/v1/runs/{old.pk}/{again}", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code in (409, 422), response.content
    assert Run.objects.count() == 1 and gemini.requests == []
    with pytest.raises(services.RunRefused):
        services.resume_run(old) if again == "resume" else services.rerun(old, user=alice)


def test_validation_refuses_a_malformed_name_before_the_connection_check(alice, catalog, gemini):
    run = services.start_run(workflow_version=catalog.current_version, user=alice, inputs={}, mode=Mode.TEST,
                             queue=False)  # fmt: skip
    Run.objects.filter(pk=run.pk).update(requested_models=[PATH_ATTACK])
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.FAILED and "is not a usable model name" in run.reason
    assert gemini.requests == []


def test_fallbacks_no_longer_offered_are_dropped_not_run(alice, catalog, gemini):
    run = services.start_run(
        workflow_version=catalog.current_version, user=alice, inputs={}, mode=Mode.VALIDATE, queue=False,
        models=["gemini/gemini-2.5-flash", "openai/gpt-4o-mini", "gemini/gemini-2.5-flash"],
    )  # fmt: skip
    assert run.requested_models == ["gemini/gemini-2.5-flash"]
