"""Who may start a run: the cron secret (bearer or X-Cron-Secret), compared in constant time on bytes."""

from __future__ import annotations

import hmac
from typing import Protocol

BEARER_PREFIX = "bearer "


class Headers(Protocol):
    """Anything with a case-insensitive `get`, such as Werkzeug's request headers."""

    def get(self, key: str) -> str | None: ...


def _as_bytes(value: str) -> bytes:
    # Servers hand header values over as latin-1 text; that recovers the bytes that were sent.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def bearer_token(headers: Headers) -> str | None:
    """The token of an `Authorization: Bearer …` header, if there is one."""
    authorization = headers.get("Authorization") or ""
    if authorization[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX:
        return None
    return authorization[len(BEARER_PREFIX) :].strip()


def has_cron_secret(headers: Headers, secret: str) -> bool:
    """True when either accepted header carries exactly the secret."""
    expected = _as_bytes(secret)
    candidates = [bearer_token(headers), headers.get("X-Cron-Secret")]
    # Check every candidate so the time taken does not tell which header was present.
    matched = False
    for candidate in candidates:
        if candidate is not None and hmac.compare_digest(_as_bytes(candidate.strip()), expected):
            matched = True
    return matched
