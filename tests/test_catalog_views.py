from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from catalog.models import Workflow
from catalog.specs import load_specs
from runs.models import Mode, Run, Status

from .factories import WorkflowVersionFactory

pytestmark = pytest.mark.django_db


def test_every_page_but_the_login_page_needs_a_login(client, catalog):
    for url in (
        reverse("catalog:index"),
        reverse("catalog:detail", args=["learn-agentic-ai"]),
        reverse("runs:history"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert client.get(reverse("login")).status_code == 200


def test_the_catalog_lists_workflows_and_filters_by_persona(alice_client, catalog):
    WorkflowVersionFactory(
        workflow__slug="for-researchers", workflow__title="Paper reader", workflow__personas=["researcher"]
    )
    page = alice_client.get(reverse("catalog:index")).content.decode()
    assert "Learn Agentic AI" in page and "Paper reader" in page
    page = alice_client.get(reverse("catalog:index"), {"persona": "student"}).content.decode()
    assert "Learn Agentic AI" in page and "Paper reader" not in page


def test_the_catalog_answers_htmx_with_the_list_fragment_only(alice_client, catalog):
    response = alice_client.get(reverse("catalog:index"), {"persona": "student"}, HTTP_HX_REQUEST="true")
    assert b"<html" not in response.content
    assert b"Learn Agentic AI" in response.content


def test_the_catalog_uses_a_fixed_number_of_queries(alice_client, catalog, count_queries):
    one, _ = count_queries(alice_client, reverse("catalog:index"))
    for _ in range(10):
        WorkflowVersionFactory()
    eleven, page = count_queries(alice_client, reverse("catalog:index"))
    assert eleven == one <= 8  # session, user, permissions, workflows, their skills
    assert page.count('class="card"') == 10 + len(load_specs(settings.WORKFLOWS_DIR))


def test_a_disabled_workflow_is_hidden_and_cannot_be_run(alice_client, catalog):
    Workflow.objects.filter(pk=catalog.pk).update(enabled=False)
    assert b"Learn Agentic AI" not in alice_client.get(reverse("catalog:index")).content
    assert alice_client.get(reverse("catalog:detail", args=[catalog.slug])).status_code == 404


def test_the_workflow_page_shows_a_form_built_from_the_schema(alice_client, catalog):
    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert 'name="topic"' in page and 'value="The agent loop and tool use"' in page
    assert "<textarea" in page and "<select" in page and 'type="checkbox"' in page
    assert 'type="number"' in page and 'max="240"' in page
    assert "learn-agentic-ai" in page  # its skill


def test_submitting_creates_a_queued_run_and_redirects_to_it(
    alice_client, alice, catalog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_client.post(
            reverse("catalog:detail", args=[catalog.slug]),
            {"topic": "Planning", "level": "beginner", "session_minutes": "30", "focus": ["planning"], "mode": "test"},
        )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:detail", args=[run.pk])
    assert (run.user, run.status, run.mode) == (alice, Status.QUEUED, Mode.TEST)
    assert run.inputs["topic"] == "Planning" and run.inputs["focus"] == ["planning"]
    assert len(callbacks) == 1  # the task is queued only once the row is committed


def test_bad_input_shows_errors_beside_the_field_and_creates_no_run(alice_client, catalog):
    response = alice_client.post(
        reverse("catalog:detail", args=[catalog.slug]),
        {"topic": "x" * 500, "level": "wizard", "session_minutes": "5", "mode": "test"},
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert 'id="id_topic_error"' in page and 'id="id_level_error"' in page and 'id="id_session_minutes_error"' in page
    assert not Run.objects.exists()


def test_a_full_run_before_a_test_run_is_refused_on_the_page(alice_client, catalog):
    response = alice_client.post(
        reverse("catalog:detail", args=[catalog.slug]),
        {"topic": "Planning", "level": "beginner", "session_minutes": "30", "mode": "full"},
    )
    assert response.status_code == 422
    assert b"needs a passed test run" in response.content
    assert not Run.objects.exists()


def test_a_student_finds_learn_agentic_ai_by_typing_agent(alice_client, catalog):
    WorkflowVersionFactory(
        workflow__slug="paper-reader", workflow__title="Paper reader", workflow__summary="Read a paper."
    )
    fragment = alice_client.get(reverse("catalog:index"), {"q": "agent"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Learn Agentic AI" in fragment and "Paper reader" not in fragment
    assert "1 workflow matching “agent”" in fragment


@pytest.mark.parametrize("query", ["learn-agentic-ai", "TOOL-USE", "study notes"])
def test_search_covers_title_summary_tags_and_skill(alice_client, catalog, query):
    assert b"Learn Agentic AI" in alice_client.get(reverse("catalog:index"), {"q": query}).content


def test_tags_filter_the_catalog(alice_client, catalog):
    WorkflowVersionFactory(workflow__slug="other", workflow__title="Other", workflow__tags=["other"])
    page = alice_client.get(reverse("catalog:index"), {"tag": "agents"}).content.decode()
    assert "Learn Agentic AI" in page and ">Other<" not in page


def test_the_workflow_page_estimates_the_cost_per_mode_for_each_connected_model(alice_client, catalog):
    from providers import services as provider_services
    from runs import estimates

    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert "runs use the offline demo model" in page
    provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="T", api_key="sk-estimate-0123456789abcdef"
    )
    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert "being counted" in page  # the worker counts the tokens (tests/test_pages_estimates.py)
    estimates.refresh(catalog.latest_version.pk)
    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert '<span class="estimate-model"><span class="model-name">openai/<wbr>gpt-4o-mini</span></span>' in page
    assert page.count("≤ $0.0") == 2


def test_the_workflow_page_offers_a_full_run_for_each_passed_test_run(alice_client, alice, catalog):
    from runs import pipeline, services

    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert "Ready for a full run" not in page
    run = services.start_run(workflow_version=catalog.latest_version, user=alice, inputs={}, mode="test", queue=False)
    pipeline.execute(run.pk)
    page = alice_client.get(reverse("catalog:detail", args=[catalog.slug])).content.decode()
    assert "Ready for a full run" in page and f'action="{reverse("runs:full", args=[run.pk])}"' in page
