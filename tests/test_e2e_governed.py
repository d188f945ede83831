"""Cancel, resume, replay and a killed worker, with a real qcluster calling a fake provider over HTTP."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.conf import settings
from django.utils import timezone

from catalog.services import sync_workflows
from providers import services as provider_services
from runs.models import Run, Status
from runs.recovery import recover_stale_runs

from .factories import UserFactory
from .support import web
from .support.fake_llm import fake_llm
from .support.processes import start_qcluster, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
FORM = {"topic": "Memory", "level": "beginner", "session_minutes": "30", "mode": "test"}


@pytest.fixture
def world(live_server, tmp_path):
    sync_workflows(workflows_dir=settings.WORKFLOWS_DIR, skills_dir=settings.SKILLS_DIR)
    UserFactory(username="alice")
    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Fake", api_key="sk-e2e-0123456789abcdefghijkl",
            api_base=server.base_url, allow_private_network=True,
        )  # fmt: skip
        client = web.login(live_server.url, "alice", "correct horse battery staple")
        yield server, client, tmp_path


def action(client, run_path: str, name: str) -> str:
    page = client.get(run_path)
    response = client.post(f"{run_path}{name}/", data={"csrfmiddlewaretoken": web.csrf_token(page.text)})
    assert response.status_code == 302
    return response.headers["location"]


def finished(run_id) -> Run | None:
    run = Run.objects.get(pk=run_id)
    return run if run.is_finished else None


def test_cancel_stops_a_running_run_soon_after_its_current_call_returns(world):
    server, client, tmp = world
    server.push({}, {"delay": 3})  # the connection check, then a slow first step
    cluster = start_qcluster(tmp / "q.log", RUN_HEARTBEAT_SECONDS="0.5")
    try:
        run_path = web.submit(client, "learn-agentic-ai", FORM)
        run_id = run_path.strip("/").split("/")[-1]
        wait_for(
            lambda: Run.objects.get(pk=run_id).current_step.startswith("Outline"), timeout=20, message="the first step"
        )
        action(client, run_path, "cancel")
        cancelled_at = time.monotonic()
        run = wait_for(lambda: finished(run_id), timeout=15, message="the cancel")
        assert run.status == Status.CANCELLED and run.reason == "Cancelled on request.", run.reason
        assert time.monotonic() - cancelled_at < 3 + 2  # the slow call returns within 3 s, then under 2 s more
        assert run.artifacts.filter(name="trace.json").exists()
        assert "Cancelled" in client.get(run_path).text
    finally:
        stop(cluster)


def test_a_killed_worker_leaves_a_resumable_run_that_is_never_executed_twice(world):
    server, client, tmp = world
    server.push({}, {"delay": 6})
    cluster = start_qcluster(tmp / "q1.log", RUN_HEARTBEAT_SECONDS="0.5")
    run_path = web.submit(client, "learn-agentic-ai", FORM)
    run_id = run_path.strip("/").split("/")[-1]
    wait_for(
        lambda: Run.objects.get(pk=run_id).current_step.startswith("Outline"), timeout=20, message="the first step"
    )
    os.killpg(cluster.pid, signal.SIGKILL)
    cluster.wait(10)
    killed_at = timezone.now()
    # The heartbeat stops with the worker, so the periodic check finds the run within a bounded time.
    wait_for(lambda: recover_stale_runs(stale_seconds=2), timeout=15, message="the recovery")
    run = Run.objects.get(pk=run_id)
    assert run.status == Status.FAILED and "Resume it" in run.reason
    assert (run.finished_at - killed_at).total_seconds() < 15
    # At-least-once delivery: the same task delivered again must not execute the run a second time.
    from django_q.tasks import async_task

    async_task("runs.tasks.execute_run", run_id)
    cluster = start_qcluster(tmp / "q2.log")
    try:
        wait_for(lambda: "Processed" in (tmp / "q2.log").read_text(), timeout=20, message="the re-delivered task")
        assert Run.objects.get(pk=run_id).status == Status.FAILED
        resumed_path = action(client, run_path, "resume")
        resumed_id = resumed_path.strip("/").split("/")[-1]
        resumed = wait_for(lambda: finished(resumed_id), timeout=30, message="the resumed run")
        assert resumed.status == Status.SUCCEEDED, resumed.reason
        assert str(resumed.resumed_from_id) == run_id
    finally:
        stop(cluster)


def test_a_replay_through_the_cluster_costs_nothing_and_gives_the_same_notes(world):
    server, client, tmp = world
    cluster = start_qcluster(tmp / "q.log")
    try:
        run_path = web.submit(client, "learn-agentic-ai", FORM)
        first = wait_for(lambda: finished(run_path.strip("/").split("/")[-1]), timeout=30, message="the first run")
        assert first.status == Status.SUCCEEDED and first.cost_usd > 0
        calls = len(server.requests)
        replay_path = action(client, run_path, "replay")
        replay = wait_for(lambda: finished(replay_path.strip("/").split("/")[-1]), timeout=30, message="the replay")
        assert replay.status == Status.SUCCEEDED and replay.replay and replay.cost_usd == 0
        assert len(server.requests) == calls  # nothing was asked of the provider again
        assert client.get(f"{replay_path}artifacts/notes.md").text == client.get(f"{run_path}artifacts/notes.md").text
    finally:
        stop(cluster)
