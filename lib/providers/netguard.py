"""Guards for URLs that tenants type in: http(s) only, and never an internal address (SSRF)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from lib.errors import ProviderError

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})


class BlockedUrlError(ProviderError):
    """A tenant-supplied URL (or a redirect hop) points somewhere we must not send a request."""


def check_tenant_url(url: str, *, allow_private: bool) -> None:
    """Raise BlockedUrlError unless `url` is http(s) to a host that resolves only to public addresses.

    The check resolves the name itself; a name that resolves differently a moment later (DNS
    rebinding) is out of its reach, which is acceptable for the read-only GETs made here.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise BlockedUrlError(f"Blocked URL: scheme {parts.scheme or '(none)'!r} is not allowed, only http(s)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BlockedUrlError("Blocked URL: no host")
    if not host.isprintable() or " " in host:
        # No such host can resolve, and its raw text (a NUL, say) must not reach lastError.
        raise BlockedUrlError(f"Blocked URL: the host name {host!r} is not valid")
    if allow_private:
        return
    if host in METADATA_HOSTS:
        raise BlockedUrlError(f"Blocked URL: {host} is the metadata server")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (OSError, ValueError) as exc:
        raise ProviderError(f"Could not resolve {host}: {exc}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global:
            raise BlockedUrlError(f"Blocked URL: {host} resolves to a non-public address ({ip})")
