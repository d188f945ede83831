"""GET /api/v1/runs/{id}/events: Server-Sent Events that follow the Run row until the run ends."""

from __future__ import annotations

import json

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from api import events
from api.tokens import create_token
from runs.models import Run, Status

from .factories import RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _every_stream_gives_its_slot_back():
    yield
    assert events._open_streams == 0


@pytest.fixture
def api(alice, settings):
    settings.API_EVENTS_POLL_SECONDS = 0.01
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='read').secret}")


def parse(chunk: bytes) -> tuple[str, dict]:
    name, data = "", {}
    for line in chunk.decode().splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
    return name, data


def next_event(stream) -> tuple[str, dict]:
    for chunk in stream:
        name, data = parse(chunk)
        if name:
            return name, data
    raise AssertionError("the stream ended")


def test_it_streams_status_and_output_changes_until_the_run_ends(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING, steps_total=4)
    response = api.get(f"/api/v1/runs/{run.pk}/events")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    stream = iter(response.streaming_content)
    assert next(stream).startswith(b"retry: ")
    name, data = next_event(stream)
    assert name == "status" and data["status"] == "running" and data["finished"] is False

    Run.objects.filter(pk=run.pk).update(current_step="Outline (1/4)", steps_done=1, live_output="Agents call")
    assert next_event(stream) == ("status", {**data, "current_step": "Outline (1/4)", "steps_done": 1, "percent": 25})
    assert next_event(stream) == ("output", {"text": "Agents call", "reset": False, "step": "Outline (1/4)"})
    Run.objects.filter(pk=run.pk).update(live_output="Agents call tools.")
    assert next_event(stream) == ("output", {"text": " tools.", "reset": False, "step": "Outline (1/4)"})
    Run.objects.filter(pk=run.pk).update(live_output="A new call", current_step="Lesson (2/4)", steps_done=2)
    next_event(stream)  # the status change
    assert next_event(stream) == ("output", {"text": "A new call", "reset": True, "step": "Lesson (2/4)"})

    Run.objects.filter(pk=run.pk).update(
        status=Status.SUCCEEDED, steps_done=4, live_output="", finished_at=timezone.now(), reason="Done."
    )
    events = [parse(chunk) for chunk in stream]
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded" and events[-1][1]["finished"]


def test_a_finished_run_sends_its_state_and_ends_at_once(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.FAILED, reason="Boom.")
    events = [parse(c) for c in api.get(f"/api/v1/runs/{run.pk}/events").streaming_content]
    names = [name for name, _ in events if name]
    assert names == ["status", "end"] and events[-1][1]["reason"] == "Boom."


def test_the_stream_has_a_bounded_lifetime(api, alice, catalog, settings):
    settings.API_EVENTS_MAX_SECONDS = 0.2
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.QUEUED)
    names = [parse(c)[0] for c in api.get(f"/api/v1/runs/{run.pk}/events").streaming_content]
    assert [n for n in names if n] == ["status", "timeout"]


def test_a_deleted_run_ends_the_stream(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    stream = iter(api.get(f"/api/v1/runs/{run.pk}/events").streaming_content)
    next_event(stream)
    Run.objects.filter(pk=run.pk).delete()
    assert next_event(stream) == ("end", {"status": "deleted", "finished": True})
    assert list(stream) == []


def test_a_process_serves_a_bounded_number_of_streams_and_frees_the_slot_when_one_closes(api, alice, catalog, settings):
    settings.API_EVENTS_STREAMS_PER_PROCESS = 1
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    first = api.get(f"/api/v1/runs/{run.pk}/events")
    assert first.status_code == 200
    busy = api.get(f"/api/v1/runs/{run.pk}/events")
    assert busy.status_code == 429 and busy.json()["code"] == "too_many_streams" and busy["Retry-After"] == "5"
    # What the server does when the client goes away, read or not (without closing the test's connection).
    request_finished.disconnect(close_old_connections)
    try:
        first.close()
    finally:
        request_finished.connect(close_old_connections)
    again = api.get(f"/api/v1/runs/{run.pk}/events")
    assert again.status_code == 200
    Run.objects.filter(pk=run.pk).update(status=Status.FAILED)
    assert [parse(c)[0] for c in again.streaming_content][-1] == "end"
