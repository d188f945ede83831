"""Model choice on the workflow form, and runs on whatever the operator connected (an OpenAI-compatible server)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from catalog.models import WorkflowVersion
from providers.models import ProviderConnection
from providers.resolution import ModelNotAvailable, model_choices, resolve_for_run
from runs import pipeline
from runs.models import Run, Status
from settings_app.roles import OPERATOR, assign_role

from .factories import UserFactory
from .support.fake_llm import JUDGE_MARKER, fake_llm

pytestmark = pytest.mark.django_db


def local_server(base: str = "http://127.0.0.1:9/v1", **extra) -> ProviderConnection:
    return ProviderConnection.objects.create(
        provider="openai_compatible",
        label="Lab server",
        api_base=base,
        allow_private_network=True,
        allow_unpriced=True,  # a lab server nobody pays per token: the operator allows unpriced runs
        default_model="openai_compatible/llama3.2",
        **extra,
    )


def cloud(provider: str, model: str, **extra) -> ProviderConnection:
    connection = ProviderConnection(provider=provider, label=f"Team {provider}", default_model=model, **extra)
    connection.set_key("sk-test-" + "z" * 30)
    connection.save()
    return connection


def page(client, slug: str = "learn-agentic-ai") -> str:
    return client.get(reverse("catalog:detail", args=[slug])).content.decode()


def post(client, model: str | None, slug: str = "learn-agentic-ai"):
    data = {"topic": "Tool use", "level": "beginner", "session_minutes": 30, "focus": ["tool-use"], "mode": "test"}
    if model is not None:
        data["run-model"] = model
    return client.post(reverse("catalog:detail", args=[slug]), data)


def test_the_form_offers_the_connected_model_first_and_the_offline_demo_last_and_labelled(catalog, alice_client):
    local_server()
    html = page(alice_client)
    offered = [c.name for c in model_choices(catalog.latest_version.spec)]
    assert offered == ["openai_compatible/llama3.2", "offline/demo"]
    assert '<option value="openai_compatible/llama3.2" selected>' in html
    assert "Offline demo model (not AI)" in html


def test_the_operator_order_decides_the_default(catalog):
    cloud("openai", "openai/gpt-4o-mini", position=20)
    local_server(position=10)
    names = [c.name for c in model_choices(catalog.latest_version.spec)]
    assert names == ["openai_compatible/llama3.2", "openai/gpt-4o-mini", "offline/demo"]


def test_the_chosen_model_is_the_runs_model_with_the_others_as_fallbacks(catalog, alice_client):
    local_server()
    cloud("openai", "openai/gpt-4o-mini")
    response = post(alice_client, "openai/gpt-4o-mini")
    assert response.status_code == 302
    assert Run.objects.get().requested_models == ["openai/gpt-4o-mini", "openai_compatible/llama3.2"]


def test_a_model_that_is_not_offered_is_refused_on_the_server(catalog, alice_client):
    local_server()
    response = post(alice_client, "openai/gpt-4o")  # not connected: made up in the browser
    assert response.status_code == 422
    assert "Choose one of the models offered" in response.content.decode()
    assert not Run.objects.exists()


def test_a_form_posted_without_a_model_gets_the_default(catalog, alice_client):
    local_server()
    assert post(alice_client, None).status_code == 302
    assert Run.objects.get().requested_models == ["openai_compatible/llama3.2"]


def _only_cloud_spec(catalog) -> WorkflowVersion:
    version = catalog.latest_version
    version.spec = {**version.spec, "models": ["anthropic/claude-3-5-haiku-latest"], "any_model": False}
    version.save(update_fields=["spec"])
    return version


def test_a_spec_that_needs_its_own_models_tells_a_student_to_ask_an_operator(catalog, alice_client):
    _only_cloud_spec(catalog)
    local_server()
    html = page(alice_client)
    assert [c.name for c in model_choices(catalog.latest_version.spec)] == ["offline/demo"]
    assert "This workflow runs on anthropic/claude-3-5-haiku-latest." in html
    assert "Ask an operator to connect a model provider" in html
    assert "Open Providers" not in html


def test_an_operator_is_told_which_connection_to_add(catalog, client):
    _only_cloud_spec(catalog)
    operator = UserFactory(username="olga")
    assign_role(operator, OPERATOR)
    client.force_login(operator)
    html = page(client)
    assert "Connect a provider under Providers" in html and "Open Providers" in html


def test_a_run_with_no_usable_model_fails_in_words_a_student_understands(catalog):
    _only_cloud_spec(catalog)
    local_server()
    with pytest.raises(ModelNotAvailable, match="Ask an operator"):
        resolve_for_run(catalog.latest_version.spec, [])


def test_a_shipped_workflow_runs_end_to_end_on_an_openai_compatible_server(catalog, alice):
    """No model named anywhere: the spec allows any connected chat model, and the local server is one."""
    from runs import services

    with fake_llm("openai") as server:
        local_server(server.base_url)
        run = services.start_run(
            workflow_version=catalog.latest_version, user=alice, inputs={}, mode="test", queue=False
        )
        pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    assert run.model_used == "openai_compatible/llama3.2"
    # two steps and the quality judge's call (the judge is the model that ran the steps) are the run's; the
    # connection check (a fourth request, max_tokens 1) is the platform's, not the run's
    assert (run.prompt_tokens, run.completion_tokens) == (300, 150) and len(server.requests) == 4
    judged = [r for r in server.requests if r["body"]["messages"][0]["content"].startswith(JUDGE_MARKER)]
    assert len(judged) == 1 and [r["body"]["max_tokens"] for r in server.requests].count(1) == 1
    assert {r["body"]["model"] for r in server.requests} == {"llama3.2"}
