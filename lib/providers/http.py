"""The shared HTTP plumbing of the providers: one session per worker thread, deadline-bound timeouts,
a cap on a response's total time and size, and translation of `requests` errors into ProviderError."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from lib.deadline import Deadline
from lib.errors import (
    ProviderError,
    ProviderHTTPError,
    ProviderResponseError,
    ProviderTimeout,
)

USER_AGENT = "availability-cron/1.0 (+calendar availability cache refresher)"
MAX_RESPONSE_BYTES = 5 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# Below this much time left a request is not worth starting.
MIN_USEFUL_TIMEOUT_S = 0.2
# Connecting should be quick; a provider that takes longer is treated as down.
MAX_CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    url: str
    headers: Mapping[str, str]


class HttpClient:
    """GETs for the providers; safe to share between threads (each thread has its own session)."""

    def __init__(self, *, max_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._local = threading.local()
        self._max_bytes = max_bytes

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
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
    ) -> Any:
        """GET `url` and decode its JSON body; any failure is a ProviderError naming `what`."""
        response = self.get(url, params=params, deadline=deadline, cap_s=cap_s, what=what, accept="application/json")
        try:
            return json.loads(response.body)
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
    ) -> Response:
        """GET with a timeout of min(cap_s, time left); non-2xx answers raise ProviderHTTPError."""
        timeout = min(cap_s, deadline.remaining())
        if timeout < MIN_USEFUL_TIMEOUT_S:
            raise ProviderTimeout(f"{what}: no time left in this run's budget")
        started = time.monotonic()
        try:
            with self._session().get(
                url,
                params=params,
                headers={"Accept": accept},
                timeout=(min(timeout, MAX_CONNECT_TIMEOUT_S), timeout),
                stream=True,
            ) as answer:
                body = self._read_body(answer, started + timeout, what)
                result = Response(answer.status_code, body, answer.url, dict(answer.headers))
        except requests.Timeout as exc:
            raise ProviderTimeout(f"{what} timed out after {timeout:.1f} s") from exc
        except requests.ConnectionError as exc:
            raise ProviderError(f"{what}: connection failed ({_reason(exc)})") from exc
        except requests.RequestException as exc:
            raise ProviderError(f"{what}: request failed ({_reason(exc)})") from exc
        if not 200 <= result.status < 300:
            raise ProviderHTTPError(f"{what} answered HTTP {result.status}", result.status)
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


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 160 else text[:157] + "..."
