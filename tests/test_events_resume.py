"""Event streams over real HTTP, served as deployed (gunicorn with uvicorn workers), following runs that a real
qcluster executes against the stand-in provider: a client that drops and reconnects with Last-Event-ID
rebuilds exactly the text the model streamed, the last words of every call included; a client that hangs
up gives its slot back at once."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from django.conf import settings

from api.tokens import create_token
from catalog.services import sync_workflows

from .factories import UserFactory
from .support.connections import connect
from .support.fake_llm import fake_llm
from .support.processes import start_qcluster, start_web, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
INPUTS = {"topic": "Tool use", "level": "beginner", "session_minutes": 30}


def read(client: httpx.Client, url: str, last_id: str, stop_after: int | None) -> tuple[list[tuple], str, bool]:
    """Events (id, name, data) from one connection; it hangs up after `stop_after` output events."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    got: list[tuple] = []
    ended, outputs, name, event_id = False, 0, "", last_id
    with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(10, read=60)) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                got.append((int(event_id), name, json.loads(line[6:])))
                ended = name == "end"
                outputs += name == "output"
                if ended or (stop_after is not None and outputs >= stop_after):
                    break
    return got, event_id, ended


def test_a_client_that_keeps_dropping_and_resuming_rebuilds_exactly_what_the_model_streamed(tmp_path):
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    alice = UserFactory(username="alice")
    secret = create_token(user=alice, name="e2e", scope="run").secret
    with fake_llm("openai") as server:
        server.default = {"chunk_delay": 0.04}  # one word every 40 ms: several flushes per call
        connect(server)  # checked: every streamed request is one of the run's calls (the steps' and the judge's)
        web, base_url = start_web(tmp_path / "web.log")
        cluster = start_qcluster(tmp_path / "qcluster.log")
        try:
            api = httpx.Client(base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {secret}"})
            started = api.post("/runs", json={"workflow": "learn-agentic-ai", "mode": "test", "inputs": INPUTS})
            assert started.status_code == 201, started.text
            url = started.json()["events_url"]
            events, last_id, ended, connections = [], "", False, 0
            while not ended:
                got, last_id, ended = read(api, url, last_id, stop_after=2)
                events += got
                connections += 1
                assert connections < 400, "the run never ended"
            assert events[-1][2]["status"] == "succeeded", api.get(started.json()["url"]).json()["reason"]
        finally:
            stop(cluster)
            stop(web)
    ids = [event_id for event_id, _, _ in events]
    assert ids == sorted(ids), "ids never go back"
    outputs = [(event_id, data) for event_id, name, data in events if name == "output"]
    assert [i for i, _ in outputs] == list(range(1, len(outputs) + 1)), "each output once, none missing"
    calls: dict[int, str] = {}
    for _, data in outputs:
        assert data["reset"] == (data["call"] not in calls)
        calls[data["call"]] = calls.get(data["call"], "") + data["text"]
    said = [r["text"] for r in server.requests if r["body"].get("stream") and r.get("text")]
    assert connections > len(said) >= 3  # two steps, then the judge of the rubric check
    assert list(calls.values()) == said  # every call whole, up to its last word, each under its own number


def test_a_client_that_hangs_up_gives_its_stream_slot_back_within_seconds(tmp_path, catalog):
    from tests.factories import RunFactory

    alice = UserFactory(username="alice")
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status="queued")
    secret = create_token(user=alice, name="e2e", scope="read").secret
    web, base_url = start_web(tmp_path / "web.log", API_EVENTS_STREAMS_PER_USER="1")
    try:
        path = f"/api/v1/runs/{run.pk}/events"
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n\r\n".encode()
        port = int(base_url.rsplit(":", 1)[1])
        first = socket.create_connection(("127.0.0.1", port))
        first.sendall(request)
        assert b" 200 " in first.recv(200)
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"})
        busy = api.get(path)
        assert busy.status_code == 429 and busy.headers["Retry-After"] and busy.json()["code"] == "too_many_streams"
        first.close()
        hung_up = time.monotonic()

        def slot_free() -> bool:
            with api.stream("GET", path) as response:
                return response.status_code == 200

        wait_for(slot_free, 10, interval=0.2, message="the slot to come back")
        assert time.monotonic() - hung_up < 3
    finally:
        stop(web)
