"""The real LiteLLM path over real HTTP against fake provider servers: retries, faults, fallback."""

from __future__ import annotations

import json
import time

import pytest

from providers import llm, resilience
from providers.resolution import Target

from .support.fake_llm import fake_llm

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"
MESSAGES = [{"role": "user", "content": "Hello there"}]


def openai_target(server, key: str = KEY, model: str = "gpt-4o-mini") -> Target:
    return Target(
        model=f"openai/{model}",
        provider="openai",
        litellm_model=f"openai/{model}",
        api_key=key,
        api_base=server.base_url,
    )


def anthropic_target(server) -> Target:
    model = "claude-3-5-haiku-latest"
    return Target(
        model=f"anthropic/{model}",
        provider="anthropic",
        litellm_model=f"anthropic/{model}",
        api_key="sk-ant-" + "x" * 30,
        api_base=server.base_url,
    )


@pytest.fixture
def openai_server():
    with fake_llm("openai") as server:
        yield server


@pytest.fixture
def anthropic_server():
    with fake_llm("anthropic") as server:
        yield server


class RecordingControl(llm.CallControl):
    """A control whose pauses return at once and are recorded: backoff values are asserted, not slept."""

    def __init__(self, sleeps):
        super().__init__(deadline=time.monotonic() + 60)
        self.sleeps = sleeps

    def wait(self, seconds):
        self.sleeps.append(seconds)
        return False


def call(targets, sleeps=None, **kwargs):
    attempts: list[dict] = []
    result, target = resilience.call(
        targets,
        MESSAGES,
        on_attempt=attempts.append,
        prices={t.model: llm.map_price(t) for t in targets},
        control=RecordingControl(sleeps if sleeps is not None else []),
        max_tokens=50,
        timeout=kwargs.pop("timeout", 5),
        **kwargs,
    )
    return result, target, attempts


def test_a_call_reaches_the_server_with_the_key_and_is_priced(openai_server):
    result, _, attempts = call([openai_target(openai_server)])
    assert result.content == "Fake answer to: Hello there"
    assert (result.prompt_tokens, result.completion_tokens) == (100, 50)
    assert result.cost_usd is not None and result.cost_usd > 0
    request = openai_server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["body"]["max_tokens"] == 50
    assert [a["status"] for a in attempts] == ["ok"]


def test_429s_are_retried_honouring_retry_after(openai_server):
    openai_server.push(
        {"status": 429, "headers": {"Retry-After": "2"}}, {"status": 429, "headers": {"Retry-After": "3"}}
    )
    sleeps: list[float] = []
    result, _, attempts = call([openai_target(openai_server)], sleeps)
    assert result.content.startswith("Fake answer")
    assert [a["status"] for a in attempts] == ["rate_limit", "rate_limit", "ok"]
    assert sleeps == [2.0, 3.0]
    assert len(openai_server.requests) == 3  # one retry loop: neither LiteLLM nor the SDK retried on its own


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"status": 500}, "server"),
        ({"status": 503}, "server"),
        ({"drop": True}, "unreachable"),
        ({"malformed": True}, None),
    ],
)
def test_transient_faults_are_retried_then_succeed(openai_server, fault, kind):
    openai_server.push(fault)
    result, _, attempts = call([openai_target(openai_server)])
    assert result.content.startswith("Fake answer")
    assert len(attempts) == 2 and attempts[-1]["status"] == "ok"
    if kind:
        assert attempts[0]["status"] == kind


def test_a_slow_answer_past_the_timeout_is_a_timeout(openai_server):
    openai_server.push(*[{"delay": 3}] * resilience.attempts())
    with pytest.raises(llm.ProviderError) as err:
        call([openai_target(openai_server)], timeout=1)
    assert err.value.kind == "timeout"


def test_a_bad_key_is_not_retried_and_never_echoed(openai_server):
    openai_server.push({"status": 401, "message": f"Incorrect API key provided: {KEY}"})
    with pytest.raises(llm.ProviderError) as err:
        call([openai_target(openai_server)])
    assert err.value.kind == "auth"
    assert KEY not in err.value.message and KEY[-12:] not in err.value.message
    assert len(openai_server.requests) == 1


def test_an_unknown_model_is_said_plainly(openai_server):
    openai_server.push({"status": 404, "message": "The model does not exist"})
    with pytest.raises(llm.ProviderError, match="does not know the model openai/gpt-4o-mini"):
        call([openai_target(openai_server)])


def test_a_failing_provider_falls_back_to_the_next_one(openai_server, anthropic_server):
    tries = resilience.attempts()
    openai_server.push(*[{"status": 500}] * tries)
    result, target, attempts = call([openai_target(openai_server), anthropic_target(anthropic_server)])
    assert target.provider == "anthropic"
    assert result.content.startswith("Fake Claude answer")
    assert [(a["provider"], a["status"]) for a in attempts] == [("openai", "server")] * tries + [("anthropic", "ok")]
    assert anthropic_server.requests[0]["path"] == "/v1/messages"


def test_tool_calls_come_back_from_both_protocols(openai_server, anthropic_server):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "read_reference",
                "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
            },
        }
    ]
    for server, target in (
        (openai_server, openai_target(openai_server)),
        (anthropic_server, anthropic_target(anthropic_server)),
    ):
        server.push({"tool_call": {"name": "read_reference", "arguments": {"path": "references/a.md"}}})
        result, _, _ = call([target], tools=tools)
        assert [(c.name, json.loads(c.arguments)) for c in result.tool_calls] == [
            ("read_reference", {"path": "references/a.md"})
        ]


def test_the_fake_server_streams_through_the_real_litellm_path(openai_server):
    openai_server.push({"content": "one two three"})
    target = openai_target(openai_server)
    chunks = llm.lib().completion(
        model=target.litellm_model,
        messages=MESSAGES,
        api_key=target.api_key,
        api_base=target.api_base,
        stream=True,
        max_retries=0,
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == "one two three" and len(pieces) == 3
