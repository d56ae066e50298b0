"""Google ID tokens as a credential (contract §2.1): RS256 signature against Google's published
certificates (cached in memory), Google issuer, audience, expiry, and an allowed, verified e-mail."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from lib.config import IdTokenSettings
from lib.deferred import IMPORT_LOCK
from lib.errors import AvailabilityCronError
from lib.logs import log_event

log = logging.getLogger(__name__)

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
CLOCK_SKEW_S = 60
MAX_TOKEN_LENGTH = 8192  # Google ID tokens are about 1 KB; anything far larger is not one
MAX_KID_LENGTH = 128  # Google's key ids are 40 hex digits
MAX_CLAIM_LENGTH = 2048  # issuers, audiences and e-mails are far shorter
MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z: a NumericDate beyond is no real token's
CERTS_TIMEOUT_S = 5.0
DEFAULT_CERTS_MAX_AGE_S = 3600.0
# Cache-Control is honoured within these bounds: "no-cache" must not turn every call into a fetch.
CERTS_MAX_AGE_BOUNDS_S = (60.0, 86_400.0)
UNKNOWN_KID_REFETCH_S = 60.0  # Google publishes new keys before using them; once a minute is plenty
FAILED_FETCH_RETRY_S = 10.0  # a down certificate server is asked again at most this often
STALE_CERTS_LIMIT_S = 86_400.0  # after a failed refresh, older certificates still serve this long

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class IdTokenRejected(AvailabilityCronError):
    """The bearer value is not an acceptable Google ID token; `reason` is a fixed phrase, never token text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedIdToken(IdTokenRejected):
    """A header field or claim has a type or size no Google ID token has (logged as a warning: a probe)."""


class CertificatesUnavailable(IdTokenRejected):
    """Google's signing certificates could not be fetched (and none are cached)."""


@dataclass(frozen=True)
class Identity:
    """The verified caller of an accepted ID token."""

    email: str
    audience: str


@dataclass(frozen=True)
class _Claims:
    """The claims we check, type-checked: nothing of another type ever reaches a comparison."""

    issuer: str
    audience: str
    expires: float
    issued: float
    email: str
    email_verified: bool

    @classmethod
    def read(cls, claims: Mapping[str, Any]) -> _Claims:
        verified = claims.get("email_verified")
        if not isinstance(verified, bool | str | None):
            raise MalformedIdToken("claim email_verified is not a boolean")
        return cls(
            issuer=_claim_text(claims, "iss"),
            audience=_claim_text(claims, "aud"),
            expires=_claim_seconds(claims, "exp"),
            issued=_claim_seconds(claims, "iat"),
            email=_claim_text(claims, "email"),
            email_verified=verified is True or verified == "true",
        )


def verify_id_token(
    token: str,
    policy: IdTokenSettings,
    audiences: tuple[str, ...],
    *,
    certificates: CertificateCache | None = None,
    now: float | None = None,
) -> Identity:
    """Verify `token` for one of `audiences`; raises IdTokenRejected (never with token text) otherwise.

    The claims are checked before any certificate is fetched, so junk never costs a network call, and
    again on the payload google-auth returns once the signature is verified.
    """
    if not policy.allowed_invokers or not audiences:
        raise IdTokenRejected("ID tokens are not accepted (ALLOWED_INVOKERS is empty)")
    kid, claims = _peek(token)
    current = time.time() if now is None else now
    _check_claims(claims, policy, audiences, current)
    pem = (certificates or CERTIFICATES).certificate(policy.certs_url, kid)
    verified = _verify_signature(token, kid, pem, audiences)
    return _check_claims(verified, policy, audiences, current)


def _verify_signature(token: str, kid: str, pem: str, audiences: tuple[str, ...]) -> Mapping[str, Any]:
    # Imported here: google-auth pulls in cryptography, which the secret path never needs (cold start).
    with IMPORT_LOCK:
        from google.auth import jwt  # noqa: PLC0415

    try:
        # google.auth.jwt has no type hints; decode returns the verified payload mapping.
        claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
            token, certs={kid: pem}, audience=list(audiences), clock_skew_in_seconds=CLOCK_SKEW_S
        )
    except Exception as exc:  # the one choke point for google-auth: whatever it raises on
        # a hostile token (its own errors, ValueError, TypeError, OverflowError, …) is a rejection, and
        # its messages quote the token, so only a fixed phrase leaves this function.
        raise IdTokenRejected("signature or claims rejected by google-auth") from exc
    if not isinstance(claims, Mapping):
        raise MalformedIdToken("claims are not a JSON object")
    return claims


def _peek(token: str) -> tuple[str, Mapping[str, Any]]:
    """The key id and the claims, unverified: only for rejecting early and choosing the key.

    Of the header only `alg` and `kid` are read, and each is type-checked before use."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3:
        raise IdTokenRejected("not a JWT")
    header, claims = _json_object(parts[0]), _json_object(parts[1])
    if parts[2] == "SIGNATURE_REMOVED_BY_GOOGLE":
        # Cloud Run strips the signature of tokens it has checked itself (a private function).
        raise IdTokenRejected("signature removed by Cloud Run: private functions need X-Cron-Secret")
    if header.get("alg") != "RS256":
        raise IdTokenRejected("not an RS256 token")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise IdTokenRejected("no key id")
    if len(kid) > MAX_KID_LENGTH:
        raise MalformedIdToken("key id too long")
    return kid, claims


def _json_object(segment: str) -> Mapping[str, Any]:
    """One base64url JSON-object segment of a JWT; MalformedIdToken for anything else."""
    try:
        decoded = json.loads(_b64url(segment))
    except (ValueError, binascii.Error, RecursionError) as exc:
        # ValueError covers bad JSON, non-UTF-8 bytes and non-ASCII base64 text; RecursionError deep nesting.
        raise MalformedIdToken("not a JWT") from exc
    if not isinstance(decoded, dict):
        raise MalformedIdToken("not a JWT")
    return decoded


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _check_claims(
    claims: Mapping[str, Any], policy: IdTokenSettings, audiences: tuple[str, ...], now: float
) -> Identity:
    typed = _Claims.read(claims)
    if typed.issuer not in GOOGLE_ISSUERS:
        raise IdTokenRejected("issuer is not Google")
    if typed.audience not in audiences:
        raise IdTokenRejected("audience not accepted (OIDC_AUDIENCES)")
    if typed.expires + CLOCK_SKEW_S < now:
        raise IdTokenRejected("expired")
    if typed.issued - CLOCK_SKEW_S > now:
        raise IdTokenRejected("issued in the future")
    if typed.email.lower() not in policy.allowed_invokers:
        raise IdTokenRejected("account not in ALLOWED_INVOKERS")
    if not typed.email_verified:
        raise IdTokenRejected("email not verified")
    return Identity(email=typed.email.lower(), audience=typed.audience)


def _claim_text(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None:
        raise IdTokenRejected(f"no {name}")
    if not isinstance(value, str) or len(value) > MAX_CLAIM_LENGTH:
        raise MalformedIdToken(f"claim {name} is not a string of at most {MAX_CLAIM_LENGTH} characters")
    return value


def _claim_seconds(claims: Mapping[str, Any], name: str) -> float:
    """A NumericDate claim: a finite JSON number within the years a token can name, not a boolean."""
    value = claims.get(name)
    if value is None:
        raise IdTokenRejected("no exp or iat")
    if isinstance(value, bool) or not isinstance(value, int | float) or not -MAX_SECONDS <= value <= MAX_SECONDS:
        # The range test also refuses NaN and infinities (every comparison with NaN is false).
        raise MalformedIdToken(f"claim {name} is not a NumericDate")
    return float(value)


@dataclass(frozen=True)
class CertificateSet:
    """One fetch of a certificate URL: PEM certificates by key id, and its freshness (monotonic)."""

    by_kid: Mapping[str, str]
    fetched_at: float
    fresh_until: float


Fetch = Callable[[str], tuple[dict[str, str], float]]


class CertificateCache:
    """Signing certificates per URL, kept for their Cache-Control max-age; thread-safe, one fetch at a time."""

    def __init__(self, fetch: Fetch | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch or fetch_certificates
        self._clock = clock
        self._lock = threading.Lock()
        self._sets: dict[str, CertificateSet] = {}
        self._failed_at: dict[str, float] = {}

    def certificate(self, url: str, kid: str) -> str:
        """The PEM certificate of `kid`, fetching when the cache is stale or the key is new to it."""
        with self._lock:
            now = self._clock()
            current = self._sets.get(url)
            if self._should_fetch(url, current, kid, now):
                current = self._refresh(url, current, now)
            if current is None:
                raise CertificatesUnavailable("signing certificates unavailable")
            pem = current.by_kid.get(kid)
            if pem is None:
                raise IdTokenRejected("unknown key id")
            return pem

    def clear(self) -> None:
        with self._lock:
            self._sets.clear()
            self._failed_at.clear()

    def _should_fetch(self, url: str, current: CertificateSet | None, kid: str, now: float) -> bool:
        failed_at = self._failed_at.get(url)
        if failed_at is not None and now - failed_at < FAILED_FETCH_RETRY_S:
            return False
        if current is None or now >= current.fresh_until:
            return True
        return kid not in current.by_kid and now - current.fetched_at >= UNKNOWN_KID_REFETCH_S

    def _refresh(self, url: str, current: CertificateSet | None, now: float) -> CertificateSet | None:
        try:
            by_kid, max_age = self._fetch(url)
        except CertificatesUnavailable as exc:
            self._failed_at[url] = now
            usable = current is not None and now - current.fetched_at < STALE_CERTS_LIMIT_S
            log_event(
                log,
                logging.WARNING,
                "oidc_certs_unavailable",
                url=url,
                detail=exc.reason,
                usingCachedCertificates=usable,
            )
            return current if usable else None
        self._failed_at.pop(url, None)
        fresh = CertificateSet(by_kid=by_kid, fetched_at=now, fresh_until=now + max_age)
        self._sets[url] = fresh
        return fresh


def fetch_certificates(url: str) -> tuple[dict[str, str], float]:
    """GET the `{kid: x509 PEM}` document (Google's /oauth2/v1/certs shape) and its freshness in seconds."""
    try:
        response = requests.get(url, timeout=CERTS_TIMEOUT_S, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise CertificatesUnavailable(f"request failed ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise CertificatesUnavailable(f"HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError as exc:
        raise CertificatesUnavailable("not JSON") from exc
    if not isinstance(document, dict) or not document:
        raise CertificatesUnavailable("not a {kid: certificate} object")
    certs = {kid: pem for kid, pem in document.items() if isinstance(pem, str) and "BEGIN CERTIFICATE" in pem}
    if len(certs) != len(document):
        raise CertificatesUnavailable("not a {kid: x509 PEM certificate} object (use the /oauth2/v1/certs form)")
    return certs, freshness(response.headers.get("Cache-Control"), response.headers.get("Age"))


def freshness(cache_control: str | None, age: str | None) -> float:
    """Seconds the response stays fresh: max-age minus Age, within CERTS_MAX_AGE_BOUNDS_S."""
    match = _MAX_AGE.search(cache_control or "")
    if match is None:
        return DEFAULT_CERTS_MAX_AGE_S
    seconds = float(match.group(1))
    if age is not None and age.strip().isdigit():
        seconds -= float(age.strip())
    low, high = CERTS_MAX_AGE_BOUNDS_S
    return min(max(seconds, low), high)


# One cache per process: certificates are the same for every request.
CERTIFICATES = CertificateCache()
