"""The run's JSON report: counts, errors, metrics and timing, built from the tally of outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lib.model import Metrics
from lib.options import RunOptions
from lib.outcome import Outcome, RefreshOutcome
from lib.throttle import Cooldown

MAX_REPORTED_ERRORS = 50


@dataclass
class Tally:
    """Counts of a run's outcomes as they arrive (main thread only)."""

    counts: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))
    empty_slots: int = 0
    errors: list[str] = field(default_factory=list)
    errors_truncated: int = 0

    def add(self, outcome: RefreshOutcome) -> None:
        self.counts[outcome.outcome] += 1
        if outcome.outcome is Outcome.REFRESHED and not outcome.slots:
            self.empty_slots += 1
        if outcome.outcome is Outcome.FAILED:
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append(f"{outcome.client_id}: {outcome.error}")
            else:
                self.errors_truncated += 1

    @property
    def attempted(self) -> int:
        return sum(self.counts.values())


def utc_iso(moment: datetime) -> str:
    """An instant in JavaScript's toISOString form."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Report:
    invocation_id: str
    options: RunOptions
    checked: int
    tally: Tally
    skipped_backoff: int
    skipped_not_configured: int
    not_started: int
    cooldowns: tuple[Cooldown, ...]
    finished_within_budget: bool
    metrics: Metrics | None  # None when the metrics query failed (logged as metrics_unavailable)
    duration_ms: int
    finished_at: datetime

    def as_dict(self) -> dict[str, Any]:
        counts = self.tally.counts
        return {
            "success": True,
            "invocationId": self.invocation_id,
            "mode": self.options.mode.value,
            "source": self.options.source.value,
            "options": self.options.as_report(),
            "checked": self.checked,
            "attempted": self.tally.attempted,
            "refreshed": counts[Outcome.REFRESHED],
            "emptySlots": self.tally.empty_slots,
            "failed": counts[Outcome.FAILED],
            "skippedNoDefault": counts[Outcome.NO_DEFAULT],
            "skippedUnsupportedDuration": counts[Outcome.UNSUPPORTED_DURATION],
            "skippedBackoff": self.skipped_backoff,
            "skippedNotConfigured": self.skipped_not_configured,
            "notStarted": self.not_started,
            # Of notStarted: held back because their provider kept failing (see providerCooldowns).
            "heldBack": sum(cooldown.held_back for cooldown in self.cooldowns),
            "providerCooldowns": [cooldown.as_report() for cooldown in self.cooldowns],
            "errors": list(self.tally.errors),
            "errorsTruncated": self.tally.errors_truncated,
            "finishedWithinBudget": self.finished_within_budget,
            "metrics": self.metrics.as_report() if self.metrics is not None else None,
            "durationMs": self.duration_ms,
            "timeBudgetMs": self.options.time_budget_ms,
            "timestamp": utc_iso(self.finished_at),
        }


class SkipReason(StrEnum):
    LOCKED = "locked"  # another run of the same source and shard holds the lock


def skipped(invocation_id: str, now: datetime, reason: SkipReason, tick: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": True,
        "skipped": True,
        "reason": reason.value,
        "invocationId": invocation_id,
        "timestamp": utc_iso(now),
    }
    if tick is not None:
        body["scheduleTime"] = utc_iso(tick)
    return body
