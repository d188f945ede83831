"""The run page as a story: a step timeline in every state, only the actions that apply, live updates."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog import inputs as run_inputs
from runs import services
from runs.models import Artifact, Mode, Run, Status

from .factories import RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_run(alice, catalog):
    def make(**fields) -> Run:
        fields.setdefault("started_at", timezone.now())
        fields.setdefault("inputs", run_inputs.defaults(catalog.latest_version.spec["inputs"]))
        return RunFactory(user=alice, workflow_version=catalog.latest_version, steps_total=2, **fields)

    return make


def trace_of(run: Run, *steps: dict) -> None:
    Artifact.write(run, "trace.json", json.dumps({"format": "awp-trace/1", "steps": list(steps)}))


def page_of(client, run: Run) -> str:
    return client.get(reverse("runs:detail", args=[run.pk])).content.decode()


def step_block(page: str, step_id: str) -> str:
    start = page.index(f'id="step-{step_id}"')
    end = page.find('class="step-item', start)
    return page[start : end if end != -1 else len(page)]


def test_the_running_step_streams_its_output_as_escaped_text_and_the_rest_wait(alice_client, make_run):
    run = make_run(
        status=Status.RUNNING,
        current_step="Outline from the skill's references",
        model_used="openai/gpt-4o-mini",
        live_output="Partial <script>alert(1)</script> **answer**",
        live_tokens=12,
    )
    page = page_of(alice_client, run)
    assert 'class="step-item state-done" id="step-validate"' in page
    assert 'class="step-item state-running" id="step-outline"' in page
    assert 'class="step-item state-queued" id="step-notes"' in page
    assert "Partial &lt;script&gt;alert(1)&lt;/script&gt; **answer**</pre>" in page  # plain text while streaming
    assert "<script>alert(1)" not in page
    assert "12 tokens so far" in page
    assert 'data-elapsed="' in page  # the timers tick
    assert "Cancel run" in page and "Run again" not in page


def test_a_failed_run_shows_the_step_it_failed_in_red_with_the_reason_and_what_it_cost(alice_client, make_run):
    run = make_run(
        status=Status.FAILED,
        reason="The provider refused the request.",
        model_used="openai/gpt-4o-mini",
        step_outputs={"outline": "# Outline\n\n<img src=x onerror=alert(1)> done"},
        steps_done=1,
        finished_at=timezone.now(),
    )
    trace_of(
        run,
        {
            "id": "outline",
            "status": "done",
            "started_at": "2026-01-01T10:00:00+00:00",
            "finished_at": "2026-01-01T10:01:05+00:00",
            "calls": [
                {
                    "model": "openai/gpt-4o-mini",
                    "prompt_tokens": 100,
                    "completion_tokens": 20,
                    "cost_usd": "0.0052",
                    "tool_calls": [{"name": "read_reference", "arguments": "{}", "result": {"read": 1}}],
                }
            ],
        },
        {"id": "notes", "status": "interrupted", "started_at": "2026-01-01T10:01:05+00:00", "calls": []},
    )
    page = page_of(alice_client, run)
    outline, notes = step_block(page, "outline"), step_block(page, "notes")
    assert "state-done" in outline and "took 1 min 05 s" in outline and "120 tokens" in outline
    assert "$0.0052" in outline and "1 tool call" in outline and "<code>read_reference</code>" in outline
    assert "<h1>Outline</h1>" in outline and "<img" not in page  # rendered, sanitised
    assert 'class="step-item state-failed" id="step-notes"' in page
    assert "The provider refused the request." in notes
    assert "Prompt sent for" in notes and "--- system ---" in notes  # what was sent, collapsed
    assert ">Resume<" in page and "Reuses the 1 finished step at no cost" in page
    assert "Run again" in page and "Cancel run" not in page


def test_a_cancelled_run_marks_where_it_stopped_and_the_steps_after_it_as_not_run(alice_client, make_run):
    run = make_run(status=Status.CANCELLED, reason="Cancelled on request.", finished_at=timezone.now())
    trace_of(run, {"id": "outline", "status": "interrupted", "started_at": "2026-01-01T10:00:00", "calls": []})
    page = page_of(alice_client, run)
    assert 'class="step-item state-cancelled" id="step-outline"' in page
    assert 'class="step-item state-skipped" id="step-notes"' in page
    assert "Cancelled on request." in step_block(page, "outline")


def test_a_raw_response_with_a_key_in_it_is_shown_redacted(alice_client, make_run):
    run = make_run(
        status=Status.SUCCEEDED,
        step_outputs={"outline": "use sk-live0123456789abcdef please", "notes": "ok"},
        finished_at=timezone.now(),
    )
    page = page_of(alice_client, run)
    assert "sk-live0123456789abcdef" not in page and "[redacted]" in page


def test_a_passed_validation_offers_the_test_run_with_the_same_inputs(alice_client, alice, catalog):
    run = services.start_run(workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.VALIDATE)
    Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    page = page_of(alice_client, run)
    assert "Test run with these inputs" in page and "Run full" not in page and "Validate again" in page
    response = alice_client.post(reverse("runs:test", args=[run.pk]))
    test = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == reverse("runs:detail", args=[test.pk])
    assert test.mode == Mode.TEST and test.inputs == run.inputs


def test_cancel_from_htmx_answers_with_the_morphed_body_showing_cancelling(alice_client, make_run):
    run = make_run(status=Status.RUNNING, current_step="Outline from the skill's references")
    response = alice_client.post(reverse("runs:cancel", args=[run.pk]), HTTP_HX_REQUEST="true")
    fragment = response.content.decode()
    assert response.status_code == 200 and "<html" not in fragment
    assert 'id="action-cancel" class="button danger" disabled' in fragment and "Cancelling…" in fragment
    assert Run.objects.get(pk=run.pk).cancel_requested
    assert "Cancelling…" in page_of(alice_client, run)  # and it stays so until the worker stops the run


def test_the_last_status_update_tells_htmx_to_stop_polling(alice_client, make_run):
    run = make_run(status=Status.RUNNING, current_step="Validate")
    url = reverse("runs:status", args=[run.pk])
    assert alice_client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    assert alice_client.get(url, HTTP_HX_REQUEST="true").status_code == 286


def test_a_passed_test_run_outside_the_window_no_longer_offers_the_full_run(alice_client, make_run, settings):
    from datetime import timedelta

    run = make_run(status=Status.SUCCEEDED, finished_at=timezone.now() - timedelta(hours=1))
    assert "Run full with these inputs" in page_of(alice_client, run)
    settings.FULL_RUN_WINDOW_HOURS = 0.5
    assert "Run full with these inputs" not in page_of(alice_client, run)


def test_a_run_cancelled_between_steps_marks_the_next_step_as_where_it_stopped(alice_client, make_run):
    run = make_run(
        status=Status.CANCELLED,
        reason="Cancelled on request.",
        model_used="offline/demo",
        step_outputs={"outline": "done"},
        steps_done=1,
        finished_at=timezone.now(),
    )
    trace_of(run, {"id": "outline", "status": "done", "calls": []})  # the next step never started
    page = page_of(alice_client, run)
    assert 'class="step-item state-done" id="step-outline"' in page
    assert 'class="step-item state-cancelled" id="step-notes"' in page
    assert "Cancelled on request." in step_block(page, "notes")
