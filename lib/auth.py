"""Who may start a run: the cron secret (bearer or X-Cron-Secret, compared in constant time on bytes),
or a Google ID token of an account in ALLOWED_INVOKERS (lib/oidc.py)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Protocol

from lib.config import id_token_settings_from_env
from lib.errors import ConfigError
from lib.logs import log_event
from lib.oidc import IdTokenRejected, MalformedIdToken, verify_id_token

log = logging.getLogger(__name__)
BEARER_PREFIX = "bearer "


class Headers(Protocol):
    """Anything with a case-insensitive `get`, such as Werkzeug's request headers."""

    def get(self, key: str) -> str | None: ...


class Request(Protocol):
    """What authentication reads of a request (Flask's request has all of it)."""

    @property
    def headers(self) -> Headers: ...

    @property
    def host(self) -> str: ...

    @property
    def path(self) -> str: ...


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


def is_authorized(request: Request, secret: str, env: Mapping[str, str]) -> bool:
    """The cron secret, or else a valid Google ID token of an allowed account (when ALLOWED_INVOKERS is set)."""
    if has_cron_secret(request.headers, secret):
        return True
    token = bearer_token(request.headers)
    if not token:
        return False
    try:
        policy = id_token_settings_from_env(env)
    except ConfigError as exc:
        # Named to the operator in the log only: an unauthenticated caller learns nothing (§2.1).
        log_event(log, logging.WARNING, "not_configured", detail=str(exc))
        return False
    if not policy.allowed_invokers:
        return False
    audiences = policy.audiences or (*function_urls(request.host, request.path), GCLOUD_CLIENT_ID)
    try:
        identity = verify_id_token(token, policy, audiences)
    except MalformedIdToken as exc:
        log_event(log, logging.WARNING, "id_token_rejected", reason=exc.reason)
        return False
    except IdTokenRejected as exc:
        log_event(log, logging.INFO, "id_token_rejected", reason=exc.reason)
        return False
    except Exception as exc:  # noqa: BLE001 - a token no check foresaw is still only a 401, never a 500
        # The class only: an exception's text may quote the token.
        log_event(log, logging.WARNING, "id_token_rejected", reason="unexpected error", exception=type(exc).__name__)
        return False
    log_event(log, logging.INFO, "id_token_accepted", email=identity.email, audience=identity.audience)
    return True


# `gcloud functions call` and `gcloud auth print-identity-token` send the operator's ID token minted
# for gcloud's own OAuth client, so that is its audience. Accepted by default (for an account in
# ALLOWED_INVOKERS only) so that the documented manual call works without extra set-up; an explicit
# OIDC_AUDIENCES replaces it.
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"


def function_urls(host: str, path: str) -> tuple[str, ...]:
    """The function's own URL as a caller would name it: the default audience when OIDC_AUDIENCES is unset.

    Cloud Run routes by Host, so a request that reached this function carries the function's host.
    """
    root = f"https://{host}"
    urls = [root, f"{root}/"]
    trimmed = path.rstrip("/")
    if trimmed:
        urls.append(f"{root}{trimmed}")
    return tuple(urls)
