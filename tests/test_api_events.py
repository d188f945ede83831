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
from runs.control import RunControl
from runs.live_text import save_texts
from runs.models import Run, Status

from .factories import RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _every_stream_gives_its_slot_back():
    yield
    assert events._open_streams == 0 and events._open_by_user == {}


@pytest.fixture
def api(alice, settings):
    settings.API_EVENTS_POLL_SECONDS = 0.01
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='read').secret}")


def parse(chunk: bytes) -> tuple[str, dict]:
    return parse_with_id(chunk)[1:]


def parse_with_id(chunk: bytes) -> tuple[int | None, str, dict]:
    event_id, name, data = None, "", {}
    for line in chunk.decode().splitlines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
    return event_id, name, data


def next_event(stream) -> tuple[str, dict]:
    for chunk in stream:
        name, data = parse(chunk)
        if name:
            return name, data
    raise AssertionError("the stream ended")


def stream_text(run, *pieces: str, step: str = "", new_call: bool = False) -> RunControl:
    """What the engine does: the model's pieces reach the run's control, and a flush writes them."""
    control = _controls.setdefault(run.pk, RunControl(run.pk))
    if new_call:
        control.new_call(step)
    for piece in pieces:
        control.on_text(piece)
    save_texts([control])
    return control


_controls: dict = {}


@pytest.fixture(autouse=True)
def _fresh_controls():
    _controls.clear()


def test_it_streams_status_and_output_changes_until_the_run_ends(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING, steps_total=4)
    response = api.get(f"/api/v1/runs/{run.pk}/events")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    stream = iter(response.streaming_content)
    assert next(stream).startswith(b"retry: ")
    name, data = next_event(stream)
    assert name == "status" and data["status"] == "running" and data["finished"] is False
    assert data["cost_usd"] == "0"  # a decimal string, never "0E-8"

    Run.objects.filter(pk=run.pk).update(current_step="Outline (1/4)", steps_done=1)
    assert next_event(stream) == ("status", {**data, "current_step": "Outline (1/4)", "steps_done": 1, "percent": 25})
    stream_text(run, "Agents", " call", step="Outline (1/4)", new_call=True)
    assert next_event(stream) == ("output", {"text": "Agents call", "call": 1, "step": "Outline (1/4)", "reset": True})
    stream_text(run, " tools.")
    assert next_event(stream) == ("output", {"text": " tools.", "call": 1, "step": "Outline (1/4)", "reset": False})
    stream_text(run, "A new call", step="Lesson (2/4)", new_call=True)
    assert next_event(stream) == ("output", {"text": "A new call", "call": 2, "step": "Lesson (2/4)", "reset": True})

    Run.objects.filter(pk=run.pk).update(
        status=Status.SUCCEEDED, steps_done=4, finished_at=timezone.now(), reason="Done."
    )
    events = [parse(chunk) for chunk in stream]
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded" and events[-1][1]["finished"]


def test_every_event_has_an_id_and_last_event_id_resumes_with_exactly_the_text_not_yet_sent(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    control = stream_text(run, "w0 w1", step="One", new_call=True)
    stream_text(run, " w2 w3")
    stream_text(run, "x0", step="Two", new_call=True)
    stream_text(run, " x1")
    Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    whole = [parse_with_id(c) for c in api.get(f"/api/v1/runs/{run.pk}/events").streaming_content]
    events = [e for e in whole if e[1]]
    assert all(event_id is not None for event_id, _, _ in events)
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(ids) and ids[-1] == control.text_seq == 4
    assert [d["text"] for _, n, d in events if n == "output"] == ["w0 w1", " w2 w3", "x0", " x1"]

    for last in range(5):
        resumed = api.get(f"/api/v1/runs/{run.pk}/events", HTTP_LAST_EVENT_ID=str(last))
        rest = [parse_with_id(c) for c in resumed.streaming_content]
        outputs = [(i, d) for i, n, d in rest if n == "output"]
        assert [i for i, _ in outputs] == list(range(last + 1, 5))
        assert [d["text"] for _, d in outputs] == ["w0 w1", " w2 w3", "x0", " x1"][last:]
        if outputs:  # a resumed stream knows whether the next text starts a new call
            assert outputs[0][1]["reset"] == (last in (0, 2))
        assert [n for _, n, _ in rest if n][-1] == "end"


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 11])
def test_a_last_event_id_the_stream_never_sent_is_422(api, alice, catalog, value):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    response = api.get(f"/api/v1/runs/{run.pk}/events", HTTP_LAST_EVENT_ID=value)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_the_last_words_of_a_call_are_sent_even_when_a_new_call_starts_before_the_flush(api, alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    control = RunControl(run.pk)
    control.new_call("One")
    control.on_text("w0 w1")
    save_texts([control])
    control.on_text(" w2 last")  # streamed, not yet flushed ...
    control.new_call("Two")  # ... when the next call starts
    control.on_text("next")
    save_texts([control])
    Run.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    events = [parse(c) for c in api.get(f"/api/v1/runs/{run.pk}/events").streaming_content]
    texts = [(d["call"], d["text"]) for n, d in events if n == "output"]
    assert texts == [(1, "w0 w1"), (1, " w2 last"), (2, "next")]


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


def test_one_user_cannot_take_every_stream_slot(api, alice, bob, catalog, settings):
    settings.API_EVENTS_STREAMS_PER_USER = 1
    mine = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.QUEUED)
    theirs = RunFactory(user=bob, workflow_version=catalog.latest_version, status=Status.QUEUED)
    first = api.get(f"/api/v1/runs/{mine.pk}/events")
    assert first.status_code == 200
    busy = api.get(f"/api/v1/runs/{mine.pk}/events")
    assert busy.status_code == 429 and busy.json()["code"] == "too_many_streams" and busy["Retry-After"] == "5"
    other = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=bob, name='t', scope='read').secret}")
    theirs_stream = other.get(f"/api/v1/runs/{theirs.pk}/events")
    assert theirs_stream.status_code == 200
    for response in (first, theirs_stream):
        request_finished.disconnect(close_old_connections)
        try:
            response.close()
        finally:
            request_finished.connect(close_old_connections)


@pytest.mark.django_db(transaction=True)
def test_a_run_first_watched_while_the_hub_reads_is_not_taken_for_a_deleted_one(alice, catalog, settings, monkeypatch):
    import asyncio
    import threading
    import time

    from api import event_hub

    settings.API_EVENTS_POLL_SECONDS = 0.01
    a = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    b = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    reading = threading.Event()
    real = event_hub._read

    def slow(known):
        reading.set()
        time.sleep(0.2)
        return real(known)

    monkeypatch.setattr(event_hub, "_read", slow)

    async def scenario():
        hub = event_hub.Hub()
        hub.watch(str(a.pk))
        while not reading.is_set():
            await asyncio.sleep(0.005)
        hub.watch(str(b.pk))  # joins while the tick reads only `a`
        await asyncio.wait_for(hub.changed[str(b.pk)].wait(), 2)
        row = hub.rows.get(str(b.pk))
        hub.unwatch(str(a.pk))
        hub.unwatch(str(b.pk))
        return row

    assert asyncio.run(scenario()) is not None  # its streams would have ended with "deleted"
