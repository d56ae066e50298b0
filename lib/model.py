"""The run's vocabulary: which rows a run refreshes (Source, Shard, Mode), the workspaces it reads
from the database (Candidate and its parts) and the metrics of the state it leaves behind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

DEFAULT_MEETING_DURATION = 30


class Mode(StrEnum):
    ALL = "all"
    DUE = "due"


class Source(StrEnum):
    """Which cache rows a run refreshes; the value is the database enum label."""

    DEFAULT = "DEFAULT"
    DIRECT_BOOK = "DIRECT_BOOK"


@dataclass(frozen=True)
class Shard:
    """The `index`-th of `count` stable partitions of the workspaces (by a hash of clientId, in SQL)."""

    index: int
    count: int

    def as_report(self) -> dict[str, int]:
        return {"shard": self.index, "shards": self.count}


UNSHARDED = Shard(0, 1)


@dataclass(frozen=True)
class DefaultLink:
    """The workspace's default CalendarLink (the latest updated one when there are several)."""

    id: str
    url: str
    type: str


@dataclass(frozen=True)
class WorkspaceConfig:
    """The WorkspaceSettings columns the refresh reads."""

    meeting_duration_minutes: int
    booking_provider: str  # "GHL" or "CALENDLY"
    ghl_default_calendar_id: str | None
    ghl_direct_book_calendar_id: str | None
    calendly_link: str | None
    calendly_uri: str | None
    calendly_direct_book_link: str | None
    calendly_direct_book_uri: str | None


@dataclass(frozen=True)
class CachedState:
    """What the existing cache row tells the refresh (never its slots: failures filter them in SQL)."""

    calendar_link_id: str | None
    calendar_url: str
    provider_meta: dict[str, Any] | None
    stale_at: datetime
    last_error: str | None


@dataclass(frozen=True)
class Candidate:
    """A workspace selected for a run, with everything its refresh needs from the database."""

    client_id: str
    user_id: str
    created_at: datetime
    link: DefaultLink | None
    config: WorkspaceConfig | None
    cache: CachedState | None

    @property
    def meeting_duration(self) -> int:
        return self.config.meeting_duration_minutes if self.config else DEFAULT_MEETING_DURATION


@dataclass(frozen=True)
class Metrics:
    """The cache rows of one source (and shard) as a run leaves them (origin §4, measured after the run)."""

    total_caches: int
    due_caches: int
    erroring_caches: int
    oldest_successful_age_minutes: int | None
    oldest_successful_client_id: str | None

    def as_report(self) -> dict[str, Any]:
        return {
            "totalCaches": self.total_caches,
            "dueCaches": self.due_caches,
            "erroringCaches": self.erroring_caches,
            "oldestSuccessfulRangeStartAgeMinutes": self.oldest_successful_age_minutes,
            "oldestSuccessfulClientId": self.oldest_successful_client_id,
        }
