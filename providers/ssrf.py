"""The SSRF guard for custom base URLs: never link-local or cloud metadata; private and loopback addresses
only where an operator allowed them for that connection (a local Ollama is a real use).

An address is judged by the IPv4 address it wraps when it is an IPv6 form that carries one (IPv4-mapped,
6to4, Teredo, NAT64), so `2002:a9fe:a9fe::1` is the metadata address it routes to. providers.http_guard
applies the same rules again to the address each connection actually goes to.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(Exception):
    pass


METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"}
METADATA_IPS = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
}
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # connecting to 0.0.0.0 reaches this host on Linux
CARRIER_NAT = ipaddress.ip_network("100.64.0.0/10")  # shared address space: not public, so private here
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NEVER = "Link-local and cloud metadata addresses are never allowed."

_checked_hosts: dict[str, bool] = {}  # base-URL host -> whether an operator allowed it private addresses
_hosts_lock = threading.Lock()


def wrapped_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address routes to (IPv4-mapped, 6to4, Teredo, NAT64); [] for others."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo:
        found.extend(address.teredo)
    if address in NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address cannot be a provider's, in plain words, or None when it can."""
    judged: list[IPAddress] = [*wrapped_ipv4(address)] or [address]
    for candidate in [address, *judged]:
        if candidate in METADATA_IPS or candidate.is_link_local:
            return NEVER
        if candidate.is_multicast or candidate.is_unspecified or candidate in THIS_NETWORK:
            return f"The address {address} cannot be a provider."
    private = any(c.is_private or c.is_loopback or c in CARRIER_NAT for c in judged)
    if not private and any(c.is_reserved for c in judged):
        return f"The address {address} cannot be a provider."
    if private and not allow_private:
        return (
            f"{address} is a private or loopback address; an operator must allow private networks for this connection."
        )
    return None


def _addresses(host: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeURL(f"The host '{host}' cannot be resolved.") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_base_url(url: str, *, allow_private: bool) -> str:
    """Return the URL when it is safe to call, else raise UnsafeURL in plain words.

    A host that passes is remembered with its private-network permission, so the connect-time check
    (providers.http_guard) holds every later connection to that host to the same rules."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("A base URL must start with http:// or https:// and name a host.")
    if parts.username or parts.password:
        raise UnsafeURL("Put credentials in the key field, not in the URL.")
    host = normal_host(parts.hostname)
    if host in METADATA_HOSTS or host.split(".")[0] in METADATA_HOSTS - {"metadata"}:
        raise UnsafeURL("Cloud metadata addresses are never allowed.")
    for address in _addresses(host):
        problem = refusal(address, allow_private=allow_private)
        if problem:
            raise UnsafeURL(problem)
    with _hosts_lock:
        _checked_hosts[host] = _checked_hosts.get(host, False) or allow_private
    return url


def normal_host(host: str) -> str:
    """One spelling per host name: lower case, no brackets, no trailing dot (`metadata.google.internal.`
    is the same name as `metadata.google.internal`, fully qualified)."""
    return host.strip("[]").lower().rstrip(".")


def checked_host_policy(host: str) -> bool | None:
    """For a host some base URL named: whether it may reach private addresses. None for any other host."""
    return _checked_hosts.get(normal_host(host))
