"""The providers' HTTP transport: deadline-bound timeouts, a cap on a response's time and decoded size,
retries (lib/providers/retry.py), and errors worded as ProviderError. API calls go straight to urllib3
pools shared by every thread (lib/providers/pools.py); tenant URLs go through a TenantSession per
thread, whose adapter applies the guard (lib/providers/guard.py) to the prepared request and pins
the address."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    ResponseError,
    SSLError,
)

from lib import jsonfast
from lib.deadline import Deadline
from lib.errors import (
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnreachable,
    RunOutOfTime,
)
from lib.providers.body import BodyLimit, read_body
from lib.providers.guard import TenantUrlPolicy
from lib.providers.pools import ApiPools, api_headers, api_url, next_hop
from lib.providers.retry import rate_limit_wait, retry_after, retry_delay
from lib.providers.transport import TenantSession
from lib.providers.watchdog import WATCHDOG
from lib.providers.wire import UndecodableBody

# Threads for the extra requests of one refresh (HttpClient.alongside), shared by all workers.
HELPER_THREADS = 64
_T = TypeVar("_T")
MAX_CAUSES = 10
# The cap counts decoded bytes (lib/providers/body.py): urllib3 (>= 2.6.3) and lib/providers/wire.py
# inflate a compressed body only as far as asked.
MAX_RESPONSE_BYTES = 5 * 1024 * 1024
# Below this much time left a request is not worth starting.
MIN_USEFUL_TIMEOUT_S = 0.2
# Connecting should be quick; a provider that takes longer is treated as down.
MAX_CONNECT_TIMEOUT_S = 5.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# requests' limit (Session.max_redirects) for the API calls, which follow redirects.
MAX_API_REDIRECTS = 30
# What requests reported as a ConnectionError (HTTPAdapter.send).
_CONNECTION_FAILURES = (MaxRetryError, ProtocolError, OSError, ClosedPoolError, ProxyError, SSLError)
_NOT_ASCII = "{what}: request failed (a header is not ASCII: {error})"


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    url: str
    headers: Mapping[str, str]


class HttpClient:
    """GETs for the providers; safe to share between threads (the API pools are thread-safe, each
    thread has its own tenant sessions)."""

    def __init__(self, *, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._local = threading.local()
        self._max_bytes = max_bytes
        self._helpers: ThreadPoolExecutor | None = None
        self._helpers_lock = threading.Lock()
        self._pools = ApiPools()

    def alongside(self, call: Callable[[], _T]) -> Future[_T]:
        """Run `call` (more requests of the same refresh, e.g. HubSpot's next month) on a helper thread,
        so a refresh that needs several requests waits for the slowest, not for their sum.

        The helpers outlive runs and keep their sessions, so their connections are reused too.
        """
        with self._helpers_lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(max_workers=HELPER_THREADS, thread_name_prefix="http-helper")
            return self._helpers.submit(call)

    def _session(self, policy: TenantUrlPolicy) -> requests.Session:
        """This thread's session for tenant URLs under `policy` (the API calls use the shared pools)."""
        sessions: dict[TenantUrlPolicy, requests.Session] | None = getattr(self._local, "sessions", None)
        if sessions is None:
            sessions = self._local.sessions = {}
        session = sessions.get(policy)
        if session is None:
            session = sessions[policy] = TenantSession(policy)
        return session

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        deadline: Deadline,
        cap_s: float,
        what: str,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """GET `url` and decode its JSON body; any failure is a ProviderError naming `what`."""
        response = self.get(
            url, params=params, deadline=deadline, cap_s=cap_s, what=what, accept="application/json", headers=headers
        )
        try:
            return jsonfast.loads(response.body)
        except (ValueError, RecursionError) as exc:
            raise ProviderResponseError(f"{what} answered with invalid JSON") from exc

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        deadline: Deadline,
        cap_s: float,
        what: str,
        accept: str,
        redirects: bool = True,
        headers: Mapping[str, str] | None = None,
        tenant: TenantUrlPolicy | None = None,
    ) -> Response:
        """GET, retrying connection failures and 502/503/504 with jittered backoff, and waiting out a
        429 when the provider's wait fits the time left; other non-2xx answers raise ProviderHTTPError.

        With `tenant`, `url` is a tenant's: sent over a TenantSession (guarded, pinned, no proxy), and a
        redirect is returned, never followed (the caller vets the next hop)."""
        retries = 0
        while True:
            try:
                if tenant is None:
                    return self._api_attempt(url, params, deadline, cap_s, what, (headers, accept), redirects)
                all_headers = {**(headers or {}), "Accept": accept}
                return self._tenant_attempt(self._session(tenant), url, deadline, cap_s, what, all_headers)
            except ProviderError as exc:
                delay = retry_delay(exc, retries, deadline)
                if delay is None:
                    raise
            retries += 1
            time.sleep(delay)

    def _api_attempt(
        self,
        url: str,
        params: Mapping[str, str] | None,
        deadline: Deadline,
        cap_s: float,
        what: str,
        request_headers: tuple[Mapping[str, str] | None, str],
        redirects: bool,
    ) -> Response:
        """One GET of a provider's API over the shared pools (lib/providers/pools.py), following
        redirects as requests did (at most MAX_API_REDIRECTS), every hop within the same time cap."""
        timeout = _timeout(deadline, cap_s, what)
        limit = BodyLimit(what, self._max_bytes, time.monotonic() + timeout)
        connect_timeout = min(timeout, MAX_CONNECT_TIMEOUT_S)
        try:
            current, headers = api_url(url, params), api_headers(*request_headers)
            for _ in range(MAX_API_REDIRECTS + 1):
                answer = self._pools.get(
                    current, headers, connect_timeout=connect_timeout, read_timeout=timeout, limit=limit
                )
                location = answer.headers.get("Location") if redirects and answer.status in REDIRECT_STATUSES else None
                if not location:
                    return _checked(Response(answer.status, answer.body, current, answer.headers), what, redirects)
                current, headers = next_hop(current, location, headers)
        except (HTTPError, OSError, requests.RequestException, UnicodeError, UndecodableBody) as exc:
            raise _api_failure(exc, what, timeout) from exc
        raise ProviderError(f"{what}: request failed (Exceeded {MAX_API_REDIRECTS} redirects.)")

    def _tenant_attempt(
        self,
        session: requests.Session,
        url: str,
        deadline: Deadline,
        cap_s: float,
        what: str,
        headers: Mapping[str, str],
    ) -> Response:
        """One GET of a tenant's page through its guarded session; a redirect is returned, not followed."""
        timeout = _timeout(deadline, cap_s, what)
        limit = BodyLimit(what, self._max_bytes, time.monotonic() + timeout)
        try:
            # The watchdog bounds the whole answer: http.client times each recv, not the headers.
            with (
                WATCHDOG.bound(limit.read_by),
                session.get(
                    url,
                    headers=dict(headers),
                    timeout=(min(timeout, MAX_CONNECT_TIMEOUT_S), timeout),
                    stream=True,
                    allow_redirects=False,
                ) as answer,
            ):
                body = read_body(answer.raw, answer.headers, limit)
                result = Response(answer.status_code, body, answer.url, answer.headers)
        except (requests.Timeout, TimeoutError) as exc:
            raise ProviderTimeout(f"{what} timed out after {timeout:.1f} s") from exc
        except requests.ConnectionError as exc:
            raise ProviderUnreachable(f"{what}: connection failed ({_reason(exc)})") from exc
        except requests.RequestException as exc:
            raise ProviderError(f"{what}: request failed ({_reason(exc)})") from exc
        except UnicodeError as exc:
            raise ProviderError(_NOT_ASCII.format(what=what, error=type(exc).__name__)) from exc
        except HTTPError as exc:  # urllib3's own, from reading the body (a truncated page, say)
            raise _api_failure(exc, what, timeout) from exc
        return _checked(result, what, redirects=False)


def _timeout(deadline: Deadline, cap_s: float, what: str) -> float:
    """The time one attempt may take: its cap, or what is left of the run's budget."""
    timeout = min(cap_s, deadline.remaining())
    if timeout < MIN_USEFUL_TIMEOUT_S:
        raise RunOutOfTime(f"{what}: no time left in this run's budget")
    return timeout


def _checked(result: Response, what: str, redirects: bool) -> Response:
    """`result`, or the error its status means: 429 (with the provider's wait), another non-2xx
    (a redirect is an answer when redirects are not followed)."""
    if result.status == 429:
        wait = rate_limit_wait(result.headers)
        raise ProviderRateLimited(f"{what} answered HTTP 429: rate limited" + _wait_text(wait), wait)
    if not 200 <= result.status < 300 and not (not redirects and result.status in REDIRECT_STATUSES):
        wait = retry_after(result.headers)
        raise ProviderHTTPError(f"{what} answered HTTP {result.status}", result.status, wait)
    return result


def _api_failure(exc: BaseException, what: str, timeout: float) -> ProviderError:
    """urllib3's errors worded as they were when requests raised them (its HTTPAdapter.send mapping),
    so lastError reads the same; an error while the body is read is worded the same way."""
    if isinstance(exc, UnicodeError):  # http.client sends headers as Latin-1: build them with weburl.py
        return ProviderError(_NOT_ASCII.format(what=what, error=type(exc).__name__))
    if isinstance(exc, (requests.RequestException, UndecodableBody)):  # before OSError: requests' are IOErrors
        return ProviderError(f"{what}: request failed ({_reason(exc)})")
    if isinstance(exc, TimeoutError):  # lib/providers/wire.py: a connect, handshake or read timeout
        return ProviderTimeout(f"{what} timed out after {timeout:.1f} s")
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    if isinstance(exc, MaxRetryError) and isinstance(reason, ResponseError):
        return ProviderError(f"{what}: request failed ({_reason(exc)})")
    if isinstance(reason, ReadTimeoutError) or (
        isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError)
    ):
        return ProviderTimeout(f"{what} timed out after {timeout:.1f} s")
    if isinstance(exc, _CONNECTION_FAILURES):
        return ProviderUnreachable(f"{what}: connection failed ({_reason(exc)})")
    return ProviderError(f"{what}: request failed ({_reason(exc)})")


def _wait_text(wait: float | None) -> str:
    return f" (retry after {wait:.0f} s)" if wait is not None else ""


def _reason(exc: BaseException) -> str:
    """The root cause in a few words for lastError ("connection refused"), not urllib3's wrapping of it."""
    cause: BaseException | None = exc
    for _ in range(MAX_CAUSES):  # a bounded walk: chains can, in principle, loop
        if cause is None:
            break
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, http.client.IncompleteRead):  # worded as lib/providers/wire.py words it
            return "the connection closed before the answer was complete"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {_clipped(cause.reason or str(cause))}"
        cause = cause.__cause__ or cause.__context__ or _wrapped_reason(cause)
    return _clipped(str(exc))


def _wrapped_reason(exc: BaseException) -> BaseException | None:
    # urllib3's MaxRetryError keeps the underlying error in `reason`, not in __cause__.
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


def _clipped(text: str) -> str:
    return text if len(text) <= 160 else text[:157] + "..."
