"""Provider protection for one run: a cap on each provider's refreshes in flight, and a cool-down
that stops sending new work to a provider whose API keeps failing, so one sick provider neither
eats the whole budget nor gets hammered. Used by the pool on the lock-holding thread only.

The cool-down rule: a provider rests for the rest of the run after N failures in a row that blame
its API (429, 5xx, timeout, refused connection), with no answer from it in between, where
N = max(COOLDOWN_AFTER_FAILURES, the most of its refreshes that were in flight at once so far).
So the failures of requests that were already under way together (one network blip, a burst of
timeouts) never park a provider on their own: a whole round of its requests must fail. Failures
that say nothing about the API (a host the tenant owns, the run's own time running out) neither
count nor reset the count."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lib.errors import (
    ProviderError,
    ProviderHTTPError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnreachable,
    RunOutOfTime,
)
from lib.model import Candidate
from lib.outcome import RefreshOutcome
from lib.plan import NO_PROVIDER

# At least this many failures in a row, each blaming the provider, and the provider rests for the run.
COOLDOWN_AFTER_FAILURES = 5


def provider_silent(exc: ProviderError) -> bool:
    """Whether `exc` says nothing about the provider's API: the run's budget ran out, or the request
    went to a host the tenant owns (a white-label or custom-domain booking page)."""
    return isinstance(exc, RunOutOfTime) or exc.on_tenant_host


def provider_trouble(exc: ProviderError) -> str | None:
    """A short reason when `exc` says the provider's API is in trouble; None when the link is to
    blame or the error says nothing about the API (provider_silent)."""
    if provider_silent(exc):
        return None
    if isinstance(exc, ProviderRateLimited):
        return "HTTP 429"
    if isinstance(exc, ProviderHTTPError):
        return f"HTTP {exc.status}" if exc.status >= 500 else None
    if isinstance(exc, ProviderTimeout):
        return "timeout"
    if isinstance(exc, ProviderUnreachable):
        return "connection failed"
    return None


def automatic_provider_cap(concurrency: int) -> int:
    """Half the workers: with the cap work-conserving (see ProviderGate.may_start), a provider can
    only take more when nothing else is waiting, so the cap never leaves a worker idle."""
    return max(1, math.ceil(concurrency / 2))


@dataclass(frozen=True)
class Cooldown:
    """A provider that was sent no new work for the rest of the run."""

    provider: str
    reason: str
    held_back: int

    def as_report(self) -> dict[str, Any]:
        return {"provider": self.provider, "reason": self.reason, "heldBack": self.held_back}


class Backlog:
    """The run's queue split by provider, still handed out in the queue's order where allowed."""

    def __init__(self, queue: Iterable[Candidate], provider_of: Callable[[Candidate], str]) -> None:
        self._waiting: dict[str, deque[tuple[int, Candidate]]] = {}
        for position, candidate in enumerate(queue):
            self._waiting.setdefault(provider_of(candidate), deque()).append((position, candidate))

    def take(self, may_start: Callable[[str], bool]) -> tuple[str, Candidate] | None:
        """The earliest waiting candidate whose provider may start one now."""
        best: str | None = None
        for provider, waiting in self._waiting.items():
            if waiting and (best is None or waiting[0][0] < self._waiting[best][0][0]) and may_start(provider):
                best = provider
        if best is None:
            return None
        return best, self._waiting[best].popleft()[1]

    def drop(self, provider: str) -> int:
        """Remove a provider's waiting candidates; returns how many there were."""
        return len(self._waiting.pop(provider, ()))

    def waiting_providers(self) -> set[str]:
        return {provider for provider, waiting in self._waiting.items() if waiting}

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())


class ProviderGate:
    """Counts each provider's refreshes in flight (and the most at once) and its failures in a row."""

    def __init__(self, cap: int, backlog: Backlog) -> None:
        self._cap = cap
        self._backlog = backlog
        self._in_flight: dict[str, int] = {}
        self._peak_in_flight: dict[str, int] = {}
        self._failures_in_row: dict[str, int] = {}
        self._cooled: set[str] = set()
        self.cooldowns: list[Cooldown] = []

    def may_start(self, provider: str) -> bool:
        """Under the cap, or over it only when no other provider has work waiting (work-conserving)."""
        if provider == NO_PROVIDER or self._in_flight.get(provider, 0) < self._cap:
            return True
        return self._backlog.waiting_providers() <= {provider}

    def started(self, provider: str) -> None:
        in_flight = self._in_flight.get(provider, 0) + 1
        self._in_flight[provider] = in_flight
        self._peak_in_flight[provider] = max(in_flight, self._peak_in_flight.get(provider, 0))

    def cooldown_threshold(self, provider: str) -> int:
        """Failures in a row that park `provider`: never fewer than a whole round of its requests in flight."""
        return max(COOLDOWN_AFTER_FAILURES, self._peak_in_flight.get(provider, 0))

    def finished(self, provider: str, outcome: RefreshOutcome) -> None:
        """Record a result; after cooldown_threshold troubled failures in a row, hold the rest back."""
        self._in_flight[provider] = self._in_flight.get(provider, 1) - 1
        if provider == NO_PROVIDER or provider in self._cooled or outcome.provider_silent:
            return
        if outcome.provider_trouble is None:
            self._failures_in_row[provider] = 0
            return
        failures = self._failures_in_row.get(provider, 0) + 1
        self._failures_in_row[provider] = failures
        if failures >= self.cooldown_threshold(provider):
            self._cooled.add(provider)
            reason = f"{failures} failures in a row (last: {outcome.provider_trouble})"
            self.cooldowns.append(Cooldown(provider, reason, self._backlog.drop(provider)))

    @property
    def held_back(self) -> int:
        return sum(cooldown.held_back for cooldown in self.cooldowns)
