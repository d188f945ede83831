"""The run engine with real parts: qcluster subprocesses, the stand-in provider over HTTP through LiteLLM,
the web views over HTTP. Timing limits here are generous; `make bench` measures the targets."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from catalog.models import Workflow
from providers import services as provider_services
from providers.models import ConnectionStatus, ProviderConnection
from runs import services
from runs.models import Mode, Run, Status

from .factories import UserFactory
from .support import web
from .support.fake_llm import JUDGE_MARKER, answer, fake_llm
from .support.processes import start_qcluster, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
FAST = {"RUN_TICK_SECONDS": "0.1", "RUN_HEARTBEAT_SECONDS": "0.5"}


@pytest.fixture
def provider(catalog):
    """The stand-in OpenAI server, connected and recently checked (so runs make no connection-check call)."""
    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Stand-in", api_key="sk-engine-e2e-0123456789abcdef",
            api_base=server.base_url, allow_private_network=True,
        )  # fmt: skip
        ProviderConnection.objects.update(status=ConnectionStatus.CONNECTED, last_tested_at=timezone.now())
        yield server


def submit(user, topic: str) -> Run:
    version = Workflow.objects.get(slug="learn-agentic-ai").latest_version
    return services.start_run(
        workflow_version=version, user=user, inputs={"topic": topic}, mode=Mode.TEST, models=["openai/gpt-4o-mini"]
    )


def all_finished(ids) -> bool:
    return Run.objects.filter(pk__in=ids).exclude(status__in=[Status.QUEUED, Status.RUNNING]).count() == len(ids)


def calls_for(server, topic: str) -> int:
    """The step calls of the run on `topic` (the rubric judge's call quotes the notes, so it is left out)."""
    return sum(
        1
        for r in server.requests
        if topic in str(r["body"].get("messages")) and not str(r["body"].get("messages")).count(JUDGE_MARKER)
    )


@override_settings(RUNS_ACTIVE_PER_USER=50)
def test_one_worker_process_hosts_many_runs_at_once(provider, alice, tmp_path):
    provider.default = {"delay": 2}
    cluster = start_qcluster(tmp_path / "q.log", Q_WORKERS="1", RUNS_PER_WORKER="10", **FAST)
    try:
        runs = [submit(alice, f"Concurrency {i:02d}") for i in range(10)]
        ids = [r.pk for r in runs]
        wait_for(lambda: all_finished(ids), timeout=90, message="ten runs")
        assert set(Run.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Status.SUCCEEDED}
        # One worker process answered ten runs' calls side by side, not one after the other.
        assert provider.max_in_flight >= 8
        first, last = min(r["at"] for r in provider.requests), max(r["at"] for r in provider.requests)
        assert last - first < 2 * 2 * 3  # two 2-second calls per run; serial would take 40 s
    finally:
        stop(cluster)


def test_streamed_text_shows_in_the_status_partial_while_the_call_runs(provider, live_server, tmp_path):
    UserFactory(username="alice")
    words = [f"streamword{i}" for i in range(40)]
    # One chunk (a word) every 45 ms: with what `answer` adds so that the run's checks pass (some 140 words in
    # all), the outline streams for about 6 s.
    delay = 0.045
    provider.push({**answer(" ".join(words)), "chunk_delay": delay})
    cluster = start_qcluster(tmp_path / "q.log", **FAST)
    try:
        client = web.login(live_server.url, "alice", "correct horse battery staple")
        run_path = web.submit(
            client, "learn-agentic-ai", {"topic": "Streaming", "level": "beginner", "session_minutes": "30", "mode": "test"}
        )  # fmt: skip
        run_id = run_path.strip("/").split("/")[-1]
        seen = wait_for(
            lambda: "streamword3 " in client.get(f"{run_path}status/").text and time.time(),
            timeout=40,
            interval=0.05,
            message="streamed words in the status partial",
        )
        request = next(r for r in provider.requests if r["body"].get("stream"))
        # The run is still in its call (about 6 s of streaming), and the words showed within a second or so.
        assert Run.objects.get(pk=run_id).status == Status.RUNNING
        assert seen - (request["first_chunk_at"] + 3 * delay) < 1.5
        wait_for(lambda: Run.objects.get(pk=run_id).is_finished, timeout=40, message="the run")
        run = Run.objects.get(pk=run_id)
        assert run.status == Status.SUCCEEDED and run.live_output == "", run.reason
        assert " ".join(words) in run.step_outputs["outline"]
    finally:
        stop(cluster)


@override_settings(RUNS_ACTIVE_PER_USER=50)
def test_a_cancel_during_a_twenty_second_call_ends_the_run_at_once_and_frees_its_slot(provider, alice, tmp_path):
    provider.push({"delay": 20})
    cluster = start_qcluster(tmp_path / "q.log", Q_WORKERS="1", RUNS_PER_WORKER="1", **FAST)
    try:
        run = submit(alice, "Slow call")
        wait_for(lambda: len(provider.requests) >= 1, timeout=40, message="the slow call")
        time.sleep(1)
        asked = time.monotonic()
        assert services.request_cancel(Run.objects.get(pk=run.pk))
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=10, interval=0.05, message="the cancel")
        assert time.monotonic() - asked < 3
        run.refresh_from_db()
        assert (run.status, run.reason) == (Status.CANCELLED, "Cancelled on request.")
        # The only slot is free at once: the next run starts without waiting for the 20-second call.
        after = submit(alice, "Next in line")
        wait_for(lambda: Run.objects.get(pk=after.pk).is_finished, timeout=15, message="the next run")
        assert Run.objects.get(pk=after.pk).status == Status.SUCCEEDED
    finally:
        stop(cluster)


@override_settings(RUNS_ACTIVE_PER_USER=50)
def test_a_killed_cluster_s_runs_run_elsewhere_or_fail_resumable_without_anyone_stepping_in(provider, alice, tmp_path):
    provider.push({"delay": 60})
    first = start_qcluster(tmp_path / "q1.log", Q_WORKERS="1", RUNS_PER_WORKER="1", **FAST)
    held = submit(alice, "Held by the dead")
    wait_for(lambda: len(provider.requests) >= 1, timeout=40, message="the first cluster's call")
    waiting = [submit(alice, f"Waiting {i}") for i in range(3)]  # queued behind the only slot
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    killed = time.monotonic()
    second = start_qcluster(
        tmp_path / "q2.log", RUN_STALE_SECONDS="5", RUN_RECOVERY_EVERY_SECONDS="1", **FAST
    )  # fmt: skip
    try:
        ids = [held.pk, *[w.pk for w in waiting]]
        wait_for(lambda: all_finished(ids), timeout=60, message="every run the dead cluster knew")
        held.refresh_from_db()
        assert held.status == Status.FAILED and "Resume it" in held.reason
        assert time.monotonic() - killed < 30
        assert all(Run.objects.get(pk=w.pk).status == Status.SUCCEEDED for w in waiting)
        assert calls_for(provider, "Held by the dead") == 1  # never executed again
    finally:
        stop(second)


@pytest.mark.skipif("os.environ.get('DATABASE_URL', '').startswith('sqlite') or not os.environ.get('DATABASE_URL')")
@override_settings(RUNS_ACTIVE_PER_USER=100)
def test_two_clusters_on_postgresql_execute_forty_runs_each_exactly_once(provider, alice, tmp_path):
    assert connection.vendor == "postgresql"
    provider.default = {"delay": 0.3}
    clusters = [start_qcluster(tmp_path / f"q{i}.log", Q_WORKERS="2", RUNS_PER_WORKER="5", **FAST) for i in (1, 2)]
    try:
        runs = [submit(alice, f"Exactly once {i:02d}") for i in range(40)]
        ids = [r.pk for r in runs]
        wait_for(lambda: all_finished(ids), timeout=120, message="forty runs")
        assert set(Run.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Status.SUCCEEDED}
        # Each run's two steps were asked of the provider exactly once, however many hosts polled.
        assert [calls_for(provider, f"Exactly once {i:02d}") for i in range(40)] == [2] * 40
        assert len(set(Run.objects.filter(pk__in=ids).values_list("worker", flat=True))) >= 2
    finally:
        for cluster in clusters:
            stop(cluster)
