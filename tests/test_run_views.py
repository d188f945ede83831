from __future__ import annotations

import pytest
from django.templatetags.static import static
from django.urls import reverse

from runs import pipeline, services
from runs.models import Mode, Run, Status

from .factories import RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(catalog, alice):
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False
    )
    pipeline.execute(run.pk)
    run.refresh_from_db()
    return run


def test_the_run_page_shows_status_costs_and_sanitized_notes(alice_client, finished_run):
    page = alice_client.get(reverse("runs:detail", args=[finished_run.pk])).content.decode()
    assert "Succeeded" in page
    assert "offline demo, not AI" in page
    assert "<dt>Actual cost</dt><dd>free</dd>" in page  # the same word as My runs and Usage
    assert "<h1>Learn Agentic AI: The agent loop and tool use</h1>" in page
    assert 'role="status"' in page and 'aria-live="polite"' in page
    assert "hx-trigger" not in page  # polling stops once the run has ended
    assert "data-events" not in page and 'http-equiv="refresh"' not in page  # and so do the stream and refresh


def test_a_running_run_page_polls_its_status_fragment(alice_client, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    page = alice_client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    # Live updates: static/js/run.js opens the run's event stream (SSE) and fires run-changed on each event;
    # htmx then fetches the status fragment. Until the stream's first event, and whenever it is down, htmx
    # polls every RUN_POLL_SECONDS; with no JavaScript at all the page refreshes itself.
    assert f'data-events="{reverse("api-v1:run_events", args=[run.pk])}"' in page
    assert f'hx-get="{reverse("runs:status", args=[run.pk])}"' in page
    assert 'hx-trigger="run-changed, every 1.0s[!window.runStreaming]"' in page
    assert f'<script src="{static("js/run.js")}" defer></script>' in page
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in page
    fragment = alice_client.get(reverse("runs:status", args=[run.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and 'id="run-body"' in fragment
    assert 'hx-swap="morph:outerHTML"' in fragment and 'id="run-announcer"' in fragment


def test_artifacts_download_as_attachments(alice_client, finished_run):
    response = alice_client.get(reverse("runs:download", args=[finished_run.pk, "notes.md"]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="notes.md"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"# Learn Agentic AI")
    trace = alice_client.get(reverse("runs:download", args=[finished_run.pk, "trace.json"]))
    assert trace["Content-Type"] == "application/json"


@pytest.mark.parametrize("name", ["../../db.sqlite3", "..%2F..%2Fdb.sqlite3", "missing.md", ".env"])
def test_a_download_outside_the_runs_artifacts_answers_404(alice_client, finished_run, name):
    assert alice_client.get(reverse("runs:detail", args=[finished_run.pk]) + f"artifacts/{name}").status_code == 404


def test_another_users_run_answers_404_for_every_action(client, bob, finished_run):
    client.force_login(bob)
    for name in ("runs:detail", "runs:status"):
        assert client.get(reverse(name, args=[finished_run.pk])).status_code == 404
    assert client.get(reverse("runs:download", args=[finished_run.pk, "notes.md"])).status_code == 404
    for name in ("runs:cancel", "runs:full"):
        assert client.post(reverse(name, args=[finished_run.pk])).status_code == 404
    assert Run.objects.count() == 1


def test_run_full_from_a_passed_test_run_starts_a_full_run(alice_client, finished_run):
    response = alice_client.post(reverse("runs:full", args=[finished_run.pk]))
    full = Run.objects.get(mode=Mode.FULL)
    assert response["Location"] == reverse("runs:detail", args=[full.pk])
    assert full.inputs == finished_run.inputs


def test_cancel_stops_a_queued_run(alice_client, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version)
    alice_client.post(reverse("runs:cancel", args=[run.pk]))
    run.refresh_from_db()
    assert run.status == Status.CANCELLED


def test_the_history_lists_only_my_runs_in_a_fixed_number_of_queries(alice_client, alice, bob, catalog, count_queries):
    RunFactory(user=alice, workflow_version=catalog.latest_version)
    one, _ = count_queries(alice_client, reverse("runs:history"))
    for _ in range(7):
        RunFactory(user=alice, workflow_version=catalog.latest_version)
    RunFactory(user=bob, workflow_version=catalog.latest_version, inputs={"topic": "bobs"})
    eight, page = count_queries(alice_client, reverse("runs:history"))
    assert eight == one  # no query per row
    assert page.count("Learn Agentic AI</a>") == 8


def test_the_finished_run_page_has_a_trace_viewer_and_a_zip_of_all_artifacts(alice_client, finished_run):
    import io
    import zipfile

    page = alice_client.get(reverse("runs:detail", args=[finished_run.pk])).content.decode()
    assert '<details class="step-detail">' in page and "<code>read_reference</code>" in page
    response = alice_client.get(reverse("runs:download_all", args=[finished_run.pk]))
    assert response["Content-Disposition"].startswith('attachment; filename="learn-agentic-ai-')
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert sorted(names) == ["notes.md", "trace.json", "validation.json"]


def test_a_finished_run_offers_only_the_actions_that_apply(alice_client, finished_run):
    page = alice_client.get(reverse("runs:detail", args=[finished_run.pk])).content.decode()
    assert "Cancel run" not in page and ">Resume<" not in page and " disabled" not in page
    assert 'id="why-full"><strong>Run full with these inputs</strong>: This passed test run unlocks' in page


def test_history_filters_by_status_and_mode(alice_client, alice, catalog):
    RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.FAILED)
    RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.SUCCEEDED, mode=Mode.FULL)
    page = alice_client.get(reverse("runs:history"), {"status": "failed"}).content.decode()
    assert page.count("Learn Agentic AI</a>") == 1 and "Failed" in page
    page = alice_client.get(reverse("runs:history"), {"mode": "full", "workflow": "learn-agentic-ai"}).content.decode()
    assert page.count("Learn Agentic AI</a>") == 1 and "Full run" in page


def test_the_main_pages_answer_well_under_200_ms(alice_client, finished_run):
    import statistics
    import time

    urls = [
        reverse("catalog:index"),
        reverse("catalog:detail", args=["learn-agentic-ai"]),
        reverse("runs:detail", args=[finished_run.pk]),
        reverse("runs:history"),
        reverse("runs:usage"),
    ]
    for url in urls:
        alice_client.get(url)  # warm caches and template loading
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            assert alice_client.get(url).status_code == 200
            timings.append(time.perf_counter() - started)
        assert statistics.median(timings) < 0.2, f"{url}: {statistics.median(timings) * 1000:.0f} ms"
