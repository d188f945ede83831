"""Provider HTTP, hardened below LiteLLM and the SDKs: no redirect is ever followed, and every connection
goes to an address the SSRF guard accepted at the moment of connecting.

LiteLLM builds many httpx clients (its own cached handlers for Anthropic and Gemini, the OpenAI SDK's
client for OpenAI-shaped providers, a fresh client after a connection error), most with
`follow_redirects=True`. Rather than chase each one, `install()` hardens the layers they all share, once
per process that imports LiteLLM:

- async calls use httpx's own transport instead of LiteLLM's aiohttp one, so one HTTP stack is guarded;
- an httpx client that would follow a redirect gets an error instead (RedirectRefused) and follows nothing;
  clients that asked not to follow (follow_redirects=False, httpx's default) see the 3xx as before;
- httpcore's connect step, for a host a provider base URL named (providers.ssrf.checked_host_policy),
  resolves the host itself, checks every address with providers.ssrf.refusal under that connection's
  private-network permission and connects to the checked address (TLS still verifies the host name), so a
  DNS answer that changes after the base URL was checked (rebinding) cannot reach a forbidden address.
  Other hosts (the providers' own public APIs, anything else in the process) connect as before.
- proxy environment variables (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY) and .netrc are ignored (trust_env off
  for every httpx client): a proxy resolves names itself, out of reach of the connect-time check. An
  operator who needs an egress proxy names it in PROVIDER_PROXY; requests then go through it, and each
  base-URL host is still resolved and checked here just before the request is handed to the proxy.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
from typing import Any

import anyio.to_thread
import httpcore
import httpx
from httpcore._backends.anyio import AnyIOBackend
from httpcore._backends.sync import SyncBackend

from . import ssrf

_lock = threading.Lock()
_installed = False
# The connect time limit of the provider call running in this asyncio task (providers.llm sets it per call).
connect_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar("connect_limit", default=None)


class RedirectRefused(httpx.TransportError):
    """A provider answered with a redirect; provider calls never follow one."""


def checked_addresses(host: str) -> list[str]:
    """The addresses to connect to for `host`: for a base-URL host, each resolved once and accepted by the
    SSRF guard (else ConnectError); any other host is left to the connection as it is."""
    allow_private = ssrf.checked_host_policy(host)
    if allow_private is None:
        return [host]
    try:
        infos = socket.getaddrinfo(host.strip("[]"), None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise httpcore.ConnectError(f"The host '{host}' cannot be resolved.") from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos))
    for address in addresses:
        problem = ssrf.refusal(address, allow_private=allow_private)
        if problem:
            raise httpcore.ConnectError(f"Refused to connect to {host} ({address}): {problem}")
    return [str(a) for a in addresses]


def _guarded_sync_connect(original: Any) -> Any:
    def connect_tcp(self: SyncBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if ssrf.checked_host_policy(host) is None:
            return original(self, host, port, *args, **kwargs)
        last: Exception | None = None
        for address in checked_addresses(host):
            try:
                return original(self, address, port, *args, **kwargs)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"No address for {host}.")

    return connect_tcp


def _guarded_async_connect(original: Any) -> Any:
    async def connect_tcp(self: AnyIOBackend, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        limit = connect_limit.get()
        if limit is not None and not args:  # the call's connect limit, if shorter than the client's own
            kwargs["timeout"] = min(kwargs.get("timeout") or limit, limit)
        if ssrf.checked_host_policy(host) is None:
            return await original(self, host, port, *args, **kwargs)
        last: Exception | None = None
        for address in await anyio.to_thread.run_sync(checked_addresses, host):
            try:
                return await original(self, address, port, *args, **kwargs)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"No address for {host}.")

    return connect_tcp


def provider_proxy() -> str:
    """The egress proxy an operator configured for provider calls ('' for none: connect directly)."""
    from django.conf import settings

    return str(getattr(settings, "PROVIDER_PROXY", "") or "")


def _no_environment_proxy(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["trust_env"] = False  # HTTP_PROXY and friends would take connections past the guard
        proxy = provider_proxy()
        if proxy and not {"proxy", "mounts", "transport"} & set(kwargs):
            kwargs["proxy"] = proxy
        original(self, *args, **kwargs)

    return __init__


def _check_before_proxy(request: httpx.Request) -> None:
    """Through a configured proxy the connect step sees only the proxy: check the base URL's host here."""
    if provider_proxy() and ssrf.checked_host_policy(request.url.host) is not None:
        try:
            checked_addresses(request.url.host)
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None


def _refused(response: httpx.Response, wanted: bool) -> RedirectRefused | None:
    if wanted and response.has_redirect_location:
        return RedirectRefused(
            f"The provider answered with a redirect (HTTP {response.status_code}); provider calls never follow "
            "redirects.",
            request=response.request,
        )
    return None


def _guarded_sync_send(original: Any) -> Any:
    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        wanted = kwargs.get("follow_redirects")
        wanted = wanted if isinstance(wanted, bool) else self.follow_redirects  # else: the client's default
        _check_before_proxy(request)
        response: httpx.Response = original(self, request, **{**kwargs, "follow_redirects": False})
        refused = _refused(response, wanted)
        if refused:
            response.close()
            raise refused
        return response

    return send


def _guarded_async_send(original: Any) -> Any:
    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        wanted = kwargs.get("follow_redirects")
        wanted = wanted if isinstance(wanted, bool) else self.follow_redirects  # else: the client's default
        await anyio.to_thread.run_sync(_check_before_proxy, request)
        response: httpx.Response = await original(self, request, **{**kwargs, "follow_redirects": False})
        refused = _refused(response, wanted)
        if refused:
            await response.aclose()
            raise refused
        return response

    return send


def install(litellm: Any) -> None:
    """Harden provider HTTP for this process. Idempotent; called from providers.llm.lib()."""
    litellm.disable_aiohttp_transport = True
    install_httpx()


def install_httpx() -> None:
    """The httpx and httpcore part of `install`, for provider requests made without LiteLLM (listing a
    server's models, providers.server_models). Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        SyncBackend.connect_tcp = _guarded_sync_connect(SyncBackend.connect_tcp)  # type: ignore[method-assign]
        AnyIOBackend.connect_tcp = _guarded_async_connect(AnyIOBackend.connect_tcp)  # type: ignore[method-assign]
        httpx.Client.send = _guarded_sync_send(httpx.Client.send)  # type: ignore[method-assign]
        httpx.AsyncClient.send = _guarded_async_send(httpx.AsyncClient.send)  # type: ignore[method-assign]
        httpx.Client.__init__ = _no_environment_proxy(httpx.Client.__init__)  # type: ignore[method-assign]
        httpx.AsyncClient.__init__ = _no_environment_proxy(httpx.AsyncClient.__init__)  # type: ignore[method-assign]
        _installed = True
