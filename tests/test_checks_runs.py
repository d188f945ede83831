"""Quality checks decide whether a test run passed, per model: a poor answer from a real provider (a stand-in
over real HTTP through LiteLLM) fails learn-agentic-ai's checks, keeps its outputs, costs what it cost and
unlocks nothing; a pass on the offline demo model unlocks a full run on the offline model only."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from api.tokens import create_token
from providers import services as provider_services
from runs import pipeline, services
from runs.models import Mode, Run, Status

from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db
INPUTS = {"topic": "Tool use", "level": "beginner", "session_minutes": 30}
POOR = "## Notes - point one - point two"
STAND_IN = "openai_compatible/stand-in"


@pytest.fixture(scope="module", autouse=True)
def _warm():
    from providers.llm import warm_up

    warm_up()


@pytest.fixture
def stand_in(catalog):
    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai_compatible", label="Stand-in", api_key="",
            api_base=server.base_url, allow_private_network=True, default_model=STAND_IN, options={"allow_unpriced": True},
        )  # fmt: skip
        yield server


def run_test(catalog, user, models, inputs=INPUTS) -> Run:
    run = services.start_run(
        workflow_version=catalog.latest_version, user=user, inputs=inputs, mode=Mode.TEST, models=models, queue=False
    )
    pipeline.execute(run.pk)
    run.refresh_from_db()
    return run


def trace_of(run: Run) -> dict:
    return json.loads(run.artifacts.get(name="trace.json").file.read())


def test_a_poor_answer_fails_the_test_run_naming_the_failed_checks_and_keeps_its_outputs(catalog, alice, stand_in):
    stand_in.default = {"content": POOR}
    run = run_test(catalog, alice, [STAND_IN])
    assert run.status == Status.FAILED
    assert run.reason.startswith("Quality checks failed: ")
    for name in ("outline-sections", "notes-sections", "self-check-questions", "length", "rubric"):
        assert name in run.reason
    assert "missing: Key terms, Summary" in run.reason and "5 words, at least 150 wanted" in run.reason
    assert run.checks_passed is False and run.judge_score is None  # no verdict is no score, not a zero
    assert "notes.md" in {a.name for a in run.artifacts.all()}  # the outputs are kept and shown
    assert run.step_outputs["notes"] == POOR
    assert run.completion_tokens > 0  # it cost what it cost, judge included (counted, recorded)
    checks = {c["name"]: c for c in trace_of(run)["checks"]}
    assert checks["no-refusal"]["passed"] is True and checks["length"]["passed"] is False
    assert checks["rubric"]["call"]["purpose"] == "judge" and checks["rubric"]["call"]["model"] == STAND_IN
    # the judge was asked last (its poor answer is not a verdict)
    judged = stand_in.requests[-1]["body"]
    assert judged["messages"][0]["content"].startswith("You grade an answer against a rubric")
    assert judged["messages"][1]["content"].endswith(f"<untrusted>{POOR}</untrusted>")
    assert "no verdict" in checks["rubric"]["reason"]
    with pytest.raises(services.FullRunLocked):
        services.start_run(
            workflow_version=catalog.latest_version, user=alice, inputs=INPUTS, mode=Mode.FULL, models=[STAND_IN]
        )


def test_a_good_answer_from_the_same_provider_passes_and_unlocks_a_full_run_on_it(catalog, alice, stand_in):
    run = run_test(catalog, alice, [STAND_IN])
    assert run.status == Status.SUCCEEDED, run.reason
    assert run.checks_passed is True and run.judge_score == 1
    full = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs=INPUTS, mode=Mode.FULL, models=[STAND_IN]
    )
    assert full.unlocked_by_id == run.pk


def test_a_passed_offline_test_does_not_unlock_a_full_run_on_another_model(catalog, alice, stand_in):
    offline = run_test(catalog, alice, ["offline/demo"])
    assert offline.status == Status.SUCCEEDED and offline.checks_passed is True
    with pytest.raises(services.FullRunLocked) as refused:
        services.start_run(
            workflow_version=catalog.latest_version, user=alice, inputs=INPUTS, mode=Mode.FULL, models=[STAND_IN]
        )
    assert str(refused.value) == (
        f"A full run on {STAND_IN} needs a passed test run on {STAND_IN} itself: your test runs with these inputs "
        f"passed on offline/demo only. Run a test on {STAND_IN} first."
    )
    # The form's default is the connected model, so a full run without a model is refused too
    with pytest.raises(services.FullRunLocked):
        services.start_run(workflow_version=catalog.latest_version, user=alice, inputs=INPUTS, mode=Mode.FULL)
    # ... and the offline test unlocks the offline full run, saying which test did
    full = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs=INPUTS, mode=Mode.FULL, models=["offline/demo"]
    )
    assert full.unlocked_by_id == offline.pk


def test_the_api_refuses_the_full_run_on_another_model_with_409_and_says_which_test_unlocked(catalog, alice, stand_in):
    offline = run_test(catalog, alice, ["offline/demo"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_token(user=alice, name='t', scope='run').secret}")
    body = {"workflow": "learn-agentic-ai", "mode": "full", "inputs": INPUTS, "model": STAND_IN}
    refused = api.post("/api/v1/runs", body, content_type="application/json")
    assert refused.status_code == 409 and refused.json()["code"] == "full_run_locked"
    assert "passed on offline/demo only" in refused.json()["message"]
    started = api.post("/api/v1/runs", {**body, "model": "offline/demo"}, content_type="application/json")
    assert started.status_code == 201 and started.json()["unlocked_by"] == str(offline.pk)
    shown = api.get(f"/api/v1/runs/{offline.pk}").json()
    assert shown["checks_passed"] is True
    assert {c["name"] for c in shown["checks"]} >= {"notes-sections", "length", "rubric"}


def test_the_form_says_why_a_full_run_on_another_model_is_locked(catalog, alice, alice_client, stand_in):
    run_test(catalog, alice, ["offline/demo"])
    data = {
        **INPUTS, "background": "I know some Python and have used a chatbot.", "include_questions": "on",
        "focus": ["agent-loop", "tool-use"], "mode": "full", "run-model": STAND_IN,
    }  # fmt: skip
    page = alice_client.post("/workflows/learn-agentic-ai/", data)
    assert page.status_code == 422
    text = page.content.decode()
    assert "needs a passed test run on" in text and "offline/demo" in text
    assert Run.objects.filter(mode=Mode.FULL).count() == 0


def test_the_run_page_shows_the_checks_as_a_step_of_their_own(catalog, alice, alice_client, stand_in):
    stand_in.default = {"content": POOR}
    run = run_test(catalog, alice, [STAND_IN])
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="step-checks"' in page and "Quality checks" in page
    assert "Failed: notes-sections" in page and "Passed: no-refusal" in page
    assert "Run full" not in page


def test_the_judge_call_is_capped_by_the_runs_budget_before_it_is_made(alice, monkeypatch):
    from decimal import Decimal

    from runs import money

    from .factories import WorkflowVersionFactory, minimal_spec

    rubric = {"kind": "rubric", "threshold": 0.5, "criteria": [{"name": "clear", "description": "Plain words."}]}
    version = WorkflowVersionFactory(spec=minimal_spec(id="judged", checks=[rubric]))

    def start() -> Run:
        run = services.start_run(
            workflow_version=version, user=alice, inputs={}, mode=Mode.TEST, models=["openai/gpt-4o-mini"],
            budget_usd=Decimal("0.0002"), queue=False,
        )  # fmt: skip
        pipeline.execute(run.pk)
        run.refresh_from_db()
        return run

    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None, ip=None, provider="openai", label="Fake", api_key="sk-judge-0123456789abcdefghij",
            api_base=server.base_url, allow_private_network=True,
        )  # fmt: skip
        # The step's worst case fits $0.0002; the judge's (its prompt + 400 output tokens) does not, after it.
        # The estimate counts the judge's call, so Validate refuses the run before any step is asked.
        refused = start()
        assert refused.status == Status.STOPPED and refused.reason.startswith("Refused: the estimated cost")
        assert all(r["body"]["max_tokens"] == 1 for r in server.requests)  # only the connection check
        # An estimate that left the judge out (as a judge model of the operator's, priced otherwise, might):
        # the budget still stops the run before the judge's call is made.
        monkeypatch.setattr(money, "judge_tokens", lambda *args, **kwargs: (0, 0))
        run = start()
    assert run.status == Status.STOPPED, run.reason
    assert run.reason.startswith("Stopped at the budget before the quality judge")
    assert not any(r["body"]["messages"][0]["content"].startswith("You grade") for r in server.requests)
    assert run.cost_usd <= Decimal("0.0002")
