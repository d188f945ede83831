"""Validate → Test → Full with costs, budgets, resume, replay, recovery and retention (in-process)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.utils import timezone

from providers import services as provider_services
from providers.models import ModelPrice, ProviderConnection
from runs import money, pipeline, recovery, services
from runs.models import Mode, Run, Status, UserBudget
from runs.retention import purge_runs
from settings_app.models import AuditEvent

from .support.fake_llm import JUDGE_MARKER, fake_llm

pytestmark = pytest.mark.django_db


def run_now(catalog, user, mode=Mode.TEST, **kwargs) -> Run:
    run = services.start_run(
        workflow_version=catalog.latest_version, user=user, inputs={}, mode=mode, queue=False, **kwargs
    )
    pipeline.execute(run.pk)
    run.refresh_from_db()
    return run


def text(run: Run, name: str) -> str:
    with run.artifacts.get(name=name).file.open("rb") as handle:
        return handle.read().decode()


def judging(request: dict) -> bool:
    """The quality judge's call (after the steps), told apart from the steps' calls by its prompt."""
    return str((request["body"].get("messages") or [{}])[0].get("content", "")).startswith(JUDGE_MARKER)


def test_validate_estimates_the_cost_with_at_most_one_provider_call(catalog, alice, openai):
    run = run_now(catalog, alice, Mode.VALIDATE, models=["openai/gpt-4o-mini"])
    assert run.status == Status.SUCCEEDED
    assert run.estimated_cost_usd and run.estimated_cost_usd > 0
    assert len(openai.requests) <= 1
    again = run_now(catalog, alice, Mode.VALIDATE, models=["openai/gpt-4o-mini"])
    assert again.status == Status.SUCCEEDED and len(openai.requests) <= 1  # the check is cached briefly
    validation = json.loads(text(run, "validation.json"))
    assert {c["check"] for c in validation["checks"]} == {"inputs", "connection", "model", "cost"}


def test_a_tiny_budget_never_ends_succeeded_and_calls_nothing_but_the_check(catalog, alice, openai):
    run = run_now(catalog, alice, models=["openai/gpt-4o-mini"], budget_usd=Decimal("0.0000001"))
    assert run.status == Status.STOPPED
    assert "above the budget" in run.reason
    assert len(openai.requests) <= 1


def test_the_budget_stops_a_run_mid_way_and_keeps_what_it_made(catalog, alice, openai, monkeypatch):
    monkeypatch.setattr(money, "estimate", lambda *a, **k: Decimal("0"))  # let validation pass (the steps')
    ProviderConnection.objects.update(last_tested_at=None)  # untested: validation makes its check call
    openai.push({}, {"content": "word " * 3000})  # the check, then a long outline that makes step 2 dear
    # Step 1's worst case (~1,000 prompt + 600 output tokens at gpt-4o-mini prices) fits; step 2's does not.
    run = run_now(catalog, alice, models=["openai/gpt-4o-mini"], budget_usd=Decimal("0.0007"))
    assert run.status == Status.STOPPED, run.reason
    assert run.reason.startswith("Stopped at the budget")
    assert run.cost_usd <= run.budget_usd
    assert run.steps_done == 1
    assert "_(This step did not run.)_" in text(run, "notes.md")
    assert json.loads(text(run, "trace.json"))["events"][0]["message"] == "budget would be passed"
    assert len([r for r in openai.requests if r["body"]["max_tokens"] != 1]) == 1
    outline = json.loads(text(run, "trace.json"))["steps"][0]
    assert (outline["prompt_tokens"], outline["completion_tokens"]) == (100, 50)
    check = json.loads(text(run, "validation.json"))["connection_check"]
    assert Decimal(outline["cost_usd"]) == run.cost_usd  # the check is the platform's
    assert check["paid_by"] == "platform" and Decimal(check["cost_usd"]) > 0


def test_an_operator_price_prices_a_model_the_map_lacks(catalog, alice):
    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None,
            ip=None,
            provider="openai_compatible",
            label="Local",
            api_base=server.base_url,
            allow_private_network=True,
        )
        ModelPrice.objects.create(model="openai_compatible/llama3.2", input_per_million=1, output_per_million=2)
        run = run_now(catalog, alice, models=["openai_compatible/llama3.2"])
    assert run.status == Status.SUCCEEDED, run.reason
    assert not run.cost_unpriced
    calls = len(server.requests) - 1  # the connection check is paid by the platform
    # 100 in at $1/M + 50 out at $2/M per call
    assert run.cost_usd == Decimal(calls) * Decimal("0.0002")
    assert ProviderConnection.objects.get().platform_cost_usd == Decimal("0.0002")


def test_the_daily_user_budget_and_the_monthly_connection_budget_refuse_at_validate(catalog, alice, openai):
    UserBudget.objects.create(user=alice, daily_usd=Decimal("0.0001"))
    run = run_now(catalog, alice, models=["openai/gpt-4o-mini"])
    assert run.status == Status.STOPPED and "your daily budget is $0.00" in run.reason
    UserBudget.objects.all().delete()
    ProviderConnection.objects.update(monthly_budget_usd=Decimal("0.00"))
    run = run_now(catalog, alice, models=["openai/gpt-4o-mini"])
    assert run.status == Status.STOPPED and "monthly budget" in run.reason


def test_offline_runs_show_unpriced_not_zero(catalog, alice):
    run = run_now(catalog, alice)
    assert run.cost_unpriced and run.estimated_cost_usd is None
    assert json.loads(text(run, "trace.json"))["run"]["cost_usd"] is None


def test_resume_reuses_finished_steps_and_pays_only_for_the_rest(catalog, alice, openai):
    openai.push({}, {"status": 401})  # the outline succeeds (the connection is checked already), notes is refused
    failed = run_now(catalog, alice, models=["openai/gpt-4o-mini"])
    assert failed.status == Status.FAILED and failed.steps_done == 1
    calls_before = len(openai.requests)
    resumed = services.resume_run(failed, queue=False)
    pipeline.execute(resumed.pk)
    resumed.refresh_from_db()
    assert resumed.status == Status.SUCCEEDED, resumed.reason
    assert resumed.resumed_from == failed and resumed.steps_done == 2
    step_calls = [r for r in openai.requests[calls_before:] if r["body"]["max_tokens"] != 1 and not judging(r)]
    assert len(step_calls) == 1  # only the notes step was paid again (then the quality judge, once)
    assert resumed.cost_usd < failed.cost_usd + resumed.cost_usd
    assert failed.step_outputs["outline"] in text(resumed, "notes.md")


def test_only_finished_runs_that_failed_or_stopped_can_be_resumed(catalog, alice):
    run = run_now(catalog, alice)
    with pytest.raises(services.RunRefused):
        services.resume_run(run)


def test_a_replay_reuses_cached_responses_at_no_cost_with_identical_artifacts(catalog, alice, openai):
    first = run_now(catalog, alice, models=["openai/gpt-4o-mini"])
    assert first.status == Status.SUCCEEDED and first.cost_usd > 0
    calls = len(openai.requests)
    replay = services.rerun(first, user=alice, replay=True, queue=False)
    pipeline.execute(replay.pk)
    replay.refresh_from_db()
    assert replay.status == Status.SUCCEEDED
    assert replay.cost_usd == 0
    assert len(openai.requests) == calls  # no call: not the steps, nor the judge (the connection is checked)
    assert text(replay, "notes.md") == text(first, "notes.md")
    trace = json.loads(text(replay, "trace.json"))
    hits = [c["cache_hit"] for s in trace["steps"] for c in s["calls"]]
    assert hits and all(hits)
    judged = [c["call"] for c in trace["checks"] if c.get("call")]
    # the judge's verdict is replayed too, at no cost
    assert judged and all(c["cache_hit"] and Decimal(str(c["cost_usd"])) == 0 for c in judged)
    assert replay.checks_passed and replay.judge_score == first.judge_score


# A finished outline step as the workflow's checks want it (its heading, a cited reference), reused on resume.
WELL_FORMED_OUTLINE = "## Outline\n\n1. The agent loop, as references/agent-loop.md describes it."


def test_a_run_whose_worker_died_is_marked_failed_and_resumable(catalog, alice):
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False
    )
    assert pipeline.claim(run.pk)
    Run.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5), step_outputs={"outline": WELL_FORMED_OUTLINE}
    )
    assert recovery.recover_stale_runs(stale_seconds=60) == [str(run.pk)]
    run.refresh_from_db()
    assert run.status == Status.FAILED and "Resume it" in run.reason
    assert json.loads(text(run, "trace.json"))["events"][0]["kind"] == "recovered"
    assert recovery.recover_stale_runs(stale_seconds=60) == []
    resumed = services.resume_run(run, queue=False)
    pipeline.execute(resumed.pk)
    resumed.refresh_from_db()
    assert resumed.status == Status.SUCCEEDED, resumed.reason
    assert resumed.step_outputs["outline"] == WELL_FORMED_OUTLINE  # reused, not asked again


def test_a_live_run_with_a_fresh_heartbeat_is_left_alone(catalog, alice):
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False
    )
    pipeline.claim(run.pk)
    assert recovery.recover_stale_runs(stale_seconds=60) == []


def test_skipping_the_progression_needs_the_permission_and_is_audited(catalog, alice):
    with pytest.raises(services.RunRefused):
        services.start_run(
            workflow_version=catalog.latest_version,
            user=alice,
            inputs={},
            mode=Mode.FULL,
            skip_progression=True,
            queue=False,
        )
    alice.user_permissions.add(Permission.objects.get(codename="skip_progression"))
    alice = type(alice).objects.get(pk=alice.pk)
    run = services.start_run(
        workflow_version=catalog.latest_version,
        user=alice,
        inputs={},
        mode=Mode.FULL,
        skip_progression=True,
        queue=False,
    )
    assert AuditEvent.objects.filter(action="progression_skipped", target_id=str(run.pk), actor=alice).exists()


def test_purge_deletes_old_finished_runs_and_their_files_only(catalog, alice):
    old, recent = run_now(catalog, alice), run_now(catalog, alice)
    running = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False
    )
    Run.objects.filter(pk__in=[old.pk, running.pk]).update(created_at=timezone.now() - timedelta(days=40))
    folder = Path(old.artifacts.get(name="notes.md").file.path).parent
    assert purge_runs(timedelta(days=30), dry_run=True) == 1 and folder.exists()
    out = StringIO()
    call_command("purge_runs", "--older-than", "30d", stdout=out)
    assert "Deleted 1 run(s)" in out.getvalue()
    assert set(Run.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not folder.exists()


@pytest.mark.django_db(transaction=True)
def test_after_a_purge_the_sqlite_file_shrinks(catalog, alice):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("file size is a SQLite matter")
    bulky = {"outline": "x" * 2_000_000}
    for _ in range(3):
        run = services.start_run(
            workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False
        )
        Run.objects.filter(pk=run.pk).update(
            status=Status.FAILED, step_outputs=bulky, created_at=timezone.now() - timedelta(days=40)
        )
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database = Path(connection.settings_dict["NAME"])
    before = database.stat().st_size
    assert purge_runs(timedelta(days=30)) == 3
    assert database.stat().st_size < before - 4_000_000


def test_the_periodic_recovery_and_retention_tasks_are_scheduled_once():
    from django_q.models import Schedule

    call_command("ensure_schedules", stdout=StringIO())
    call_command("ensure_schedules", stdout=StringIO())
    assert dict(Schedule.objects.values_list("name", "func")) == {
        "recover-stale-runs": "runs.tasks.recover_stale_runs",
        "purge-old-runs": "runs.tasks.purge_old_runs",
        "rebuild-usage": "runs.usage.rebuild",
    }
    assert Schedule.objects.get(name="recover-stale-runs").minutes == 1


@pytest.mark.parametrize(("age", "ok"), [("30d", True), ("12h", True), ("0d", False), ("30", False), ("x1d", False)])
def test_purge_runs_reads_ages_plainly(age, ok):
    from django.core.management import CommandError

    if ok:
        call_command("purge_runs", "--older-than", age, "--dry-run", stdout=StringIO())
    else:
        with pytest.raises(CommandError, match="is not an age"):
            call_command("purge_runs", "--older-than", age, stdout=StringIO())
