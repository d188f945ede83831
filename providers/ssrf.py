"""The SSRF guard for custom base URLs: never link-local or cloud metadata; private and loopback addresses
only where an operator allowed them for that connection (a local Ollama is a real use)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeURL(Exception):
    pass


METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data", "metadata.azure.com"}
METADATA_IPS = {
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
}


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeURL(f"The host '{host}' cannot be resolved.") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def check_base_url(url: str, *, allow_private: bool) -> str:
    """Return the URL when it is safe to call, else raise UnsafeURL in plain words."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeURL("A base URL must start with http:// or https:// and name a host.")
    if parts.username or parts.password:
        raise UnsafeURL("Put credentials in the key field, not in the URL.")
    host = parts.hostname.lower()
    if host in METADATA_HOSTS:
        raise UnsafeURL("Cloud metadata addresses are never allowed.")
    for address in _addresses(host):
        mapped = getattr(address, "ipv4_mapped", None) or address
        if mapped in METADATA_IPS or mapped.is_link_local:
            raise UnsafeURL("Link-local and cloud metadata addresses are never allowed.")
        if mapped.is_multicast or mapped.is_unspecified or mapped.is_reserved:
            raise UnsafeURL(f"The address {address} cannot be a provider.")
        if (mapped.is_private or mapped.is_loopback) and not allow_private:
            raise UnsafeURL(
                f"{host} is a private or loopback address; an operator must allow private networks for this connection."
            )
    return url
