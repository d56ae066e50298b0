"""When a failed GET is worth repeating, and after how long: connection failures and 502/503/504
with jittered backoff, a 429 only when the provider's wait fits the run's budget."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from lib.deadline import Deadline
from lib.errors import ProviderError, ProviderHTTPError, ProviderRateLimited, ProviderResponseError, ProviderTimeout
from lib.providers.guard import BlockedUrlError

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_RETRIES = 2
RETRY_BASE_DELAY_S = 0.25
# A provider's Retry-After is honoured only up to this long, and only when it fits the budget.
MAX_REQUESTED_WAIT_S = 10.0
# A retry must leave at least this much time for the request itself.
MIN_TIME_AFTER_WAIT_S = 1.0
# Failures that asking again cannot mend: too slow, a bad answer, a refused URL.
_FINAL = (ProviderTimeout, ProviderResponseError, BlockedUrlError)


def retry_delay(exc: ProviderError, retries: int, deadline: Deadline) -> float | None:
    """How long to wait before asking again, or None when this failure is final."""
    if retries >= MAX_RETRIES or isinstance(exc, _FINAL):
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


def retry_after(headers: Mapping[str, str]) -> float | None:
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


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asks us to wait: Retry-After, or Calendly's X-RateLimit-Reset (seconds until reset)."""
    wait = retry_after(headers)
    if wait is None:
        reset = headers.get("X-RateLimit-Reset", "").strip()
        wait = float(reset) if reset.isdigit() else None
    return wait
