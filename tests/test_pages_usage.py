"""The usage page reads a rollup kept by runs.usage.record_finished; its numbers equal a scan over the runs."""

from __future__ import annotations

import io
import random
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from runs import pipeline, services, usage
from runs.models import FINISHED, Mode, Run, Status, UsageDay, UsageDayTotal, UserBudget
from settings_app.roles import assign_role

from .factories import RunFactory, UserFactory, WorkflowVersionFactory

pytestmark = pytest.mark.django_db

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest", "offline/demo", ""]


def _finish(run: Run) -> Run:
    usage.record_finished(run)
    return run


def _scatter(users, versions, count: int, seed: int = 7) -> list[Run]:
    """Runs over 35 days, users, workflows, models and statuses (some still running), like a class makes."""
    rng = random.Random(seed)
    now = timezone.now()
    runs = []
    for _ in range(count):
        run = RunFactory(
            user=rng.choice(users),
            workflow_version=rng.choice(versions),
            status=rng.choice([*FINISHED, Status.RUNNING, Status.QUEUED]),
            model_used=rng.choice(MODELS),
            cost_usd=Decimal(rng.randint(0, 50_000)) / Decimal(1_000_000),
            cost_unpriced=rng.random() < 0.2,
            prompt_tokens=rng.randint(0, 4000),
            completion_tokens=rng.randint(0, 2000),
        )
        Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(hours=rng.uniform(0, 35 * 24)))
        runs.append(run)
    return runs


def _scan(runs, days: int = 30) -> dict[str, dict]:
    """The usage figures computed the slow way, from the finished runs themselves."""
    today = timezone.localdate()
    per_day: dict = defaultdict(lambda: [Decimal(0), 0, 0, 0])
    per_workflow: dict = defaultdict(lambda: [Decimal(0), 0, 0, 0])
    per_provider: dict = defaultdict(lambda: [Decimal(0), 0, 0, 0])
    for run in Run.objects.filter(pk__in=[r.pk for r in runs], status__in=FINISHED).select_related(
        "workflow_version__workflow"
    ):
        day = timezone.localdate(run.created_at)
        if day <= today - timedelta(days=days):
            continue
        provider = (run.model_used or "not run").split("/")[0]
        for table, key in (
            (per_day, day.strftime("%m-%d")),
            (per_workflow, run.workflow_version.workflow.title),
            (per_provider, provider),
        ):
            row = table[key]
            row[0] += run.cost_usd
            row[1] += run.tokens
            row[2] += 1
            row[3] += int(run.cost_unpriced and run.model_used != "offline/demo")
    return {"daily": per_day, "per_workflow": per_workflow, "per_provider": per_provider}


def _figures(summary: dict) -> dict[str, dict]:
    return {
        name: {b.label: [b.cost, b.tokens, b.runs, b.unpriced] for b in summary[name] if b.runs}
        for name in ("daily", "per_workflow", "per_provider")
    }


@pytest.fixture
def operator(db):
    user = UserFactory(username="opa")
    assign_role(user, "Operator")
    return type(user).objects.get(pk=user.pk)


def test_the_rollup_gives_the_same_numbers_as_a_scan_over_the_runs(operator, alice, bob, catalog):
    versions = [catalog.latest_version, WorkflowVersionFactory(workflow__title="Other")]
    runs = _scatter([alice, bob, operator], versions, 150)
    for run in runs:
        usage.record_finished(run)
    everyone = usage.summary(usage.rollup_for(operator), operator)
    assert _figures(everyone) == {k: {n: list(v) for n, v in t.items()} for k, t in _scan(runs).items()}
    mine = usage.summary(usage.rollup_for(alice), alice)
    assert _figures(mine) == {
        k: {n: list(v) for n, v in t.items()} for k, t in _scan([r for r in runs if r.user_id == alice.pk]).items()
    }
    assert everyone["total_cost"] == sum(v[0] for v in _scan(runs)["daily"].values())


def _rollups() -> tuple[list, list]:
    fields = ("day", "workflow", "model", "runs", "unpriced_runs", "cost_usd", "prompt_tokens", "completion_tokens")
    return (
        sorted(UsageDay.objects.values_list("user", *fields)),
        sorted(UsageDayTotal.objects.values_list(*fields)),
    )


def test_rebuilding_the_rollups_gives_the_rows_recording_gave(alice, bob, catalog):
    runs = _scatter([alice, bob], [catalog.latest_version], 80, seed=3)
    for run in runs:
        usage.record_finished(run)
    recorded = _rollups()
    assert recorded[0] and recorded[1]
    call_command("rebuild_usage", stdout=io.StringIO())
    assert _rollups() == recorded
    UsageDay.objects.all().delete()  # lost (say, restored from an old backup): the rebuild brings it back
    UsageDayTotal.objects.all().delete()
    usage.rebuild()
    assert _rollups() == recorded


def test_a_run_is_added_once_however_often_it_is_reported(alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.SUCCEEDED, cost_usd=1)
    assert usage.record_finished(run) is True
    assert usage.record_finished(run) is False
    usage.rebuild()
    assert usage.record_finished(run) is False
    assert UsageDay.objects.get().runs == 1


def test_a_run_still_going_is_not_added(alice, catalog):
    run = RunFactory(user=alice, workflow_version=catalog.latest_version, status=Status.RUNNING)
    assert usage.record_finished(run) is False
    assert not UsageDay.objects.exists()


def test_the_rebuild_runs_on_a_schedule(db):
    from django_q.models import Schedule

    call_command("ensure_schedules", stdout=io.StringIO())
    assert Schedule.objects.get(name="rebuild-usage").func == "runs.usage.rebuild"


def test_the_usage_page_charts_spend_and_shows_the_budget_left(alice_client, alice, catalog):
    _finish(
        RunFactory(
            user=alice,
            workflow_version=catalog.latest_version,
            status=Status.SUCCEEDED,
            model_used="openai/gpt-4o-mini",
            cost_usd=Decimal("0.25"),
        )
    )
    UserBudget.objects.create(user=alice, daily_usd=Decimal("1.00"))
    page = alice_client.get(reverse("runs:usage")).content.decode()
    assert "<svg" in page and 'class="bar"' in page
    assert "left: $0.75" in page
    assert "<td>openai</td>" in page and "<td>Learn Agentic AI</td>" in page


def test_usage_of_unpriced_runs_says_unpriced_and_charts_tokens(alice_client, alice, catalog):
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False
    )
    pipeline.execute(run.pk)
    _finish(Run.objects.get(pk=run.pk))
    page = alice_client.get(reverse("runs:usage")).content.decode()
    assert "Tokens per day (every run was free or unpriced)" in page
    assert "<td>offline</td><td>1</td>" in page.replace("\n", "").replace("  ", "")
    assert "free</td>" in page and "unpriced</td>" not in page and "$0.0000" not in page  # offline is free


def test_a_student_sees_only_their_own_usage_and_an_operator_everyones(client, operator, alice, bob, catalog):
    for user, cost in ((alice, "0.50"), (bob, "0.25")):
        _finish(
            RunFactory(
                user=user,
                workflow_version=catalog.latest_version,
                status=Status.SUCCEEDED,
                model_used="openai/gpt-4o-mini",
                cost_usd=Decimal(cost),
            )
        )
    client.force_login(alice)
    assert "$0.5 and" in client.get(reverse("runs:usage")).content.decode()
    client.force_login(operator)
    assert "$0.75 and" in client.get(reverse("runs:usage")).content.decode()


@pytest.mark.django_db(transaction=True)
def test_runs_finishing_at_once_on_separate_connections_are_all_counted(catalog):
    import threading

    from django.db import connection

    students = [UserFactory(username=f"s{i}") for i in range(2)]
    runs = [
        RunFactory(user=students[i % 2], workflow_version=catalog.latest_version, status=Status.SUCCEEDED, cost_usd=1)
        for i in range(8)
    ]
    start, errors = threading.Barrier(len(runs)), []

    def finish(run: Run) -> None:
        try:
            start.wait()
            usage.record_finished(run)
            usage.record_finished(run)  # a re-delivery on the same connection
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(UsageDay.objects.values_list("runs", flat=True)) == [4, 4]
    assert UsageDayTotal.objects.get().runs == 8 and UsageDayTotal.objects.get().cost_usd == 8
