"""The tenant-URL guard (SSRF): which URLs a tenant may make us fetch, and which addresses we may
connect to for them. It judges what the HTTP client will really use: the prepared request's URL
(after requests' IDNA and percent-decoding) and the addresses one resolution of its host gave."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from lib.errors import ProviderError

ALLOWED_SCHEMES = frozenset({"http", "https"})
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.goog"})
# A host as the client sends it to the resolver: LDH labels (IDNA already applied by requests), or an
# IPv6 literal. Anything else (a `%`, a `\`, a `_`, a space) is no host a public page can live on.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}\.?$)(?:{_LABEL}\.)*{_LABEL}\.?$")
_IPV6_LITERAL = re.compile(r"^[0-9a-f:.]+$")
# IPv6 ranges that carry an IPv4 address a gateway may translate to (NAT64, RFC 6052 and 8215).
_NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# Deprecated IPv4-compatible addresses (::a.b.c.d): never a public web server.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedUrlError(ProviderError):
    """A tenant-supplied URL (or a redirect hop) points somewhere we must not send a request."""


@dataclass(frozen=True)
class TenantUrlPolicy:
    """What a tenant URL may reach: public addresses only, or (local runs and tests) private ones too."""

    allow_private: bool = False


def check_prepared_url(url: str, policy: TenantUrlPolicy) -> None:
    """Raise BlockedUrlError unless the prepared URL `url` is http(s) to a host we may ask for.

    The host is read exactly as requests' adapter reads it to choose where to connect (urllib's
    `hostname` of the prepared URL). IP literals are judged here; names are judged by the addresses
    the transport resolves them to, once, when it connects (`vetted_addresses`).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedUrlError(f"Blocked URL: scheme {parts.scheme or '(none)'!r} is not allowed, only http(s)")
    check_host(parts.hostname or "", policy)


def check_host(host: str, policy: TenantUrlPolicy) -> None:
    """Raise BlockedUrlError unless `host` (as the client will resolve it) is a well-formed name or an
    IP literal, not the metadata server, and, unless private networks are allowed, a public literal."""
    if not host:
        raise BlockedUrlError("Blocked URL: no host")
    lowered = host.lower()
    literal = ip_literal(lowered)
    if literal is None and not _HOST_NAME.match(lowered):
        # Its raw text (a NUL, say) must not reach lastError: repr() escapes it.
        raise BlockedUrlError(f"Blocked URL: the host name {host!r} is not valid")
    if policy.allow_private:
        return
    name = lowered.rstrip(".")
    if name in METADATA_HOSTS:
        raise BlockedUrlError(f"Blocked URL: {name} is the metadata server")
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: these names are loopback whatever a resolver says (and some resolve no trailing dot).
        raise BlockedUrlError(f"Blocked URL: {name} is a loopback name")
    if literal is not None and not is_public_address(literal):
        raise BlockedUrlError(f"Blocked URL: {host} resolves to a non-public address ({literal})")


def vetted_addresses(host: str, port: int, policy: TenantUrlPolicy) -> list[str]:
    """Resolve `host` once and return its addresses, or raise BlockedUrlError when any is not public.

    The transport connects only to these, so a name that answers differently a moment later (DNS
    rebinding) cannot move the connection. One non-public answer refuses the whole name: a public
    page has no reason to list a private address beside its public one.
    """
    check_host(host, policy)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # gaierror: the caller words it
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)))
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no IPv4 or IPv6 address")
    if not policy.allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not is_public_address(ip):
                raise BlockedUrlError(f"Blocked URL: {host.rstrip('.')} resolves to a non-public address ({ip})")
    return addresses


def ip_literal(host: str) -> IPAddress | None:
    """`host` as an IP address when it is a canonical literal (dotted quad or IPv6), else None.

    Other numeric spellings (2130706433, 0x7f.1, 0177.0.0.1) are names to this function; the
    resolver turns them into addresses, which `vetted_addresses` then judges.
    """
    text = host.rstrip(".")
    if not (_IPV6_LITERAL.match(text) or text.replace(".", "").isdigit()):
        return None
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def is_public_address(ip: IPAddress) -> bool:
    """True for a globally routed unicast address. Python's `is_global` alone is not enough: it calls
    multicast, site-local, IPv4-compatible, 6to4 and NAT64 addresses global, and the last three
    carry an IPv4 address (127.0.0.1, say) that a gateway would translate to."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return is_public_address(ip.ipv4_mapped)  # the IPv4 address is the one reached
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if ip.is_site_local or ip in _IPV4_COMPATIBLE:
        return False
    embedded = _embedded_ipv4(ip)
    return embedded is None or is_public_address(embedded)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in network for network in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
