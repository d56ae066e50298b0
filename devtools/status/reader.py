"""The application's cache reader (origin spec §3.5): would it serve a row as it is, or refresh it first?

This is the product's statement of the predicate, used by the status view. The application's
`getWorkspaceAvailabilityCache(clientId, {refreshIfStale: true})` (its default, used when a lead
is offered times) refreshes synchronously, before answering, when

- there is no row, or
- `staleAt <= now`, or
- `defaultChanged`: the workspace has a default link and the row's `calendarLinkId` is not that
  link's id, or the row's normalised `calendarUrl` is not the URL the link resolves to, or
- `durationChanged`: the row's `slotDurationMinutes` is not the workspace's meeting length
  (`meetingDurationMinutes`, 30 without a settings row), or
- `metaMissing`: the row's `calendarType` is exactly `calendly`, its `calendarUrl` is not empty and
  its `providerMeta` has no (truthy) `calendlyEventTypeUuid`.

Otherwise it takes the row as fresh. Callers with `refreshIfStale: false` (EmailBison) serve any
row as it is; this verdict is about the default path. There is no backoff logic in the reader: a
row in backoff carries a future `staleAt`, so it is fresh unless a change flag fires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lib.links import normalize_calendar_url

NO_ROW = "no cache row"
STALE = "staleAt has passed"
LINK_CHANGED = "the default link is not the row's calendarLinkId"
URL_CHANGED = "the link resolves to another URL than the row's calendarUrl"
DURATION_CHANGED = "the meeting length differs from the row's slotDurationMinutes"
META_MISSING = "a Calendly row without providerMeta.calendlyEventTypeUuid"


@dataclass(frozen=True)
class StoredRow:
    """The cache row's columns the reader compares."""

    calendar_link_id: str | None
    calendar_type: str
    calendar_url: str
    slot_duration_minutes: int
    provider_meta: Any
    stale_at: datetime


@dataclass(frozen=True)
class WorkspaceNow:
    """What the reader compares the row with: the workspace's current default link and settings."""

    link_id: str | None  # None: no default link (then defaultChanged cannot fire)
    expected_url: str  # resolveAvailabilityUrl(link, settings, source); '' without a link
    meeting_duration_minutes: int  # settings.meetingDurationMinutes ?? 30


@dataclass(frozen=True)
class ReaderVerdict:
    """`fresh`: served as it is; otherwise `reasons` says why the reader would refresh it first."""

    fresh: bool
    reasons: tuple[str, ...]


def reader_verdict(row: StoredRow | None, workspace: WorkspaceNow, now: datetime) -> ReaderVerdict:
    """Whether the application's default read path takes `row` as fresh at `now` (rules above)."""
    if row is None:
        return ReaderVerdict(False, (NO_ROW,))
    reasons: list[str] = []
    if row.stale_at <= now:
        reasons.append(STALE)
    if workspace.link_id is not None:
        if row.calendar_link_id != workspace.link_id:
            reasons.append(LINK_CHANGED)
        if normalize_calendar_url(row.calendar_url) != workspace.expected_url:
            reasons.append(URL_CHANGED)
    if row.slot_duration_minutes != workspace.meeting_duration_minutes:
        reasons.append(DURATION_CHANGED)
    if row.calendar_type == "calendly" and row.calendar_url != "" and not _has_event_type_uuid(row.provider_meta):
        reasons.append(META_MISSING)
    return ReaderVerdict(not reasons, tuple(reasons))


def _has_event_type_uuid(meta: Any) -> bool:
    """JavaScript's `!!providerMeta?.calendlyEventTypeUuid`: missing, null, '', 0 and false count as missing."""
    if not isinstance(meta, dict):
        return False
    value = meta.get("calendlyEventTypeUuid")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return not math.isnan(value) and value != 0  # NaN and 0 are falsy in JavaScript
    return not (isinstance(value, str) and value == "")  # any other JSON value (a list, an object) is truthy
