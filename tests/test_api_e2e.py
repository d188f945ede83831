"""The API end to end over real HTTP: a live server, a real qcluster, the fake provider over HTTP.
Only public behaviour is used (pages, API, events), so it holds whatever the engine does inside."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx
import pytest
from django.conf import settings

from catalog.services import sync_workflows

from .factories import UserFactory
from .support import web
from .support.connections import connect
from .support.fake_llm import fake_llm
from .support.processes import start_qcluster, stop

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
INPUTS = {"topic": "Tool use", "level": "beginner", "session_minutes": 30}


def make_token(base_url: str) -> str:
    """Log in and make a run-scoped token on the tokens page, as a person would."""
    browser = web.login(base_url, "alice", "correct horse battery staple")
    page = browser.get("/api/tokens/")
    created = browser.post(
        "/api/tokens/", data={"name": "e2e", "scope": "run", "csrfmiddlewaretoken": web.csrf_token(page.text)}
    )
    assert created.status_code == 200
    match = re.search(r'id="new-token"[^>]*value="(awp_[^"]+)"', created.text)
    assert match, created.text[:2000]
    return match.group(1)


def follow(client: httpx.Client, url: str) -> list[tuple[str, dict]]:
    """Read the run's Server-Sent Events until the stream ends."""
    events, name = [], ""
    with client.stream("GET", url, timeout=httpx.Timeout(10, read=60)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def test_a_script_with_a_token_runs_a_test_follows_it_downloads_the_notes_and_is_refused_a_new_full_run(
    live_server, tmp_path
):
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    UserFactory(username="alice")
    with fake_llm("openai") as server:
        connect(server)
        cluster = start_qcluster(tmp_path / "qcluster.log")
        try:
            secret = make_token(live_server.url)
            api = httpx.Client(
                base_url=f"{live_server.url}/api/v1", headers={"Authorization": f"Bearer {secret}"}, timeout=10
            )
            slugs = [w["slug"] for w in api.get("/workflows", params={"limit": 100}).json()["items"]]
            assert "learn-agentic-ai" in slugs

            started = api.post("/runs", json={"workflow": "learn-agentic-ai", "mode": "test", "inputs": INPUTS})
            assert started.status_code == 201, started.text
            run = started.json()
            assert run["status"] == "queued"

            events = follow(api, run["events_url"])
            log = tmp_path / "qcluster.log"
            assert events and events[-1][0] == "end", f"{events[-3:]} (log: {log})"
            assert events[-1][1]["status"] == "succeeded", api.get(run["url"]).json()["reason"]
            statuses = [data for name, data in events if name == "status"]
            assert statuses[0]["status"] in ("queued", "running")
            done = [s["steps_done"] for s in statuses]
            assert done == sorted(done) and done[-1] == statuses[-1]["steps_total"] > 0

            finished = api.get(run["url"]).json()
            assert finished["status"] == "succeeded" and Decimal(finished["cost_usd"]) > 0
            assert server.requests, "the stand-in provider was not called"
            notes_url = next(a["url"] for a in finished["artifacts"] if a["name"] == "notes.md")
            notes = api.get(notes_url)
            assert notes.status_code == 200 and notes.text.startswith("# Learn Agentic AI: Tool use")

            other = {"workflow": "learn-agentic-ai", "mode": "full", "inputs": {**INPUTS, "topic": "Memory"}}
            refused = api.post("/runs", json=other)
            assert refused.status_code == 409
            assert refused.json()["code"] == "full_run_locked" and "test" in refused.json()["message"]
            same = api.post("/runs", json={**other, "inputs": INPUTS})
            assert same.status_code == 201 and same.json()["mode"] == "full"
            assert api.post(f"/runs/{same.json()['id']}/cancel").status_code in (202, 409)  # stop promptly
        finally:
            stop(cluster)
