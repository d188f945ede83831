"""The run engine in one process: fair claims, atomic claims on two connections, the per-user cap, cancel
and the deadline during calls, backoff and rate-limit waits, the tool-call cap per call, monotonic endings,
and artifacts the disk refuses. Providers are fake servers over real HTTP through LiteLLM."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from runs import dispatch, pipeline, services
from runs.models import Artifact, Mode, Run, RunText, Status, UserBudget

from .factories import RunFactory, UserFactory
from .support.connections import connect

FORM = {"topic": "Memory", "level": "beginner", "session_minutes": 30}


@pytest.fixture(scope="module", autouse=True)
def _warm():
    from providers.llm import warm_up

    warm_up()  # as a worker's host does at start: the first run must not spend its time limit loading LiteLLM


@pytest.fixture
def openai(catalog, fake_server):
    """Left untested on purpose: each run's first request is validation's connection check, so every script
    here starts with `{}` for it and the steps' answers follow."""
    server = fake_server("openai")
    connect(server, checked=False)
    return server


def start(catalog, user, **kwargs) -> Run:
    from providers.models import ProviderConnection

    # The model must be served by a connection when the run is made (issue 23): without one, the offline model.
    connected = ProviderConnection.objects.filter(provider="openai").exists()
    kwargs.setdefault("models", ["openai/gpt-4o-mini"] if connected else None)
    return services.start_run(
        workflow_version=catalog.latest_version, user=user, inputs=FORM, mode=Mode.TEST, queue=False, **kwargs
    )


def cancel_when(run: Run, condition, timeout: float = 20) -> list[float]:
    """From another thread (its own database connection): wait for `condition()`, then cancel the run.
    Returns [the time the cancel was requested] once it has been."""
    asked: list[float] = []

    def watch() -> None:
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and not condition():
                time.sleep(0.05)
            services.request_cancel(Run.objects.get(pk=run.pk))
            asked.append(time.monotonic())
        finally:
            connection.close()

    threading.Thread(target=watch, daemon=True).start()
    return asked


# -- claims ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_next_run_claimed_belongs_to_the_user_with_the_fewest_running_runs(catalog):
    busy, other = UserFactory(username="busy"), UserFactory(username="other")
    version = catalog.latest_version
    RunFactory.create_batch(2, user=busy, workflow_version=version, status=Status.RUNNING)
    burst = RunFactory.create_batch(5, user=busy, workflow_version=version, status=Status.QUEUED)
    late = RunFactory(user=other, workflow_version=version, status=Status.QUEUED)
    assert Run.objects.get(pk=late.pk).created_at > max(r.created_at for r in burst)
    # One free slot: the other user's single run goes before the busy user's older burst.
    assert dispatch.claim(1, worker="w1") == [late.pk]
    # Then the oldest of the burst, and the claimed runs are running with the worker's name.
    assert dispatch.claim(1, worker="w1") == [burst[0].pk]
    assert Run.objects.get(pk=late.pk).status == Status.RUNNING and Run.objects.get(pk=late.pk).worker == "w1"


@pytest.mark.django_db(transaction=True)
def test_two_claims_racing_on_two_connections_execute_a_run_exactly_once(catalog, alice):
    """Two threads, each with its own database connection, released together by a barrier; many rounds."""
    for _ in range(15):
        run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.QUEUED)
        barrier = threading.Barrier(2)
        results: list[bool] = []

        def race(run_id=run.pk, barrier=barrier, results=results) -> None:
            try:
                barrier.wait()
                results.append(dispatch.claim_one(run_id, worker=threading.current_thread().name))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=race) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == [False, True]


@pytest.mark.django_db
@override_settings(RUNS_ACTIVE_PER_USER=2)
def test_a_user_at_the_active_run_limit_is_refused_with_a_clear_message(catalog, alice, bob):
    start(catalog, alice)
    start(catalog, alice)
    with pytest.raises(services.QueueFull, match="2 runs queued or running"):
        start(catalog, alice)
    start(catalog, bob)  # other people are not affected
    UserBudget.objects.create(user=alice, daily_usd=Decimal(5), max_active_runs=3)
    alice.refresh_from_db()
    start(catalog, alice)  # an operator raised this user's limit


@pytest.mark.django_db
@override_settings(RUNS_ACTIVE_PER_USER=1)
def test_the_web_answers_a_submission_over_the_limit_with_http_429(catalog, alice, alice_client):
    start(catalog, alice)
    response = alice_client.post(
        "/workflows/learn-agentic-ai/", {**FORM, "mode": "test"}, HTTP_ACCEPT="text/html"
    )  # fmt: skip
    assert response.status_code == 429
    assert "1 runs queued or running" in response.content.decode()
    assert Run.objects.filter(user=alice).count() == 1


# -- cancel, deadline, waits ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_cancel_during_a_streaming_call_aborts_it_within_two_seconds_and_counts_what_streamed(catalog, alice, openai):
    openai.push({}, {"content": " ".join(f"w{i}" for i in range(400)), "chunk_delay": 0.05})
    run = start(catalog, alice)
    asked = cancel_when(run, lambda: len(openai.requests) >= 2 and time.time() - openai.requests[1]["at"] > 1.5)
    pipeline.execute(run.pk)
    ended = time.monotonic()
    run.refresh_from_db()
    assert run.status == Status.CANCELLED, run.reason
    assert asked and ended - asked[0] < 2
    assert openai.requests[1].get("aborted") or len(openai.requests) == 2  # the stream was cut, not finished
    assert run.completion_tokens > 0  # the words that streamed before the cancel are counted
    trace = json.loads(Artifact.objects.get(run=run, name="trace.json").file.read())
    call = trace["steps"][0]["calls"][0]
    assert call["estimated"] is True and call["partial_output"].startswith("w0 w1")


@pytest.mark.django_db(transaction=True)
def test_a_cancel_during_a_retry_backoff_ends_cancelled_not_failed(catalog, alice, openai):
    openai.push({}, {"status": 429, "headers": {"Retry-After": "30"}})
    run = start(catalog, alice)
    asked = cancel_when(run, lambda: len(openai.requests) >= 2)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED, run.reason
    assert time.monotonic() - asked[0] < 2
    assert len(openai.requests) == 2  # no attempt after the cancel


@pytest.mark.django_db(transaction=True)
def test_a_cancel_during_a_rate_limit_wait_ends_the_run_at_once(catalog, alice, openai):
    from providers.models import ProviderConnection

    ProviderConnection.objects.update(requests_per_minute=1)
    run = start(catalog, alice)
    # The check is not rate-limited; the first step's call takes the minute's only request, so the second
    # step waits for the next minute. Cancel a second into that wait.
    asked = cancel_when(run, lambda: len(openai.requests) >= 2 and time.time() - openai.requests[1]["at"] > 1)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED, run.reason
    assert time.monotonic() - asked[0] < 2
    assert len(openai.requests) == 2  # the waiting call never went out
    events = json.loads(Artifact.objects.get(run=run, name="trace.json").file.read())["events"]
    assert any(e["kind"] == "rate_limit" for e in events)


@pytest.mark.django_db(transaction=True)
@override_settings(RUN_MAX_SECONDS=3)
def test_the_deadline_cuts_a_slow_stream_and_no_attempt_starts_after_it(catalog, alice, openai):
    openai.push({}, {"content": " ".join(["slow"] * 200), "chunk_delay": 0.1})
    started = time.monotonic()
    run = start(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.STOPPED and "3-second time limit" in run.reason, run.reason
    assert time.monotonic() - started < 3 + 2
    assert len(openai.requests) == 2 and run.completion_tokens > 0


@pytest.mark.django_db(transaction=True)
@override_settings(RUN_MAX_SECONDS=8)
def test_retries_and_backoff_never_pass_the_deadline(catalog, alice, openai):
    openai.push({}, *[{"status": 429, "headers": {"Retry-After": "4"}}] * 3)
    started = time.monotonic()
    run = start(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.STOPPED and "time limit" in run.reason, run.reason
    assert "429" in run.reason  # the reason says what the last attempt met
    assert time.monotonic() - started < 8 + 1
    # The check, then attempts 4 s apart while they fit: the third would start after the deadline.
    attempts = openai.requests[1:]
    assert len(attempts) == 2 and attempts[1]["at"] - attempts[0]["at"] >= 4


# -- caps and endings -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reply_asking_for_sixty_tool_calls_executes_only_what_the_cap_leaves(catalog, alice, openai):
    from tests.support import fake_llm as fake

    burst = {"tool_calls": [{"name": "list_references", "arguments": {}} for _ in range(60)]}
    openai.push({}, burst)
    original = fake.FakeLLM.openai_answer

    def with_burst(self, body, entry):
        answer = original(self, body, {k: v for k, v in entry.items() if k != "tool_calls"})
        if "tool_calls" in entry:
            message = answer["choices"][0]["message"]
            message["content"] = None
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": c["name"], "arguments": "{}"}}
                for i, c in enumerate(entry["tool_calls"])
            ]
            answer["choices"][0]["finish_reason"] = "tool_calls"
        return answer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fake.FakeLLM, "openai_answer", with_burst)
        run = start(catalog, alice)
        pipeline.execute(run.pk)
    run.refresh_from_db()
    trace = json.loads(Artifact.objects.get(run=run, name="trace.json").file.read())
    records = [t for c in trace["steps"][0]["calls"] for t in c.get("tool_calls", [])]
    executed = [t for t in records if "error" not in t]
    cap = catalog.latest_version.spec["caps"]["test"]["max_tool_calls"]
    assert len(records) == 60 and len(executed) == cap
    assert run.status == Status.SUCCEEDED, run.reason


@pytest.mark.django_db
def test_a_run_that_recovery_ended_never_turns_succeeded(catalog, alice, openai, monkeypatch):
    run = start(catalog, alice)
    real = pipeline.Executor.write_artifacts

    def recovered_meanwhile(self):
        Run.objects.filter(pk=self.run.pk).update(status=Status.FAILED, reason="recovered", finished_at=timezone.now())
        real(self)

    monkeypatch.setattr(pipeline.Executor, "write_artifacts", recovered_meanwhile)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert (run.status, run.reason) == (Status.FAILED, "recovered")


@pytest.mark.django_db
def test_a_cancel_that_arrives_during_the_last_call_ends_cancelled_with_the_output_kept(catalog, alice, openai):
    run = start(catalog, alice)
    real = pipeline.Executor._record

    def cancel_on_last_call(self, call, result, target):
        real(self, call, result, target)
        if self.run.steps_done == len(self.spec["steps"]) - 1:
            Run.objects.filter(pk=self.run.pk).update(cancel_requested=True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.Executor, "_record", cancel_on_last_call)
        pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert set(run.step_outputs) == {s["id"] for s in catalog.latest_version.spec["steps"]}
    assert Artifact.objects.filter(run=run, name="notes.md").exists()


@pytest.mark.django_db
def test_an_artifact_the_disk_refuses_fails_the_run_and_keeps_the_trace_in_the_database(
    catalog, alice, openai, monkeypatch
):
    real = Artifact.write

    def disk_full(run, name, text):
        if name == "trace.json":
            raise OSError(28, "No space left on device")
        return real(run, name, text)

    monkeypatch.setattr(Artifact, "write", staticmethod(disk_full))
    run = start(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.FAILED and "No space left on device" in run.reason
    assert json.loads(run.trace_text)["run"]["id"] == str(run.pk)


@pytest.mark.django_db
def test_the_connection_check_at_validate_is_recorded_as_the_platforms_call(catalog, alice, openai):
    run = start(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    checks = [r for r in openai.requests if r["body"]["max_tokens"] == 1]
    assert len(checks) == 1  # the connection was never checked before: validation made one real call
    # The run counts its two steps and the quality judge (100 + 50 tokens each); the check is the platform's.
    assert (run.prompt_tokens, run.completion_tokens) == (300, 150)
    validation = json.loads(Artifact.objects.get(run=run, name="validation.json").file.read())
    assert validation["connection_check"]["prompt_tokens"] == 100
    assert validation["connection_check"]["paid_by"] == "platform"
    assert Decimal(validation["connection_check"]["cost_usd"]) > 0


@pytest.mark.django_db
@pytest.mark.parametrize("hosted", [3, 30])
def test_a_host_watches_all_its_runs_with_a_fixed_number_of_queries(catalog, alice, hosted, django_assert_num_queries):
    from runs.control import RunControl
    from runs.host import RunHost

    runs = RunFactory.create_batch(hosted, user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    Run.objects.filter(pk=runs[-1].pk).update(cancel_requested=True)
    host = RunHost(capacity=50)  # not started: the test drives one tick's work by hand
    host.hosted = {str(r.pk): RunControl(r.pk) for r in runs}
    for control in host.hosted.values():
        control.on_text("streamed ")
    # One query for every cancel flag; for every run's streamed text, where its numbering goes on from (the
    # first time only), its rows, their number and the page's live text: a fixed count, not one per run.
    with django_assert_num_queries(5):
        host._watch(dict(host.hosted))
        host._flush(dict(host.hosted))
    for control in host.hosted.values():
        control.on_text("more ")
    with django_assert_num_queries(3):
        host._flush(dict(host.hosted))
    assert RunText.objects.filter(run__in=runs).count() == 2 * hosted
    assert host.hosted[str(runs[-1].pk)].why == "cancel"
    assert not any(c.stop.is_set() for c in list(host.hosted.values())[:-1])
    assert set(Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("live_output", flat=True)) == {
        "streamed more "
    }


@pytest.mark.django_db
def test_a_stream_the_network_cuts_is_counted_before_the_retry(catalog, alice, openai):
    openai.push({}, {"content": " ".join(f"cut{i}" for i in range(50)), "drop_after": 20})
    run = start(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    trace = json.loads(Artifact.objects.get(run=run, name="trace.json").file.read())
    call = trace["steps"][0]["calls"][0]
    [cut] = call["cut_short_attempts"]
    assert cut["estimated"] and cut["completion_tokens"] > 0 and cut["partial_output"].startswith("cut0 cut1")
    # The cut attempt (counted, estimated), the retry, the second step and the quality judge are in the run's
    # totals; the connection check is the platform's.
    assert run.completion_tokens == cut["completion_tokens"] + 50 + 50 + 50
