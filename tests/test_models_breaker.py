"""The per-connection circuit breaker: it opens only on a sustained failure ratio, half-opens with one probe,
and every worker process shares it (docs/runs.md "Provider faults")."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from providers import breaker, llm, resilience
from providers.errors import ProviderError, to_provider_error
from providers.models import ProviderConnection
from providers.resolution import Target

from .support.processes import ROOT, subprocess_env

MESSAGES = [{"role": "user", "content": "Hello"}]
DOWN = ProviderError("down", kind="server", retryable=True)


def _target(connection: ProviderConnection, server=None, provider: str = "openai") -> Target:
    model = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest"
    return Target(
        model=f"{provider}/{model}",
        provider=provider,
        litellm_model=f"{provider}/{model}",
        api_key="sk-test-" + "k" * 30,
        api_base=server.base_url if server else "",
        connection_id=connection.pk,
    )


def _call(targets, deadline: float = 60):
    attempts: list[dict] = []
    _, target = resilience.call(
        targets,
        MESSAGES,
        on_attempt=attempts.append,
        prices={},
        control=llm.CallControl(deadline=time.monotonic() + deadline),
        max_tokens=20,
        timeout=5,
    )
    return target, attempts


def _outcomes(target: Target, failures: int, successes: int) -> None:
    for _ in range(failures):
        breaker.record(target, DOWN)
    for _ in range(successes):
        breaker.record(target, None)


@pytest.fixture(autouse=True)
def _breaker_settings(settings):
    # Sync on every call (deterministic); the documented thresholds otherwise.
    settings.BREAKER_SYNC_SECONDS = 0
    settings.BREAKER_MIN_CALLS = 20
    settings.BREAKER_FAILURE_RATIO = 0.5
    settings.BREAKER_WINDOW_SECONDS = 30
    settings.BREAKER_OPEN_SECONDS = 15
    settings.PROVIDER_ATTEMPTS = 3
    breaker.reset_local()
    yield
    breaker.reset_local()


@pytest.fixture
def connections(db):
    return (
        ProviderConnection.objects.create(provider="openai", label="Primary"),
        ProviderConnection.objects.create(provider="anthropic", label="Fallback"),
    )


def test_a_burst_of_failures_among_many_successes_never_opens_it(connections):
    # The incident: 4 errors in 2 s while ~40 calls succeeded opened the old breaker for every run.
    target = _target(connections[0])
    _outcomes(target, failures=0, successes=40)
    _outcomes(target, failures=4, successes=0)
    assert breaker.state_for(connections[0]).state == "closed"
    assert breaker.admit(target)[0] == breaker.Gate.CLOSED


def test_it_opens_when_half_of_twenty_calls_fail(connections):
    target = _target(connections[0])
    _outcomes(target, failures=9, successes=10)
    assert breaker.state_for(connections[0]).state == "closed"  # 19 calls: below the minimum volume
    _outcomes(target, failures=1, successes=0)
    state = breaker.state_for(connections[0])
    assert state.state == "open" and state.open_until is not None
    assert breaker.admit(target)[0] == breaker.Gate.OPEN


def test_fewer_calls_than_the_minimum_never_open_it_even_all_failing(connections):
    target = _target(connections[0])
    _outcomes(target, failures=19, successes=0)
    assert breaker.state_for(connections[0]).state == "closed"


def test_rate_limits_wrong_requests_cancels_and_our_shutdown_never_count(connections):
    target = _target(connections[0])
    for kind in ("rate_limit", "auth", "bad_request", "unknown_model", "forbidden", "aborted", "quota"):
        for _ in range(25):
            breaker.record(target, ProviderError("no", kind=kind, retryable=kind == "rate_limit"))
    assert breaker.state_for(connections[0]).calls == 0
    assert breaker.state_for(connections[0]).state == "closed"


def test_our_own_shutdown_is_an_aborted_call_not_a_provider_failure():
    target = Target(model="openai/x", provider="openai", litellm_model="openai/x")
    try:
        try:
            raise RuntimeError("cannot schedule new futures after shutdown")
        except RuntimeError as inner:
            raise Exception("APIConnectionError: Connection error.") from inner
    except Exception as exc:
        error = to_provider_error(exc, target)
    assert error.kind == "aborted" and not breaker.counts(error) and not error.retryable


def test_failures_older_than_the_window_no_longer_count(connections, monkeypatch):
    target = _target(connections[0])
    clock = [1_000_000.0]
    monkeypatch.setattr(breaker, "now", lambda: clock[0])
    _outcomes(target, failures=15, successes=0)
    clock[0] += 35  # past the 30 s window
    _outcomes(target, failures=5, successes=0)
    state = breaker.state_for(connections[0])
    assert (state.state, state.failures) == ("closed", 5)


def test_after_its_pause_exactly_one_probe_goes_through_and_a_success_closes_it(connections, monkeypatch):
    target = _target(connections[0])
    clock = [2_000_000.0]
    monkeypatch.setattr(breaker, "now", lambda: clock[0])
    _outcomes(target, failures=20, successes=0)
    assert breaker.admit(target)[0] == breaker.Gate.OPEN
    clock[0] += 16
    assert breaker.state_for(connections[0]).state == "half_open"
    assert breaker.admit(target)[0] == breaker.Gate.PROBE
    breaker.reset_local()  # another worker process asks meanwhile: it must not probe too
    assert breaker.admit(target)[0] == breaker.Gate.OPEN
    breaker.record(target, None, probe=True)
    assert breaker.state_for(connections[0]).state == "closed"
    breaker.reset_local()
    assert breaker.admit(target)[0] == breaker.Gate.CLOSED


def test_a_failed_probe_opens_it_again_and_a_rate_limited_probe_lets_another_try(connections, monkeypatch):
    target = _target(connections[0])
    clock = [3_000_000.0]
    monkeypatch.setattr(breaker, "now", lambda: clock[0])
    _outcomes(target, failures=20, successes=0)
    clock[0] += 16
    assert breaker.admit(target)[0] == breaker.Gate.PROBE
    breaker.record(target, ProviderError("busy", kind="rate_limit", retryable=True), probe=True)
    assert breaker.admit(target)[0] == breaker.Gate.PROBE  # the 429 said nothing: another probe may go
    breaker.record(target, DOWN, probe=True)
    assert breaker.state_for(connections[0]).state == "open"
    assert breaker.admit(target)[0] == breaker.Gate.OPEN


def test_a_provider_that_keeps_failing_is_skipped_straight_to_the_fallback(connections, settings, fake_server):
    settings.BREAKER_MIN_CALLS = 3
    primary, fallback = fake_server("openai"), fake_server("anthropic")
    primary.push(*[{"status": 500}] * 3)
    targets = [_target(connections[0], primary), _target(connections[1], fallback, "anthropic")]
    used, attempts = _call(targets)
    assert used.provider == "anthropic"
    assert [a["status"] for a in attempts] == ["server", "server", "server", "ok"]
    # The next step (or another run) does not pay three failures and their backoff again.
    used, attempts = _call(targets)
    assert used.provider == "anthropic"
    assert [a["status"] for a in attempts] == ["breaker_open", "ok"]
    assert len(primary.requests) == 3


def test_a_run_whose_only_model_is_paused_waits_for_the_probe_instead_of_failing(connections, settings, fake_server):
    settings.BREAKER_OPEN_SECONDS = 1.5
    server = fake_server("openai")
    target = _target(connections[0], server)
    _outcomes(target, failures=20, successes=0)
    started = time.monotonic()
    used, attempts = _call([target])
    assert used is target and 1.0 <= time.monotonic() - started < 10
    assert [a["status"] for a in attempts] == ["breaker_open", "ok"]
    assert len(server.requests) == 1  # the probe alone
    assert breaker.state_for(connections[0]).state == "closed"


def test_a_paused_only_model_fails_at_once_when_the_probe_would_come_after_the_deadline(connections, fake_server):
    server = fake_server("openai")
    target = _target(connections[0], server)
    _outcomes(target, failures=20, successes=0)
    started = time.monotonic()
    with pytest.raises(llm.ProviderError, match="was skipped"):
        _call([target], deadline=5)  # the breaker stays open 15 s
    assert time.monotonic() - started < 2 and not server.requests


def test_counting_makes_no_query_per_call(connections, settings, django_assert_max_num_queries):
    settings.BREAKER_SYNC_SECONDS = 60
    target = _target(connections[0])
    breaker.admit(target)  # the first sync
    with django_assert_max_num_queries(0):
        for _ in range(50):
            assert breaker.admit(target)[0] == breaker.Gate.CLOSED
            breaker.record(target, None)


RECORD_FAILURES = """
from providers import breaker
from providers.errors import ProviderError
from providers.resolution import Target
target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id={pk})
for _ in range(2):
    breaker.record(target, ProviderError("down", kind="server", retryable=True))
"""


@pytest.mark.django_db(transaction=True)
def test_failures_seen_by_separate_worker_processes_add_up():
    connection = ProviderConnection.objects.create(provider="openai", label="Shared")
    code = RECORD_FAILURES.format(pk=connection.pk)
    env = subprocess_env(BREAKER_SYNC_SECONDS="0", BREAKER_MIN_CALLS="6")
    workers = [
        subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
    assert breaker.state_for(connection).state == "open"  # 6 failures, 2 from each process
    target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id=connection.pk)
    with pytest.raises(llm.ProviderError, match="was skipped"):
        resilience.call(
            [target], MESSAGES, on_attempt=lambda a: None, prices={}, max_tokens=5, timeout=1,
            control=llm.CallControl(deadline=time.monotonic() + 5),
        )  # fmt: skip
