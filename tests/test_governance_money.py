"""Issue 11, money: budgets reserve before they spend (also under real concurrency), the estimate is an upper
bound of what a run really costs, and no unpriced model slips past a dollar budget."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.db import connection as db_connection
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from catalog.models import Workflow, WorkflowVersion
from catalog.services import sync_workflows
from providers import llm, registry
from providers import services as provider_services
from providers.models import ModelPrice, Provider, ProviderConnection
from providers.resolution import target_for
from runs import money, pipeline, recovery, services
from runs.control import RunControl
from runs.models import Mode, Run, Status, UserBudget

from .support import processes
from .support.fake_llm import FakeLLM, fake_llm

MODEL = "openai/gpt-4o-mini"


def connect(server: FakeLLM, **fields: object) -> ProviderConnection:
    connection = provider_services.save_connection(
        actor=None,
        ip=None,
        provider="openai",
        label="Fake",
        api_key="sk-governance-0123456789abcdefghij",
        api_base=server.base_url,
        allow_private_network=True,
    )
    ProviderConnection.objects.filter(pk=connection.pk).update(**fields)
    return ProviderConnection.objects.get(pk=connection.pk)


def run_now(version, user, mode=Mode.TEST, **kwargs) -> Run:
    run = services.start_run(workflow_version=version, user=user, inputs=kwargs.pop("inputs", {}), mode=mode,
                             queue=False, **kwargs)  # fmt: skip
    pipeline.execute(run.pk)
    run.refresh_from_db()
    return run


@pytest.fixture
def measured(catalog):
    """A fake OpenAI that reports token counts measured from each real request and answers at max length."""
    with fake_llm("openai", usage="measured", fill=True) as server:
        connect(server)
        yield server


# -- the estimate is an upper bound ------------------------------------------------------------------------
REFERENCES = ["agent-loop.md", "tool-use.md", "evaluation-and-safety.md"]
tool_calls = st.lists(
    st.one_of(
        st.just({"name": "list_references", "arguments": {"skill": "learn-agentic-ai"}}),
        st.sampled_from(REFERENCES).map(
            lambda path: {"name": "read_reference", "arguments": {"skill": "learn-agentic-ai", "path": path}}
        ),
        st.sampled_from(["agent", "tool", "the", "zzz"]).map(
            lambda q: {"name": "search_references", "arguments": {"skill": "learn-agentic-ai", "query": q}}
        ),
    ),
    max_size=4,
)
texts = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=3, max_size=200)


# No shrinking: each example is a whole run, and a counterexample as drawn is readable enough.
@hypothesis_settings(
    max_examples=6,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    topic=texts.filter(lambda t: len(t.strip()) >= 3),
    background=st.text(max_size=2000),
    level=st.sampled_from(["beginner", "intermediate", "advanced"]),
    minutes=st.integers(10, 240),
    calls=tool_calls,
)
def test_the_estimate_is_an_upper_bound_of_what_a_run_really_costs(
    catalog, alice, measured, topic, background, level, minutes, calls
):
    inputs = {"topic": topic, "background": background, "level": level, "session_minutes": minutes}
    measured.script.clear()
    measured.push(*({"tool_call": call} for call in calls))
    run = run_now(catalog.latest_version, alice, models=[MODEL], inputs=inputs)
    assert run.status == Status.SUCCEEDED, run.reason
    assert run.prompt_tokens > 0 and run.completion_tokens >= 600  # measured, at least one full-length answer
    assert run.cost_usd <= run.estimated_cost_usd


def tool_free_workflow(catalog, tmp_path: Path) -> WorkflowVersion:
    """learn-agentic-ai without tools: every call a run may make is one it does make, so a run's real cost is
    most of its estimate and a budget that holds two estimates cannot also pay for ten runs."""
    spec = yaml.safe_load((settings.WORKFLOWS_DIR / "learn-agentic-ai.yaml").read_text())
    spec["id"] = "lean-notes"
    for step in spec["steps"]:
        step.pop("tools", None)
    (tmp_path / "lean-notes.yaml").write_text(yaml.safe_dump(spec))
    sync_workflows(workflows_dir=tmp_path)
    return Workflow.objects.get(slug="lean-notes").latest_version


# -- reservations ------------------------------------------------------------------------------------------
def test_a_run_in_flight_holds_its_estimate_and_releases_it_when_it_ends(catalog, alice, measured):
    version = catalog.latest_version
    estimate = run_now(version, alice, Mode.VALIDATE, models=[MODEL]).estimated_cost_usd
    UserBudget.objects.create(user=alice, daily_usd=(estimate * Decimal("1.5")).quantize(Decimal("0.0001")))
    first = services.start_run(workflow_version=version, user=alice, inputs={}, mode=Mode.TEST, queue=False)
    executor = pipeline.Executor(Run.objects.get(pk=first.pk), RunControl(first.pk, inline=True))
    assert pipeline.claim(first.pk)
    executor.validate()  # holds the estimate: a second run cannot also count on it
    assert Run.objects.get(pk=first.pk).reserved_usd == estimate
    refused = run_now(version, alice, models=[MODEL])
    assert refused.status == Status.STOPPED and "held by runs in flight" in refused.reason
    executor._finish(Status.FAILED, "ended early")  # however it ends, the hold becomes what it spent
    assert Run.objects.get(pk=first.pk).reserved_usd == 0
    assert run_now(version, alice, models=[MODEL]).status == Status.SUCCEEDED


def test_recovering_a_dead_workers_run_releases_what_it_held(catalog, alice, measured):
    version = catalog.latest_version
    estimate = run_now(version, alice, Mode.VALIDATE, models=[MODEL]).estimated_cost_usd
    UserBudget.objects.create(user=alice, daily_usd=(estimate * Decimal("1.5")).quantize(Decimal("0.0001")))
    lost = services.start_run(workflow_version=version, user=alice, inputs={}, mode=Mode.TEST, queue=False)
    assert pipeline.claim(lost.pk)
    pipeline.Executor(Run.objects.get(pk=lost.pk), RunControl(lost.pk, inline=True)).validate()
    Run.objects.filter(pk=lost.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert recovery.recover_stale_runs() == [str(lost.pk)]
    assert Run.objects.get(pk=lost.pk).reserved_usd == 0
    assert run_now(version, alice, models=[MODEL]).status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("budget", ["user daily", "connection monthly"])
def test_ten_runs_at_once_never_spend_more_than_a_budget_that_allows_two(catalog, alice, budget, tmp_path):
    """Ten runs start at one moment, each in its own thread with its own database connection."""
    with fake_llm("openai", usage="measured", fill=True) as server:
        connection = connect(server)
        # Prices at which a test run could cost ~$0.04 (under its $0.05 cap): budgets are whole cents.
        ModelPrice.objects.create(model=MODEL, input_per_million=Decimal("1.2"), output_per_million=Decimal("4.8"))
        version = tool_free_workflow(catalog, tmp_path)
        estimate = run_now(version, alice, Mode.VALIDATE, models=[MODEL]).estimated_cost_usd
        limit = (estimate * Decimal("2.5")).quantize(Decimal("0.01"))
        if budget == "user daily":
            UserBudget.objects.create(user=alice, daily_usd=limit)
        else:
            ProviderConnection.objects.filter(pk=connection.pk).update(monthly_budget_usd=limit)
        runs = [
            services.start_run(
                workflow_version=version, user=alice, inputs={}, mode=Mode.TEST, models=[MODEL], queue=False
            )
            for _ in range(10)
        ]
        barrier = threading.Barrier(len(runs))

        def execute(run_id: object) -> None:
            try:
                barrier.wait(timeout=30)
                pipeline.execute(run_id)
            finally:
                db_connection.close()

        threads = [threading.Thread(target=execute, args=(run.pk,)) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
    done = Run.objects.filter(pk__in=[r.pk for r in runs])
    assert all(r.is_finished for r in done), [r.status for r in done]
    spent = sum((r.cost_usd for r in done), Decimal(0))
    succeeded = [r for r in done if r.status == Status.SUCCEEDED]
    assert len(succeeded) >= 2, [r.reason for r in done]
    assert spent <= limit, f"{spent} spent against a budget of {limit}"
    assert sum(r.cost_usd for r in succeeded) > estimate  # real spend, or the race proves nothing
    assert all(r.reserved_usd == 0 for r in done)


def hold_and_release(run_ids: list[str], connection_id: int, estimate: str) -> dict[str, Any]:
    """One racer (in its own process, tests.support.racer): reserve for each run in turn; while a reservation
    is held, look at everything held at that moment; then settle (the run spent nothing) and go on."""
    granted, most = 0, Decimal(0)
    for pk in run_ids:
        run = Run.objects.get(pk=pk)
        if money.reserve(run, connection_id, Decimal(estimate)) is None:
            granted += 1
            held = Run.objects.filter(user_id=run.user_id).aggregate(total=Sum("reserved_usd"))["total"]
            most = max(most, Decimal(held or 0))
            time.sleep(0.005)
            money.settle(run)
    return {"granted": granted, "most_held": str(most)}


@pytest.mark.django_db(transaction=True)
def test_reservations_racing_from_ten_processes_never_hold_more_than_the_budget(catalog, alice, tmp_path):
    """The check-and-hold itself, hammered at its limit: a budget of $1.00 fits two holds of $0.40 at a time,
    and ten processes keep reserving and releasing."""
    connection = ProviderConnection.objects.create(provider="openai", label="Race", monthly_budget_usd=Decimal("1.00"))
    UserBudget.objects.create(user=alice, daily_usd=Decimal("1.00"))
    version = catalog.latest_version
    runs = Run.objects.bulk_create(
        Run(user=alice, workflow_version=version, mode=Mode.TEST, status=Status.RUNNING) for _ in range(120)
    )
    calls = [
        {"run_ids": [str(run.pk) for run in runs[i::10]], "connection_id": connection.pk, "estimate": "0.40"}
        for i in range(10)
    ]
    results = processes.race(f"{__name__}.hold_and_release", calls, tmp_path / "go")
    assert max(Decimal(r["most_held"]) for r in results) <= Decimal("1.00"), results
    assert sum(r["granted"] for r in results) > 2  # reservations were released and granted again
    assert not Run.objects.filter(reserved_usd__gt=0).exists()


# -- no unpriced loophole ----------------------------------------------------------------------------------
def test_a_run_on_an_unpriced_model_is_refused_at_validate_with_how_to_price_it(catalog, alice):
    with fake_llm("openai") as server:
        provider_services.save_connection(
            actor=None,
            ip=None,
            provider="openai_compatible",
            label="Local",
            api_base=server.base_url,
            allow_private_network=True,
        )
        run = run_now(catalog.latest_version, alice, Mode.VALIDATE, models=["openai_compatible/llama3.2"])
        assert run.status == Status.STOPPED
        assert "no known price" in run.reason and "Model prices" in run.reason and "allow unpriced" in run.reason
        steps = [r for r in server.requests if r["body"].get("max_tokens") != 1]
        assert not steps  # nothing but the connection check
        ProviderConnection.objects.update(allow_unpriced=True)  # an operator's explicit choice
        allowed = run_now(catalog.latest_version, alice, models=["openai_compatible/llama3.2"])
    assert allowed.status == Status.SUCCEEDED, allowed.reason
    assert allowed.cost_unpriced and money.format_usd(allowed.cost_usd, unpriced=True) == "unpriced"


def test_an_unpriced_fallback_is_not_a_way_round_the_dollar_budget(catalog, alice):
    with fake_llm("openai") as priced, fake_llm("openai") as unpriced:
        connect(priced)
        provider_services.save_connection(
            actor=None, ip=None, provider="openai_compatible", label="Local", api_base=unpriced.base_url,
            allow_private_network=True,
        )  # fmt: skip
        priced.push({}, {"status": 400, "message": "refused"})  # the check passes, the first step is refused
        run = run_now(catalog.latest_version, alice, models=[MODEL, "openai_compatible/llama3.2"])
        assert run.status == Status.FAILED and not unpriced.requests  # the unpriced fallback was never asked
        ProviderConnection.objects.filter(provider="openai_compatible").update(allow_unpriced=True)
        priced.push({"status": 400, "message": "refused"})
        allowed = run_now(catalog.latest_version, alice, models=[MODEL, "openai_compatible/llama3.2"])
    assert allowed.status == Status.SUCCEEDED and allowed.cost_unpriced and unpriced.requests  # the operator's choice


def test_the_offline_model_stays_free_and_labelled(catalog, alice):
    run = run_now(catalog.latest_version, alice)
    assert run.status == Status.SUCCEEDED and run.model_used.startswith("offline/")
    assert money.format_usd(run.cost_usd, offline=True) == "free"


def test_the_models_offered_by_default_are_priced(db):
    offered = {
        f"{provider}/{model}"
        for provider, info in registry.PROVIDERS.items()
        if provider not in (Provider.OFFLINE, Provider.OPENAI_COMPATIBLE)
        for model in info.models
    }
    for path in sorted(settings.WORKFLOWS_DIR.glob("*.yaml")):
        offered.update(yaml.safe_load(path.read_text())["models"])
    connection = ProviderConnection(provider="openai", label="x", pk=1)
    free = (f"{Provider.OFFLINE}/", f"{Provider.OPENAI_COMPATIBLE}/")  # free, or priced by an operator
    unpriced = [
        name
        for name in sorted(offered)
        if not name.startswith(free) and money.price_of(target_for(name, connection)) is None
    ]
    assert not unpriced, f"offered by default but not priced by the bundled map: {unpriced}"


def test_prices_estimates_and_budgets_are_one_typed_module():
    from providers import pricing
    from runs import budgets, costs

    assert pricing.price_of is money.price_of and costs.upper_estimate is money.upper_estimate
    assert budgets.refusal is money.reserve and costs.estimate is money.estimate
    assert money.worst_next_call(
        target_for("offline/demo", None), llm.Price(Decimal("0.000001"), Decimal("0.000002")), [], None, 10
    ) == Decimal("0.00002")
