"""A link as a browser puts it on the wire: IDNA (UTS #46) host, percent-encoded path and query, no
user info or fragment. Header values must be ASCII; a raw `bücher.example` or `/meetings/jörg` in
an Origin or Referer header would fail the request (or be sent as mojibake)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from requests.models import PreparedRequest

_DEFAULT_PORTS = {"http": 80, "https": 443}


def browser_url(url: str) -> str:
    """`url` in ASCII, encoded exactly as requests encodes a request URL (it is the same code), with the
    user info, the fragment and a default port left out, as in a browser's Referer.

    Raises ValueError (requests' InvalidURL, an IDNA error) when the host cannot be encoded.
    """
    prepared = PreparedRequest()
    prepared.prepare_url(url, None)
    parts = urlsplit(prepared.url or "")
    host_and_port = parts.netloc.rpartition("@")[2]
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        host_and_port = host_and_port.rpartition(":")[0]
    return urlunsplit((parts.scheme, host_and_port, parts.path, parts.query, ""))
