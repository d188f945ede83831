"""Each provider family answers through its own API shape; ANTHROPIC_API_BASE works with or without /v1."""

from __future__ import annotations

import pytest

from providers import llm
from providers.models import ProviderConnection
from providers.resolution import target_for
from providers.services import import_environment

from .support.fake_llm import fake_llm

pytestmark = pytest.mark.django_db

FAMILIES = [
    # provider, fake flavour, model, the path the provider's API shape uses
    ("openai", "openai", "openai/gpt-4o-mini", "/v1/chat/completions"),
    ("deepseek", "openai", "deepseek/deepseek-chat", "/v1/chat/completions"),
    ("openai_compatible", "openai", "openai_compatible/llama3.2", "/v1/chat/completions"),
    ("anthropic", "anthropic", "anthropic/claude-3-5-haiku-latest", "/v1/messages"),
    ("gemini", "gemini", "gemini/gemini-2.0-flash", "/v1beta/models/gemini-2.0-flash:generateContent"),
]


@pytest.mark.parametrize(("provider", "flavour", "model", "path"), FAMILIES)
def test_each_family_is_called_through_its_own_api_and_counts_tokens(provider, flavour, model, path):
    with fake_llm(flavour) as server:
        base = server.base_url + ("/v1beta" if flavour == "gemini" else "")
        connection = ProviderConnection(
            provider=provider, label="x", api_base=base, allow_private_network=True, default_model=model
        )
        connection.set_key("sk-test-" + "w" * 30)
        connection.save()
        result = llm.complete(
            target_for(model, connection), [{"role": "user", "content": "Hi"}], max_tokens=9, timeout=5
        )
    assert result.content.startswith("Fake")
    assert (result.prompt_tokens, result.completion_tokens) == (100, 50)
    assert server.requests[0]["path"].split("?")[0] == path


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/messages"])
def test_anthropic_api_base_reaches_v1_messages_with_or_without_v1(suffix):
    with fake_llm("anthropic") as server:
        environ = {"ANTHROPIC_API_KEY": "sk-ant-" + "a" * 30, "ANTHROPIC_API_BASE": server.base_url + suffix}
        (connection,) = import_environment(environ)
        target = target_for("anthropic/claude-3-5-haiku-latest", connection)
        llm.complete(target, [{"role": "user", "content": "Hi"}], max_tokens=5, timeout=5)
    assert [r["path"] for r in server.requests] == ["/v1/messages"]
