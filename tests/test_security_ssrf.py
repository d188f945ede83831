"""SSRF through provider base URLs, attacked for real: a provider that redirects to this host or to
metadata, IPv6 forms that wrap forbidden IPv4 addresses, and a DNS answer that changes after the check.
Calls go over real HTTP through LiteLLM (sync and async streaming, OpenAI- and Anthropic-shaped)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from providers import llm, services
from providers.models import ConnectionStatus, ProviderConnection
from providers.resolution import target_for
from providers.ssrf import UnsafeURL, check_base_url

from .support.fake_llm import ConnectionCounter, fake_llm

pytestmark = pytest.mark.django_db

KEY = "sk-redirect-test-0123456789abcdefghij"


def teredo(client: str) -> str:
    """A Teredo address whose (obfuscated) client is the given IPv4 address."""
    server = int(ipaddress.IPv4Address("192.0.2.1"))
    hidden = ~int(ipaddress.IPv4Address(client)) & 0xFFFFFFFF
    return str(ipaddress.IPv6Address((0x20010000 << 96) | (server << 64) | hidden))


@pytest.mark.parametrize(
    "host, allow, problem",
    [
        ("[2002:a9fe:a9fe::1]", True, "never allowed"),  # 6to4 around 169.254.169.254
        ("[2002:a00:1::1]", False, "private or loopback"),  # 6to4 around 10.0.0.1
        (f"[{teredo('169.254.169.254')}]", True, "never allowed"),
        (f"[{teredo('10.1.2.3')}]", False, "private or loopback"),
        ("[64:ff9b::a9fe:a9fe]", True, "never allowed"),  # NAT64 around metadata
        ("[64:ff9b::7f00:1]", False, "private or loopback"),  # NAT64 around 127.0.0.1
        ("[::ffff:169.254.169.254]", True, "never allowed"),
        ("100.64.0.1", False, "private or loopback"),  # carrier-grade NAT
        ("100.100.100.200", True, "never allowed"),  # Alibaba metadata, inside 100.64/10
        ("0.0.0.0", True, "cannot be a provider"),  # noqa: S104 - the attack's own address
        ("[::]", True, "cannot be a provider"),
        ("[::1]", False, "private or loopback"),
    ],
)
def test_the_guard_refuses_addresses_that_wrap_or_hide_forbidden_ones(host, allow, problem):
    with pytest.raises(UnsafeURL, match=problem):
        check_base_url(f"http://{host}:8080/v1", allow_private=allow)


@pytest.mark.parametrize("host", ["[::1]", "100.64.0.1", "[2002:a00:1::1]", "[64:ff9b::7f00:1]"])
def test_the_guard_accepts_loopback_and_private_forms_when_the_operator_allows_them(host):
    assert check_base_url(f"http://{host}:11434/v1", allow_private=True)


@pytest.mark.parametrize("host", ["[2002:5db8:d822::1]", "[64:ff9b::5db8:d822]", "93.184.216.34"])
def test_the_guard_accepts_public_addresses_in_any_form(host):
    assert check_base_url(f"http://{host}/v1", allow_private=False)


def connection_to(server: Any, provider: str, allow_private: bool = True) -> ProviderConnection:
    return services.save_connection(
        actor=None,
        ip=None,
        provider=provider,
        label="Stand-in",
        api_key=KEY,
        api_base=server.base_url,
        default_model=f"{provider}/stand-in-model",
        allow_private_network=allow_private,
    )


REDIRECT_TARGETS = ["http://0.0.0.0:{port}/v1/chat/completions", "http://127.0.0.1:{port}/v1/chat/completions"]


@pytest.mark.parametrize("target_url", REDIRECT_TARGETS)
@pytest.mark.parametrize("provider, flavour", [("openai_compatible", "openai"), ("anthropic", "anthropic")])
def test_the_connection_check_never_follows_a_redirect(provider, flavour, target_url):
    with fake_llm(flavour) as server, ConnectionCounter() as target:
        connection = connection_to(server, provider)
        server.push({"redirect": target_url.format(port=target.port)})
        ok, _ = services.test_connection(connection, actor=None, ip=None)
    assert target.connections == 0
    assert not ok and len(server.requests) >= 1
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.FAILED


async def _stream(target: Any) -> str:
    kwargs: dict[str, Any] = {
        "model": target.litellm_model,
        "messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 20,
        "timeout": 5,
        "num_retries": 0,
        "max_retries": 0,
        "stream": True,
        "api_key": target.api_key,
        "api_base": target.api_base,
    }
    # The engine's streaming path (litellm.acompletion(stream=True)), called as providers.llm calls it.
    response = await llm.lib().acompletion(**kwargs)
    parts = [chunk.choices[0].delta.content or "" async for chunk in response]
    return "".join(parts)


@pytest.mark.parametrize("target_url", REDIRECT_TARGETS)
@pytest.mark.parametrize("provider, flavour", [("openai", "openai"), ("anthropic", "anthropic")])
def test_a_streaming_call_never_follows_a_redirect(provider, flavour, target_url):
    with fake_llm(flavour) as server, ConnectionCounter() as target:
        connection = connection_to(server, provider)
        server.push(*[{"redirect": target_url.format(port=target.port)}] * 3)
        with pytest.raises(Exception):  # noqa: B017 - LiteLLM words it per provider; the count is the proof
            asyncio.run(_stream(target_for(connection.default_model, connection)))
    assert target.connections == 0 and len(server.requests) >= 1


def test_a_streaming_call_through_the_guard_still_works():
    with fake_llm("openai") as server:
        connection = connection_to(server, "openai")
        server.push({"content": "streamed through the guard"})
        text = asyncio.run(_stream(target_for(connection.default_model, connection)))
    assert text == "streamed through the guard"


def rebinding(monkeypatch: pytest.MonkeyPatch, name: str, answers: list[str]) -> None:
    """DNS for `name` answers each address in turn, then keeps giving the last one."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any = None, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_rebinds_to_loopback_after_the_check_is_never_connected(monkeypatch):
    llm.lib()
    with fake_llm("openai") as server:
        connection = ProviderConnection.objects.create(
            provider="openai_compatible",
            label="Rebinding",
            api_base=f"http://rebind.attacker.test:{server.port}/v1",
            default_model="openai_compatible/model",
        )
        rebinding(monkeypatch, "rebind.attacker.test", ["93.184.216.34", "127.0.0.1"])
        ok, _ = services.test_connection(connection, actor=None, ip=None)
    assert not ok and server.requests == []


def test_a_name_the_operator_allowed_to_be_private_connects_to_the_address_it_resolved_to(monkeypatch):
    llm.lib()
    with fake_llm("openai") as server:
        rebinding(monkeypatch, "ollama.lan.test", ["127.0.0.1"])
        connection = ProviderConnection.objects.create(
            provider="openai_compatible",
            label="Local",
            api_base=f"http://ollama.lan.test:{server.port}/v1",
            default_model="openai_compatible/model",
            allow_private_network=True,
        )
        ok, message = services.test_connection(connection, actor=None, ip=None)
    assert ok, message
    assert server.requests[0]["headers"]["Host"].startswith("ollama.lan.test")


def test_a_client_that_asked_not_to_follow_redirects_still_sees_the_redirect():
    import httpx

    llm.lib()  # the guard is installed for the whole process; the web tests' own clients must keep working
    with fake_llm("openai") as server:
        server.push({"redirect": "/elsewhere"})
        with httpx.Client(follow_redirects=False) as client:
            response = client.post(f"{server.base_url}/chat/completions", json={})
    assert response.status_code == 307 and response.headers["location"] == "/elsewhere"


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.google.internal./computeMetadata/v1/",
        "http://METADATA.Google.Internal/computeMetadata/v1/",
        "http://metadata.google.internal../",
        "http://Metadata./latest/",
        "http://instance-data.ec2.internal./latest/",
    ],
)
def test_metadata_names_are_refused_in_every_spelling(url):
    with pytest.raises(UnsafeURL, match="Cloud metadata addresses are never allowed"):
        check_base_url(url, allow_private=True)


@pytest.fixture
def proxy_environment(monkeypatch):
    """Every proxy variable pointing at a listener that only counts who connects: a proxy resolves names
    itself, so a call that went through it would have slipped past the connect-time guard."""
    with ConnectionCounter() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield proxy


def test_a_name_that_rebinds_to_loopback_is_never_connected_even_with_a_proxy_in_the_environment(
    monkeypatch, proxy_environment
):
    llm.lib()
    with fake_llm("openai") as server:
        connection = ProviderConnection.objects.create(
            provider="openai_compatible",
            label="Rebinding behind a proxy",
            api_base=f"http://rebind-proxy.attacker.test:{server.port}/v1",
            default_model="openai_compatible/model",
        )
        rebinding(monkeypatch, "rebind-proxy.attacker.test", ["93.184.216.34", "127.0.0.1"])
        ok, _ = services.test_connection(connection, actor=None, ip=None)
    assert not ok and server.requests == []
    assert proxy_environment.connections == 0


@pytest.mark.parametrize("streamed", [False, True])
def test_provider_calls_ignore_proxy_environment_variables(proxy_environment, streamed):
    with fake_llm("openai") as server:
        connection = connection_to(server, "openai")
        target = target_for(connection.default_model, connection)
        if streamed:
            server.push({"content": "straight to the provider"})
            assert asyncio.run(_stream(target)) == "straight to the provider"
        else:
            ok, message = services.test_connection(connection, actor=None, ip=None)
            assert ok, message
    assert proxy_environment.connections == 0 and len(server.requests) == 1


def test_a_proxy_the_operator_configured_is_used_and_the_host_is_still_checked(monkeypatch, settings):
    with ConnectionCounter() as proxy:
        settings.PROVIDER_PROXY = f"http://127.0.0.1:{proxy.port}"
        llm.lib()
        connection = ProviderConnection.objects.create(
            provider="openai_compatible",
            label="Through the proxy",
            api_base="http://rebind-explicit.attacker.test:9/v1",
            default_model="openai_compatible/model",
        )
        rebinding(monkeypatch, "rebind-explicit.attacker.test", ["93.184.216.34", "127.0.0.1"])
        ok, _ = services.test_connection(connection, actor=None, ip=None)
        assert not ok and proxy.connections == 0  # refused before the request was handed to the proxy
        rebinding(monkeypatch, "rebind-explicit.attacker.test", ["93.184.216.34"])
        services.test_connection(connection, actor=None, ip=None)
        assert proxy.connections >= 1  # a public answer goes out, through the operator's proxy
