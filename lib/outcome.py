"""What one workspace's refresh produced: the kind of outcome and the cache row it leads to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

NO_DEFAULT_LINK_ERROR = "No default calendar link configured"
UNSUPPORTED_DURATION_PREFIX = "Unsupported meeting duration"
NO_SLOTS_ERROR = "No availability slots found"
NO_DEFAULT_BACKOFF = timedelta(hours=24)
UNSUPPORTED_DURATION_BACKOFF = timedelta(hours=2)


class Outcome(StrEnum):
    REFRESHED = "refreshed"  # the provider answered; the row holds its slots (maybe none)
    FAILED = "failed"  # provider, network or parse failure, unsupported link
    NO_DEFAULT = "skippedNoDefault"
    UNSUPPORTED_DURATION = "skippedUnsupportedDuration"


def unsupported_duration_error(minutes: int) -> str:
    return f"{UNSUPPORTED_DURATION_PREFIX} ({minutes}m). Set Meeting Duration to 30 minutes to use live availability."


@dataclass(frozen=True, kw_only=True)
class RefreshOutcome:
    """One workspace's result and the cache row to write for it.

    When `keeps_previous_slots` is set (a provider failure), an existing row keeps its
    future slots, `rangeStart`/`rangeEnd`, URL, type and provider ids; only `lastError`,
    `fetchedAt` and `staleAt` change. The other fields then only serve a first insert.
    """

    client_id: str
    outcome: Outcome
    fetched_at: datetime
    stale_at: datetime
    range_end: datetime
    error: str | None
    calendar_link_id: str | None
    calendar_type: str
    calendar_url: str
    slot_duration_minutes: int
    slots: tuple[str, ...]
    provider_meta: dict[str, Any] | None
    keeps_previous_slots: bool = False
    # What the refresh says about its provider's API, for the cool-down (lib/throttle.py):
    # `provider_trouble` is set when the API itself is in trouble (429, 5xx, timeout, refused
    # connection), as opposed to this workspace's link being wrong; `provider_silent` when the
    # outcome says nothing either way (the run's time ran out, or a host the tenant owns failed).
    provider_trouble: str | None = None
    provider_silent: bool = False

    @property
    def last_error(self) -> str | None:
        if self.outcome is Outcome.REFRESHED and not self.slots:
            return NO_SLOTS_ERROR
        return self.error
