"""Every kind of provider failure, for every provider family, against a stand-in server that produces it.

Students read `message` (a category in plain words); operators read `detail` (a short redacted excerpt).
"""

from __future__ import annotations

import re

import pytest

from providers import llm
from providers.resolution import Target

from .support.fake_llm import fake_llm, refused_base_url, tls_mismatch_base_url, unresolvable_base_url

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"
FAMILIES = {
    # provider: (fake flavour, model as users name it, model as LiteLLM names it)
    "openai": ("openai", "openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    "anthropic": ("anthropic", "anthropic/claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku-latest"),
    "gemini": ("gemini", "gemini/gemini-2.0-flash", "gemini/gemini-2.0-flash"),
    "deepseek": ("openai", "deepseek/deepseek-chat", "deepseek/deepseek-chat"),
    "openai_compatible": ("openai", "openai_compatible/llama3.2", "openai/llama3.2"),
}
NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Google Gemini",
    "deepseek": "DeepSeek",
    "openai_compatible": "The OpenAI-compatible server",
}
# What the server says in its error body: a student must never see it.
BODY = f"upstream says: your key {KEY} is on the naughty list"
LIBRARY_WORDS = re.compile(r"litellm|Exception|[A-Z]\w+Error|httpx|openai\.|Errno|_ssl\.c", re.IGNORECASE)

# kind: (script entry or a base-URL fault, expected kind, words the sentence must hold, retryable)
FAULTS = {
    "refused": ("refused", "unreachable", "refused the connection", True),
    "dns": ("dns", "dns", "does not resolve", False),
    "tls": ("tls", "tls", "secure connection", False),
    "timeout": ({"delay": 2.5}, "timeout", "did not answer in time", True),
    "dropped": ({"drop": True}, "unreachable", "closed the connection", True),
    "malformed": ({"malformed": True}, "malformed", "not valid JSON", True),
    "truncated": ({"truncated": True}, "malformed", "not valid JSON", True),
    "400": ({"status": 400, "message": BODY}, "bad_request", "refused the request (HTTP 400)", False),
    "401": ({"status": 401, "message": BODY}, "auth", "rejected the API key", False),
    "403": ({"status": 403, "message": BODY}, "forbidden", "refused the request (HTTP 403)", False),
    "404": ({"status": 404, "message": BODY}, "unknown_model", "does not know the model", False),
    "429": ({"status": 429, "message": BODY, "headers": {"Retry-After": "7"}}, "rate_limit", "HTTP 429", True),
    "500": ({"status": 500, "message": BODY}, "server", "server error (HTTP 500)", True),
    "503": ({"status": 503, "message": BODY}, "server", "server error (HTTP 503)", True),
}


def _target(provider: str, base: str) -> Target:
    _, model, litellm_model = FAMILIES[provider]
    return Target(model=model, provider=provider, litellm_model=litellm_model, api_key=KEY, api_base=base)


def _base(flavour: str, server) -> str:
    return server.base_url if flavour != "gemini" else server.base_url + "/v1beta"


@pytest.fixture(scope="module")
def servers():
    with fake_llm("openai") as openai, fake_llm("anthropic") as anthropic, fake_llm("gemini") as gemini:
        yield {"openai": openai, "anthropic": anthropic, "gemini": gemini}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("provider", FAMILIES)
def test_each_failure_reads_as_the_right_plain_sentence(servers, provider, fault):
    flavour = FAMILIES[provider][0]
    entry, kind, words, retryable = FAULTS[fault]
    server = servers[flavour]
    server.script.clear()
    path = "" if flavour == "anthropic" else "/v1"
    base = {
        "refused": lambda: refused_base_url(path),
        "dns": lambda: unresolvable_base_url(path),
        "tls": lambda: tls_mismatch_base_url(server),
    }.get(entry if isinstance(entry, str) else "", lambda: _base(flavour, server))()
    if isinstance(entry, dict):
        server.push(entry)
    with pytest.raises(llm.ProviderError) as raised:
        llm.complete(_target(provider, base), [{"role": "user", "content": "Hi"}], max_tokens=5, timeout=1)
    error = raised.value
    assert (error.kind, error.retryable) == (kind, retryable), error.message
    assert words in error.message
    assert error.message.startswith(NAMES[provider])
    assert not LIBRARY_WORDS.search(error.message), error.message
    assert "naughty" not in error.message and KEY[-6:] not in error.message
    assert KEY[-6:] not in error.detail


@pytest.mark.parametrize("provider", FAMILIES)
def test_operators_get_a_short_redacted_excerpt_of_what_the_provider_said(provider):
    flavour = FAMILIES[provider][0]
    with fake_llm(flavour) as server:
        server.push({"status": 403, "message": BODY})
        with pytest.raises(llm.ProviderError) as raised:
            llm.complete(
                _target(provider, _base(flavour, server)), [{"role": "user", "content": "Hi"}], max_tokens=5, timeout=5
            )
    detail = raised.value.detail
    assert "naughty list" in detail
    assert KEY not in detail and KEY[-4:] not in detail
    assert "litellm" not in detail.lower()
    assert len(detail) <= 160


def test_a_rate_limit_keeps_the_wait_the_provider_asked_for():
    with fake_llm("openai") as server:
        server.push({"status": 429, "headers": {"Retry-After": "7"}})
        with pytest.raises(llm.ProviderError) as raised:
            llm.complete(
                _target("openai", server.base_url), [{"role": "user", "content": "Hi"}], max_tokens=5, timeout=5
            )
    assert raised.value.retry_after == 7.0


def test_a_404_names_the_model_that_was_asked_for_not_a_default():
    with fake_llm("openai") as server:
        server.push({"status": 404})
        target = Target(
            model="openai_compatible/qwen2.5",
            provider="openai_compatible",
            litellm_model="openai/qwen2.5",
            api_key="not-needed",
            api_base=server.base_url,
        )
        with pytest.raises(llm.ProviderError) as raised:
            llm.complete(target, [{"role": "user", "content": "Hi"}], max_tokens=5, timeout=5)
    assert "openai_compatible/qwen2.5" in raised.value.message
    assert "default" not in raised.value.message


@pytest.mark.django_db
def test_a_student_sees_the_category_and_the_trace_keeps_the_providers_words_redacted(catalog, alice):
    import json as jsonlib

    from providers.models import ProviderConnection
    from runs import pipeline, services

    with fake_llm("openai") as server:
        connection = ProviderConnection(
            provider="openai_compatible",
            label="Lab",
            api_base=server.base_url,
            allow_private_network=True,
            allow_unpriced=True,
        )
        connection.set_key(KEY)
        connection.save()
        server.push({}, {"status": 403, "message": BODY})  # the connection check passes, the step is refused
        run = services.start_run(
            workflow_version=catalog.latest_version, user=alice, inputs={}, mode="test", queue=False
        )
        pipeline.execute(run.pk)
    run.refresh_from_db()
    assert run.reason == (
        "The OpenAI-compatible server refused the request (HTTP 403): the key may not be allowed to do this."
    )
    with run.artifacts.get(name="trace.json").file.open("rb") as handle:
        trace = handle.read().decode()
    attempts = [a for step in jsonlib.loads(trace)["steps"] for c in step["calls"] for a in c["attempts"]]
    assert attempts[0]["status"] == "forbidden"
    assert "naughty list" in attempts[0]["detail"]
    assert KEY not in trace and KEY[-8:] not in trace
