"""Validation's connection check: one call per connection however many runs validate at once, cancellable in
every state, paid by the platform (providers/checks.py, docs/runs.md "Provider faults")."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection as db_connection

from providers import llm
from providers import services as provider_services
from providers.checks import check_reachable
from providers.models import ModelPrice, ProviderConnection
from providers.resolution import target_for
from runs import pipeline, services
from runs.models import Mode, Status


def _connection(server) -> ProviderConnection:
    return provider_services.save_connection(
        actor=None, ip=None, provider="openai", label="Fresh", api_key="sk-check-0123456789abcdefghij",
        api_base=server.base_url, allow_private_network=True,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _warm() -> None:
    llm.lib()  # LiteLLM loaded, as a worker's warm-up does: the deadlines below time the check, not the import


def _in_threads(count: int, work) -> list:
    """Run `work(i)` in `count` threads at once, each on its own database connection; results in order."""
    results: list = [None] * count
    go = threading.Barrier(count)

    def one(i: int) -> None:
        try:
            go.wait()
            results[i] = work(i)
        except BaseException as exc:  # surfaced by the caller
            results[i] = exc
        finally:
            db_connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_runs_validating_at_once_on_a_fresh_connection_make_one_check_call(fake_server):
    server = fake_server()
    server.push({"delay": 1})  # the check takes a second: everyone else arrives while it is in flight
    conn = _connection(server)
    target = target_for("openai/gpt-4o-mini", conn)
    outcomes = _in_threads(8, lambda i: check_reachable(target, llm.CallControl(deadline=time.monotonic() + 30)))
    assert all(not isinstance(o, BaseException) and o.usable for o in outcomes), outcomes
    assert len(server.requests) == 1
    assert sum(o.result is not None for o in outcomes) == 1  # one run made it; the others read its answer
    conn.refresh_from_db()
    assert conn.checking_until is None and conn.status == "connected"


@pytest.mark.django_db(transaction=True)
def test_a_cancel_ends_a_fresh_connections_first_check_and_the_runs_waiting_for_it_within_2_s(fake_server):
    server = fake_server()
    server.push({"hang": True})
    conn = _connection(server)
    target = target_for("openai/gpt-4o-mini", conn)
    stop = threading.Event()
    ended: list[float] = [0.0] * 3

    def check(i: int):
        try:
            return check_reachable(target, llm.CallControl(stop=stop, deadline=time.monotonic() + 60))
        finally:
            ended[i] = time.monotonic()

    cancelled_at: list[float] = []
    timer = threading.Timer(1.5, lambda: (cancelled_at.append(time.monotonic()), stop.set()))
    timer.start()
    outcomes = _in_threads(3, check)
    assert all(isinstance(o, llm.Interrupted) and o.why == "cancelled" for o in outcomes), outcomes
    assert max(ended) - cancelled_at[0] <= 2
    assert len(server.requests) == 1  # the holder's call; the waiters never made their own
    conn.refresh_from_db()
    assert conn.checking_until is None  # released: the next run checks at once


@pytest.mark.django_db(transaction=True)
def test_a_run_cancelled_during_its_connection_check_is_cancelled_within_2_s(catalog, alice, fake_server):
    server = fake_server()
    server.push({"hang": True})
    _connection(server)
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False,
        models=["openai/gpt-4o-mini"],
    )  # fmt: skip
    worker = threading.Thread(target=lambda: (pipeline.execute(run.pk), db_connection.close()))
    worker.start()
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    asked = time.monotonic()
    services.request_cancel(run)
    worker.join(10)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and time.monotonic() - asked <= 2, run.reason


@pytest.mark.django_db
def test_the_check_is_paid_once_by_the_platform_and_the_trace_says_so(catalog, alice, fake_server):
    server = fake_server()
    conn = _connection(server)
    ModelPrice.objects.create(model="openai/gpt-4o-mini", input_per_million=1, output_per_million=2)
    run = services.start_run(
        workflow_version=catalog.latest_version, user=alice, inputs={}, mode=Mode.TEST, queue=False,
        models=["openai/gpt-4o-mini"],
    )  # fmt: skip
    pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.reason
    steps = len(server.requests) - 1
    assert run.cost_usd == steps * Decimal("0.0002")  # 100 in at $1/M + 50 out at $2/M per step call
    conn.refresh_from_db()
    assert conn.platform_cost_usd == Decimal("0.0002")
    with run.artifacts.get(name="trace.json").file.open("rb") as handle:
        trace = handle.read().decode()
    assert '"paid_by": "platform"' in trace and "not charged to this run" in trace
