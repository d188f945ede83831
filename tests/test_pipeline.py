from __future__ import annotations

import json
from decimal import Decimal

import pytest

from runs import pipeline, services
from runs.models import Mode, Run, Status

pytestmark = pytest.mark.django_db


def start(catalog, user, mode=Mode.TEST, **kwargs):
    return services.start_run(
        workflow_version=catalog.latest_version, user=user, inputs={}, mode=mode, queue=False, **kwargs
    )


def artifact_text(run: Run, name: str) -> str:
    with run.artifacts.get(name=name).file.open("rb") as handle:
        return handle.read().decode()


def test_a_test_run_on_the_offline_model_writes_notes_and_a_trace(catalog, alice):
    run = start(catalog, alice)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    assert run.model_used == "offline/demo"
    assert run.steps_done == run.steps_total == 2
    assert run.cost_unpriced and run.estimated_cost_usd is None
    assert {a.name for a in run.artifacts.all()} == {"notes.md", "trace.json", "validation.json"}
    notes = artifact_text(run, "notes.md")
    assert notes.startswith("# Learn Agentic AI: The agent loop and tool use")
    trace = json.loads(artifact_text(run, "trace.json"))
    assert trace["format"] == "awp-trace/1"
    assert trace["run"]["status"] == "succeeded"
    tool_names = [t["name"] for step in trace["steps"] for call in step["calls"] for t in call.get("tool_calls", [])]
    assert tool_names == ["list_references", "read_reference"]
    read = next(
        t for s in trace["steps"] for c in s["calls"] for t in c.get("tool_calls", []) if t["name"] == "read_reference"
    )
    assert read["result"]["path"] == "references/agent-loop.md"


def test_the_same_inputs_give_the_same_notes(catalog, alice):
    first, second = start(catalog, alice), start(catalog, alice)
    pipeline.execute(first.pk)
    pipeline.execute(second.pk)
    assert artifact_text(first, "notes.md") == artifact_text(second, "notes.md")


def test_a_redelivered_task_never_executes_a_run_twice(catalog, alice):
    run = start(catalog, alice)
    assert pipeline.execute(run.pk) is not None
    assert pipeline.execute(run.pk) is None
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    trace = json.loads(artifact_text(run, "trace.json"))
    assert len(trace["steps"]) == 2


def test_only_one_of_two_claims_wins(catalog, alice):
    run = start(catalog, alice)
    assert [pipeline.claim(run.pk), pipeline.claim(run.pk)] == [True, False]


def test_validate_mode_stops_after_validation(catalog, alice):
    run = start(catalog, alice, mode=Mode.VALIDATE)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert "Validation passed" in run.reason
    assert {a.name for a in run.artifacts.all()} == {"trace.json", "validation.json"}
    checks = json.loads(artifact_text(run, "validation.json"))["checks"]
    assert [c["check"] for c in checks] == ["inputs", "connection", "model", "cost"]


def test_a_full_run_is_refused_before_a_test_run_and_allowed_after(catalog, alice):
    with pytest.raises(services.RunRefused, match="needs a passed test run"):
        start(catalog, alice, mode=Mode.FULL)
    pipeline.execute(start(catalog, alice).pk)
    full = start(catalog, alice, mode=Mode.FULL)
    pipeline.execute(full.pk)
    full.refresh_from_db()
    assert full.status == Status.SUCCEEDED


def test_a_failed_test_run_does_not_unlock_the_full_run(catalog, alice):
    run = start(catalog, alice)
    Run.objects.filter(pk=run.pk).update(status=Status.FAILED)
    with pytest.raises(services.RunRefused):
        start(catalog, alice, mode=Mode.FULL)


def test_a_budget_can_be_lowered_but_not_raised(catalog, alice):
    with pytest.raises(services.RunRefused, match="only be lowered"):
        start(catalog, alice, budget_usd=Decimal("100"))
    assert start(catalog, alice, budget_usd=Decimal("0.01")).budget_usd == Decimal("0.01")


def test_a_cancel_before_the_worker_starts_ends_the_run_at_once(catalog, alice):
    run = start(catalog, alice)
    assert services.request_cancel(run)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert pipeline.execute(run.pk) is None


def test_a_cancel_during_the_run_stops_it_and_keeps_the_trace(catalog, alice, monkeypatch):
    run = start(catalog, alice)
    real = pipeline.Executor._record

    def record_then_cancel(self, call, result, target):
        real(self, call, result, target)
        Run.objects.filter(pk=self.run.pk).update(cancel_requested=True)

    monkeypatch.setattr(pipeline.Executor, "_record", record_then_cancel)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert run.steps_done == 0
    assert json.loads(artifact_text(run, "trace.json"))["run"]["status"] == "cancelled"


def test_an_internal_error_fails_the_run_instead_of_leaving_it_running(catalog, alice, monkeypatch):
    run = start(catalog, alice)
    monkeypatch.setattr(pipeline.Executor, "write_artifacts", lambda self: 1 / 0)
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "internal error" in run.reason
    assert run.finished_at is not None
    assert run.artifacts.filter(name="trace.json").exists()


def test_a_model_with_no_connection_fails_in_validation_with_a_clear_reason(catalog, alice):
    # Starting one is refused (services.checked_models); a run whose connection went away after it started
    # still fails in validation.
    with pytest.raises(services.ModelRefused, match="'openai/gpt-4o-mini' is not offered for this workflow now"):
        start(catalog, alice, models=["openai/gpt-4o-mini"])
    run = start(catalog, alice)
    Run.objects.filter(pk=run.pk).update(requested_models=["openai/gpt-4o-mini"])
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert run.reason.startswith("None of the models openai/gpt-4o-mini has a connected provider")
    assert run.steps_done == 0
