"""The per-connection circuit breaker: a provider that keeps failing is skipped, for every worker process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from providers import breaker, llm, resilience
from providers.errors import ProviderError
from providers.models import CircuitBreaker, ProviderConnection
from providers.resolution import Target

from .support.fake_llm import fake_llm
from .support.processes import ROOT, subprocess_env

MESSAGES = [{"role": "user", "content": "Hello"}]


def _target(connection: ProviderConnection, server, provider: str = "openai") -> Target:
    model = "gpt-4o-mini" if provider == "openai" else "claude-3-5-haiku-latest"
    return Target(
        model=f"{provider}/{model}",
        provider=provider,
        litellm_model=f"{provider}/{model}",
        api_key="sk-test-" + "k" * 30,
        api_base=server.base_url,
        connection_id=connection.pk,
    )


def _call(targets):
    attempts: list[dict] = []
    _, target = resilience.call(
        targets,
        MESSAGES,
        on_attempt=attempts.append,
        prices={},
        control=llm.CallControl(deadline=time.monotonic() + 60),
        max_tokens=20,
        timeout=5,
    )
    return target, attempts


@pytest.fixture
def connections(db):
    return (
        ProviderConnection.objects.create(provider="openai", label="Primary"),
        ProviderConnection.objects.create(provider="anthropic", label="Fallback"),
    )


def test_a_provider_that_keeps_failing_is_skipped_straight_to_the_fallback(connections):
    with fake_llm("openai") as primary, fake_llm("anthropic") as fallback:
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


def test_requests_that_were_wrong_do_not_trip_it(connections):
    target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id=connections[0].pk)
    for kind in ("auth", "bad_request", "unknown_model", "rate_limit", "forbidden"):
        for _ in range(5):
            breaker.record(target, ProviderError("no", kind=kind, retryable=False))
    assert not breaker.is_open(target)


def test_a_success_starts_the_count_again(connections):
    target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id=connections[0].pk)
    down = ProviderError("down", kind="unreachable", retryable=True)
    breaker.record(target, down)
    breaker.record(target, down)
    breaker.record(target, None)
    breaker.record(target, down)
    assert not breaker.is_open(target)
    breaker.record(target, down)
    breaker.record(target, down)
    assert breaker.is_open(target)


def test_it_closes_again_after_its_pause(connections, settings):
    settings.BREAKER_OPEN_SECONDS = 0
    target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id=connections[0].pk)
    for _ in range(3):
        breaker.record(target, ProviderError("down", kind="timeout", retryable=True))
    assert CircuitBreaker.objects.get(pk=connections[0].pk).open_until is not None
    assert not breaker.is_open(target)


RECORD_ONE_FAILURE = """
from providers import breaker
from providers.errors import ProviderError
from providers.resolution import Target
target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id={pk})
breaker.record(target, ProviderError("down", kind="server", retryable=True))
"""


@pytest.mark.django_db(transaction=True)
def test_failures_seen_by_separate_worker_processes_add_up():
    connection = ProviderConnection.objects.create(provider="openai", label="Shared")
    code = RECORD_ONE_FAILURE.format(pk=connection.pk)
    workers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=subprocess_env(), stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err.decode()
    target = Target(model="openai/x", provider="openai", litellm_model="openai/x", connection_id=connection.pk)
    assert breaker.is_open(target)
    with pytest.raises(llm.ProviderError, match="was skipped"):
        resilience.call(
            [target], MESSAGES, on_attempt=lambda a: None, prices={}, max_tokens=5, timeout=1,
            control=llm.CallControl(deadline=time.monotonic() + 60),
        )  # fmt: skip
