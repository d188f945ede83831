"""Per-attempt time limits over real HTTP through LiteLLM: a provider that hangs costs one attempt, not the run
(docs/runs.md "Provider faults")."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from providers import llm, resilience
from providers.resolution import Target

MESSAGES = [{"role": "user", "content": "Hello there"}]


def _target(base_url: str) -> Target:
    return Target(
        model="openai/gpt-4o-mini",
        provider="openai",
        litellm_model="openai/gpt-4o-mini",
        api_key="sk-test-" + "t" * 30,
        api_base=base_url,
    )


def _call(target: Target, deadline: float = 60):
    attempts: list[dict] = []
    cut: list[llm.LLMResult] = []
    started = time.monotonic()
    result, _ = resilience.call(
        [target],
        MESSAGES,
        on_attempt=attempts.append,
        on_cut_short=lambda partial, target: cut.append(partial),
        prices={},
        control=llm.CallControl(deadline=time.monotonic() + deadline),
        max_tokens=50,
        timeout=60,  # the client's own read timeout is far longer: only our limits can end these attempts
    )
    return result, [a["status"] for a in attempts], cut, time.monotonic() - started


@pytest.fixture
def limits(settings, fake_server):
    # A first call loads LiteLLM's lazy modules, as a worker's warm-up does: the limits then time the provider.
    warm = fake_server()
    _call(_target(warm.base_url))
    settings.PROVIDER_CONNECT_SECONDS = 1
    settings.PROVIDER_FIRST_BYTE_SECONDS = 1.5
    settings.PROVIDER_IDLE_SECONDS = 1
    settings.PROVIDER_ATTEMPTS = 3
    return settings


def test_a_provider_that_accepts_and_never_answers_costs_one_attempt(limits, fake_server):
    server = fake_server()
    server.push({"hang": True})
    result, statuses, _, elapsed = _call(_target(server.base_url))
    assert result.content.startswith("Fake answer")
    assert statuses == ["timeout", "ok"]
    assert elapsed < 1.5 + 1 + 3  # the first-byte limit, one backoff, the answer


def test_a_stream_that_goes_silent_mid_answer_costs_one_attempt_and_its_part_is_counted(limits, fake_server):
    server = fake_server()
    server.push({"stall_after": 2, "content": "one two three four five six"})
    _result, statuses, cut, elapsed = _call(_target(server.base_url))
    assert statuses == ["timeout", "ok"]
    assert len(cut) == 1 and cut[0].content == "one two"  # the words streamed before the silence
    assert elapsed < 1 + 1 + 3


def test_headers_without_a_first_chunk_are_held_to_the_first_byte_limit(limits, fake_server):
    server = fake_server()
    server.push({"stall_after": 0})
    _, statuses, cut, elapsed = _call(_target(server.base_url))
    assert statuses == ["timeout", "ok"] and not cut
    assert elapsed < 1.5 + 1 + 3


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose listen queue is full: a new connection is never set up (its SYN is dropped)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.2)
    yield port
    for sock in [*fillers, server]:
        sock.close()


def test_a_connection_that_is_never_set_up_is_cut_at_the_connect_limit(limits, unanswered_port):
    limits.PROVIDER_FIRST_BYTE_SECONDS = 30  # so only the connect limit can end these attempts early
    started = time.monotonic()
    with pytest.raises(llm.ProviderError) as err:
        _call(_target(f"http://127.0.0.1:{unanswered_port}/v1"))
    assert err.value.kind == "timeout"
    # three attempts of 1 s each with their backoff, not three of the 60 s client timeout
    assert time.monotonic() - started < 3 * 1 + 3 + 3


def test_no_attempt_outlives_the_runs_deadline(settings, fake_server):
    settings.PROVIDER_FIRST_BYTE_SECONDS = 60
    server = fake_server()
    server.push({"hang": True})
    started = time.monotonic()
    with pytest.raises(llm.Interrupted) as cut:
        _call(_target(server.base_url), deadline=2)
    assert cut.value.why == "deadline" and time.monotonic() - started < 3.5
