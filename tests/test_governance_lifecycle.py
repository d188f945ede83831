"""Issue 11, lifecycle: Rerun asks afresh and only Replay reads the cache, Resume carries its chain's spend,
progression is per user, an operator's switch holds everywhere, spec time limits fit the workers, retention
leaves no cached answers behind and says which files it could not delete; backoff and the shared rate limit."""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.utils import timezone

from catalog.models import Workflow
from catalog.specs import validate_spec
from providers import llm, ratelimit, resilience
from providers import services as provider_services
from providers.models import ProviderConnection
from providers.resolution import target_for
from runs import pipeline, services
from runs.models import LLMCacheEntry, Mode, Run, Status
from runs.retention import purge

from .factories import minimal_spec
from .support import processes
from .support.fake_llm import JUDGE_MARKER, answer, fake_llm

pytestmark = pytest.mark.django_db
MODEL = "openai/gpt-4o-mini"


def execute(run: Run) -> Run:
    pipeline.execute(run.pk)
    run.refresh_from_db()
    return run


def start(version, user, mode=Mode.TEST, **kwargs: Any) -> Run:
    return services.start_run(workflow_version=version, user=user, inputs={}, mode=mode, queue=False, **kwargs)


def notes(run: Run) -> str:
    with run.artifacts.get(name="notes.md").file.open("rb") as handle:
        return handle.read().decode()


def step_calls(server, since: int = 0) -> int:
    """The steps' calls since then: not a connection check (max_tokens 1), nor the quality judge's call."""
    return sum(1 for r in server.requests[since:] if r["body"].get("max_tokens") != 1 and not judging(r))


def judging(request: dict[str, Any]) -> bool:
    messages = request["body"].get("messages") or [{}]
    return str(messages[0].get("content", "")).startswith(JUDGE_MARKER)


# -- 1. Rerun means a fresh answer; only Replay reads the cache --------------------------------------------
def test_a_rerun_asks_the_model_again_and_only_a_replay_reads_the_cache(catalog, alice, openai):
    version = catalog.latest_version
    assert version.spec["cache"] is True  # the workflow stores answers for replays
    openai.push(answer("First outline"), answer("First notes"))
    first = execute(start(version, alice, models=[MODEL]))
    assert first.status == Status.SUCCEEDED and "First notes" in notes(first)
    before = len(openai.requests)
    openai.push(answer("Second outline"), answer("Second notes"))
    again = execute(services.rerun(first, user=alice, queue=False))
    assert step_calls(openai, before) == 2 and again.cost_usd > 0  # asked afresh, and paid
    assert "Second notes" in notes(again)
    before = len(openai.requests)
    replay = execute(services.rerun(first, user=alice, replay=True, queue=False))
    assert step_calls(openai, before) == 0 and replay.cost_usd == 0
    assert len(openai.requests) == before  # the judge's verdict is replayed too: no call at all
    assert notes(replay) == notes(first)  # the replayed run's own answers, though a rerun stored others since
    replay_of_replay = execute(services.rerun(replay, user=alice, replay=True, queue=False))
    assert notes(replay_of_replay) == notes(first) and replay_of_replay.replay_of == first


def test_a_resume_asks_the_model_for_the_steps_left(catalog, alice, openai):
    openai.push(answer("Outline"), {"status": 401})
    failed = execute(start(catalog.latest_version, alice, models=[MODEL]))
    assert failed.status == Status.FAILED and failed.steps_done == 1, (failed.reason, openai.requests)
    before = len(openai.requests)
    resumed = execute(services.resume_run(failed, queue=False))
    assert resumed.status == Status.SUCCEEDED and step_calls(openai, before) == 1
    replay = execute(services.rerun(resumed, user=alice, replay=True, queue=False))
    Run.objects.filter(pk=replay.pk).update(status=Status.FAILED, step_outputs={})
    replay.refresh_from_db()
    before = len(openai.requests)
    resumed_replay = execute(services.resume_run(replay, queue=False))
    assert not resumed_replay.replay and step_calls(openai, before) == 2  # a resume of a replay asks afresh


# -- 3. A resumed run carries what its chain already spent -------------------------------------------------
def test_a_resumed_run_carries_what_its_chain_already_spent(catalog, alice, openai):
    openai.push({"content": "Outline"}, {"status": 401})
    failed = execute(start(catalog.latest_version, alice, models=[MODEL]))
    assert failed.cost_usd > 0
    resumed = services.resume_run(failed, queue=False)
    assert resumed.chain_spent_usd == failed.cost_usd
    # Pretend the first run had spent nearly all of its $0.05: the rest cannot pay for the estimate.
    Run.objects.filter(pk=failed.pk).update(cost_usd=Decimal("0.0499"))
    failed.refresh_from_db()
    tight = execute(services.resume_run(failed, queue=False))
    assert tight.status == Status.STOPPED and "above the budget" in tight.reason
    assert tight.chain_spent_usd == Decimal("0.0499")
    second = services.resume_run(tight, queue=False)
    assert second.chain_spent_usd == Decimal("0.0499") + tight.cost_usd  # the whole chain, not one link
    Run.objects.filter(pk=failed.pk).update(cost_usd=Decimal("0.05"))
    failed.refresh_from_db()
    with pytest.raises(services.RunRefused, match="cannot be resumed into a fresh one"):
        services.resume_run(failed, queue=False)


# -- 7. Progression is per user ----------------------------------------------------------------------------
def test_someone_elses_passed_test_run_does_not_unlock_a_full_run(catalog, alice, bob):
    version = catalog.latest_version
    assert execute(start(version, bob)).status == Status.SUCCEEDED
    with pytest.raises(services.RunRefused, match="needs a passed test run of your own"):
        start(version, alice, Mode.FULL)
    queued = Run.objects.create(  # a full run that reached a worker without the start check
        user=alice, workflow_version=version, mode=Mode.FULL, inputs=bob.runs.get().inputs,
        inputs_hash=bob.runs.get().inputs_hash,
    )  # fmt: skip
    assert execute(queued).status == Status.FAILED and "of your own" in queued.reason
    assert execute(start(version, alice)).status == Status.SUCCEEDED
    assert execute(start(version, alice, Mode.FULL)).status == Status.SUCCEEDED


def test_an_operator_with_the_skip_permission_may_skip_and_is_audited(catalog, alice):
    from settings_app.models import AuditEvent

    alice.user_permissions.add(Permission.objects.get(codename="skip_progression"))
    alice = type(alice).objects.get(pk=alice.pk)
    run = execute(start(catalog.latest_version, alice, Mode.FULL, skip_progression=True))
    assert run.status == Status.SUCCEEDED
    assert AuditEvent.objects.filter(action="progression_skipped", target_id=str(run.pk)).exists()


# -- 8. An operator's switch holds everywhere --------------------------------------------------------------
def test_a_disabled_workflow_refuses_every_way_to_run_it(catalog, alice):
    version = catalog.latest_version
    done = execute(start(version, alice))
    Run.objects.filter(pk=done.pk).update(status=Status.FAILED)
    done.refresh_from_db()
    queued = start(version, alice)
    assert services.refusal_before_start(queued) is None
    Workflow.objects.filter(pk=version.workflow_id).update(enabled=False)
    version.refresh_from_db()
    done = Run.objects.select_related("workflow_version__workflow").get(pk=done.pk)
    for attempt in (
        lambda: start(version, alice),
        lambda: services.resume_run(done, queue=False),
        lambda: services.rerun(done, user=alice, queue=False),
        lambda: services.rerun(done, user=alice, replay=True, queue=False),
    ):
        with pytest.raises(services.RunRefused) as refused:
            attempt()
        assert str(refused.value) == services.DISABLED
    assert services.refusal_before_start(queued) == services.DISABLED
    with pytest.raises(CommandError, match="disabled by an operator"):
        call_command("runworkflow", "learn-agentic-ai", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="disabled by an operator"):
        call_command("runworkflow", "--replay", str(done.pk), stdout=StringIO(), stderr=StringIO())


# -- 10. A spec's time limit fits what a worker allows -----------------------------------------------------
def test_a_spec_time_limit_above_the_workers_is_clamped_with_a_warning(settings, caplog):
    settings.RUN_MAX_SECONDS = 300
    spec = minimal_spec()
    spec["caps"]["test"]["timeout_seconds"] = 3600
    spec["caps"]["full"]["timeout_seconds"] = 200
    with caplog.at_level(logging.WARNING, logger="catalog.specs"):
        loaded = validate_spec(spec, "long.yaml")
    assert loaded["caps"]["test"]["timeout_seconds"] == 300 and loaded["caps"]["full"]["timeout_seconds"] == 200
    assert "long.yaml: caps.test.timeout_seconds: 3600 s is above the workers' limit" in caplog.text


# -- 11. Retention -----------------------------------------------------------------------------------------
def test_retention_purges_the_cached_answers_of_the_runs_it_purges(catalog, alice, openai):
    old, recent = (execute(start(catalog.latest_version, alice, models=[MODEL])) for _ in range(2))
    assert LLMCacheEntry.objects.filter(run=old).exists() and LLMCacheEntry.objects.filter(run=recent).exists()
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    assert purge(timedelta(days=30)).runs == 1
    assert not LLMCacheEntry.objects.filter(run_id=old.pk).exists()
    assert LLMCacheEntry.objects.filter(run=recent).exists()


def test_retention_reports_the_files_it_could_not_delete(catalog, alice, settings, tmp_path, caplog):
    run = execute(start(catalog.latest_version, alice))
    folder = Path(settings.MEDIA_ROOT) / "runs" / str(run.pk)
    elsewhere = tmp_path / "moved"
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere)  # rmtree refuses a symbolic link: a file retention cannot delete
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=40))
    err = StringIO()
    with caplog.at_level(logging.WARNING, logger="runs.retention"), pytest.raises(CommandError, match="1 file"):
        call_command("purge_runs", "--older-than", "30d", stdout=StringIO(), stderr=err)
    assert f"Could not delete {folder}" in err.getvalue() and "could not delete" in caplog.text
    assert not Run.objects.filter(pk=run.pk).exists()
    folder.unlink()


# -- Tests that can fail: backoff values and the shared rate limiter --------------------------------------
def test_backoff_doubles_from_half_a_second_with_jitter_and_honours_retry_after():
    for attempt, (low, high) in enumerate([(0.25, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, 4.0)], 1):
        waits = [resilience.backoff(attempt, None) for _ in range(200)]
        assert all(low <= w <= high for w in waits), (attempt, min(waits), max(waits))
        assert max(waits) - min(waits) > (high - low) / 4  # jittered, not one fixed value
    assert resilience.backoff(30, None) <= resilience.MAX_DELAY
    assert resilience.backoff(1, 7.0) == 7.0 and resilience.backoff(1, 999.0) == resilience.MAX_DELAY


class RecordingControl(llm.CallControl):
    """Pauses are recorded and return at once: the backoff values are asserted, not slept."""

    def __init__(self, slept: list[float]) -> None:
        super().__init__(deadline=time.monotonic() + 60)
        self.slept = slept

    def wait(self, seconds: float) -> bool:
        self.slept.append(seconds)
        return False


def test_the_retry_loop_waits_the_backoff_between_attempts(catalog):
    slept: list[float] = []
    with fake_llm("openai") as server:
        connection = provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Retry", api_key="sk-retry-0123456789abcdefghij",
            api_base=server.base_url, allow_private_network=True,
        )  # fmt: skip
        server.push({"status": 503}, {"status": 503}, {})
        result, _ = resilience.call(
            [target_for(MODEL, connection)],
            [{"role": "user", "content": "hi"}],
            on_attempt=lambda record: None,
            prices={},
            control=RecordingControl(slept),
            max_tokens=5,
            timeout=10,
        )
    assert isinstance(result, llm.LLMResult)
    assert len(slept) == 2 and 0.25 <= slept[0] <= 0.5 and 0.5 <= slept[1] <= 1.0


def take_requests(connection_id: int, attempts: int, rpm: int) -> list[dict[str, Any]]:
    """One racer (in its own process, tests.support.racer): try to reserve `attempts` requests."""
    granted = []
    for _ in range(attempts):
        minute = timezone.now().replace(second=0, microsecond=0).isoformat()
        wait = ratelimit.reserve(connection_id, tokens=10, rpm=rpm, tpm=None)
        granted.append({"minute": minute, "granted": wait == 0.0})
    return granted


@pytest.mark.django_db(transaction=True)
def test_the_rate_limit_is_shared_by_two_worker_processes(tmp_path):
    connection = ProviderConnection.objects.create(provider="openai", label="Limited", requests_per_minute=10)
    calls = [{"connection_id": connection.pk, "attempts": 10, "rpm": 10} for _ in range(2)]
    while timezone.now().second > 50:  # both racers in one minute keeps the count simple
        time.sleep(1)
    results = processes.race(f"{__name__}.take_requests", calls, tmp_path / "go")
    per_minute: dict[str, int] = {}
    for racer in results:
        for attempt in racer:
            per_minute[attempt["minute"]] = per_minute.get(attempt["minute"], 0) + attempt["granted"]
    assert all(count <= 10 for count in per_minute.values()), per_minute
    assert sum(per_minute.values()) >= 10, json.dumps(results)
