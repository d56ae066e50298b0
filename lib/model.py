"""Value objects read from the database: one Candidate per workspace a run may refresh."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_MEETING_DURATION = 30


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
    fetched_at: datetime | None = None  # when a run last wrote the row (duplicate tick detection)


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
