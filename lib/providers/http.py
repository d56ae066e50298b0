"""The shared HTTP plumbing of the providers: one session per worker thread, deadline-bound timeouts,
a cap on a response's total time and size, and translation of `requests` errors into ProviderError."""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

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
from lib.providers.netguard import check_tenant_url

if TYPE_CHECKING:
    from requests.sessions import _Settings

USER_AGENT = "availability-cron/1.0 (+calendar availability cache refresher)"
# Threads for the extra requests of one refresh (HttpClient.alongside), shared by all workers.
HELPER_THREADS = 64
_T = TypeVar("_T")
MAX_CAUSES = 10
MAX_RESPONSE_BYTES = 5 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# Below this much time left a request is not worth starting.
MIN_USEFUL_TIMEOUT_S = 0.2
# Connecting should be quick; a provider that takes longer is treated as down.
MAX_CONNECT_TIMEOUT_S = 5.0
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Retries: only where repeating a GET is safe and likely to help, and only inside the budget.
RETRY_STATUSES = frozenset({502, 503, 504})
MAX_RETRIES = 2
RETRY_BASE_DELAY_S = 0.25
# A provider's Retry-After is honoured only up to this long, and only when it fits the budget.
MAX_REQUESTED_WAIT_S = 10.0
# A retry must leave at least this much time for the request itself.
MIN_TIME_AFTER_WAIT_S = 1.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    url: str
    headers: Mapping[str, str]


class _Session(requests.Session):
    """A session that reads the proxy environment (HTTP(S)_PROXY, NO_PROXY, CA bundle variables) once
    per host instead of on every request.

    requests scans the whole of os.environ for every request it sends; at a refresh a minute per
    workspace that scan was a third of the run's CPU. Sessions live for one run (one per worker
    thread), so a changed environment still takes effect on the next run.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, bool | None], _Settings] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: bool | None, verify: Any, cert: Any
    ) -> _Settings:
        if proxies or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        text = url.decode() if isinstance(url, bytes) else (url or "")
        parts = urlsplit(text)
        key = (f"{parts.scheme}://{parts.netloc}", stream)
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        copied = settings.copy()
        copied["proxies"] = dict(settings["proxies"])  # requests may adjust it on a redirect
        return copied


class HttpClient:
    """GETs for the providers; safe to share between threads (each thread has its own session)."""

    def __init__(self, *, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._local = threading.local()
        self._max_bytes = max_bytes
        self._helpers: ThreadPoolExecutor | None = None
        self._helpers_lock = threading.Lock()

    def alongside(self, call: Callable[[], _T]) -> Future[_T]:
        """Run `call` (more requests of the same refresh, e.g. HubSpot's next month) on a helper thread,
        so a refresh that needs several requests waits for the slowest, not for their sum.

        The helpers outlive runs and keep their sessions, so their connections are reused too.
        """
        with self._helpers_lock:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(max_workers=HELPER_THREADS, thread_name_prefix="http-helper")
            return self._helpers.submit(call)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = _Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
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
            return json.loads(response.body)
        except (ValueError, RecursionError) as exc:
            raise ProviderResponseError(f"{what} answered with invalid JSON") from exc

    def get_tenant_page(
        self, url: str, *, deadline: Deadline, cap_s: float, what: str, allow_private: bool
    ) -> Response:
        """GET a page whose URL a tenant typed in: every hop (redirects followed by hand) is checked first."""
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            check_tenant_url(current, allow_private=allow_private)
            response = self.get(current, deadline=deadline, cap_s=cap_s, what=what, accept="text/html", redirects=False)
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                return response
            current = urljoin(current, location)
        raise ProviderError(f"{what}: more than {MAX_REDIRECTS} redirects")

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
    ) -> Response:
        """GET, retrying connection failures and 502/503/504 with jittered backoff, and waiting out a
        429 when the provider's wait fits the time left; other non-2xx answers raise ProviderHTTPError."""
        retries = 0
        while True:
            try:
                return self._attempt(
                    url, params, deadline, cap_s, what, {**(headers or {}), "Accept": accept}, redirects
                )
            except ProviderError as exc:
                delay = _retry_delay(exc, retries, deadline)
                if delay is None:
                    raise
            retries += 1
            time.sleep(delay)

    def _attempt(
        self,
        url: str,
        params: Mapping[str, str] | None,
        deadline: Deadline,
        cap_s: float,
        what: str,
        headers: Mapping[str, str],
        redirects: bool,
    ) -> Response:
        timeout = min(cap_s, deadline.remaining())
        if timeout < MIN_USEFUL_TIMEOUT_S:
            raise RunOutOfTime(f"{what}: no time left in this run's budget")
        started = time.monotonic()
        try:
            with self._session().get(
                url,
                params=params,
                headers=dict(headers),
                timeout=(min(timeout, MAX_CONNECT_TIMEOUT_S), timeout),
                stream=True,
                allow_redirects=redirects,
            ) as answer:
                body = self._read_body(answer, started + timeout, what)
                result = Response(answer.status_code, body, answer.url, answer.headers)
        except requests.Timeout as exc:
            raise ProviderTimeout(f"{what} timed out after {timeout:.1f} s") from exc
        except requests.ConnectionError as exc:
            raise ProviderUnreachable(f"{what}: connection failed ({_reason(exc)})") from exc
        except requests.RequestException as exc:
            raise ProviderError(f"{what}: request failed ({_reason(exc)})") from exc
        if result.status == 429:
            wait = _rate_limit_wait(result.headers)
            raise ProviderRateLimited(f"{what} answered HTTP 429: rate limited" + _wait_text(wait), wait)
        if not 200 <= result.status < 300 and not (not redirects and result.status in REDIRECT_STATUSES):
            retry_after = _retry_after(result.headers)
            raise ProviderHTTPError(f"{what} answered HTTP {result.status}", result.status, retry_after)
        return result

    def _read_body(self, answer: requests.Response, read_by: float, what: str) -> bytes:
        # Read in chunks so that a server dripping bytes cannot hold the worker past its share,
        # and a huge body cannot exhaust memory.
        declared = answer.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise ProviderResponseError(f"{what} answered with {int(declared)} bytes, over the {self._max_bytes} limit")
        chunks: list[bytes] = []
        size = 0
        while chunk := answer.raw.read1(CHUNK_BYTES, decode_content=True):
            size += len(chunk)
            if size > self._max_bytes:
                raise ProviderResponseError(f"{what} answered with more than {self._max_bytes} bytes")
            if time.monotonic() > read_by:
                raise ProviderTimeout(f"{what} was too slow to send its answer")
            chunks.append(chunk)
        return b"".join(chunks)


def _retry_delay(exc: ProviderError, retries: int, deadline: Deadline) -> float | None:
    """How long to wait before asking again, or None when this failure is final."""
    if retries >= MAX_RETRIES or isinstance(exc, (ProviderTimeout, ProviderResponseError)):
        return None
    if isinstance(exc, ProviderRateLimited):
        delay = exc.retry_after_s
        if delay is None:
            return None
    elif isinstance(exc, ProviderHTTPError):
        if exc.status not in RETRY_STATUSES:
            return None
        delay = _backoff_delay(retries, exc.retry_after_s)
    else:  # the connection failed: nothing was answered, so asking again is safe
        delay = _backoff_delay(retries, None)
    if delay > MAX_REQUESTED_WAIT_S or delay > deadline.remaining() - MIN_TIME_AFTER_WAIT_S:
        return None
    return delay


def _backoff_delay(retries: int, retry_after: float | None) -> float:
    # Jitter spreads the retries of many workers hitting the same sick provider.
    delay: float = RETRY_BASE_DELAY_S * 2.0**retries * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security
    return max(delay, retry_after or 0.0)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    raw = headers.get("Retry-After", "").strip()
    if not raw:
        return None
    if raw.isdigit():
        return float(raw)
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asks us to wait: Retry-After, or Calendly's X-RateLimit-Reset (seconds until reset)."""
    wait = _retry_after(headers)
    if wait is None:
        reset = headers.get("X-RateLimit-Reset", "").strip()
        wait = float(reset) if reset.isdigit() else None
    return wait


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
