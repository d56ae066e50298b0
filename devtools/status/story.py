"""One workspace's whole story: its default link and settings, what the function's next run reads
and does, its cache rows, and whether the application's reader takes each row as fresh."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from devtools.status import function_view
from devtools.status.queries import CacheRow, ClientRecord, SlotSummary, cache_rows, client_record, slot_summary
from devtools.status.reader import ReaderVerdict, reader_verdict
from lib.db import Database
from lib.model import Candidate, DefaultLink, Source, WorkspaceConfig


@dataclass(frozen=True)
class SourceStory:
    source: Source
    reading: function_view.Reading
    row: CacheRow | None
    slots: SlotSummary | None
    # None: a DIRECT_BOOK row of a workspace without a distinct direct-book calendar, which the
    # application never reads (its direct-book requests read the DEFAULT row).
    verdict: ReaderVerdict | None

    @property
    def next_run(self) -> str:
        """What the function's next run of this source does for the workspace, in words."""
        reading = self.reading
        if not reading.eligible:
            return "skipped (skippedNotConfigured): no direct-book calendar distinct from the default one"
        if reading.in_backoff:
            assert self.row is not None  # a backoff is a row's staleAt
            return f"skipped (skippedBackoff) until staleAt {self.row.stale_at:%Y-%m-%d %H:%M:%S} UTC"
        if reading.no_request_reason is not None:
            return f"writes a configuration error without calling a provider: {reading.no_request_reason}"
        return f"calls {reading.provider} for {reading.url}"

    def as_dict(self) -> dict[str, Any]:
        row = self.row
        return {
            "source": self.source.value,
            "function": {
                "eligible": self.reading.eligible,
                "url": self.reading.url,
                "calendarType": self.reading.calendar_type,
                "provider": self.reading.provider or None,
                "inBackoff": self.reading.in_backoff,
                "nextRun": self.next_run,
            },
            "row": None if row is None else _row_dict(row),
            "slots": None if self.slots is None else asdict(self.slots),
            "lastError": None if row is None else row.last_error,
            "reader": None if self.verdict is None else {"fresh": self.verdict.fresh, "reasons": self.verdict.reasons},
        }


@dataclass(frozen=True)
class Story:
    now: datetime
    client: ClientRecord
    link: DefaultLink | None  # the one the function reads (latest updated when there are several)
    config: WorkspaceConfig | None  # None: no WorkspaceSettings row (30 min, GHL)
    sources: tuple[SourceStory, ...]

    def as_dict(self) -> dict[str, Any]:
        client = self.client
        return {
            "now": self.now.isoformat(),
            "clientId": client.id,
            "name": client.name,
            "agency": client.agency,
            "createdAt": client.created_at.isoformat(),
            "links": client.links,
            "defaultLinks": client.default_links,
            "defaultLink": None if self.link is None else asdict(self.link),
            "settings": None if self.config is None else _settings_dict(self.config),
            "sources": [source.as_dict() for source in self.sources],
        }


def load_story(db: Database, client_id: str, now: datetime) -> Story | None:
    """The workspace's story, or None when there is no workspace with that id."""
    client = client_record(db, client_id)
    if client is None:
        return None
    rows = {row.source: row for row in cache_rows(db, client_id)}
    stories = []
    candidate: Candidate | None = None
    for source in Source:
        found = function_view.load_workspaces(db, source, client_id)
        if not found:  # deleted between the two reads of one snapshot: cannot happen, but say so plainly
            return None
        candidate = found[0]
        reading = function_view.reading(candidate, source, now)
        row = rows.get(source)
        verdict = None
        if reading.eligible:
            stored = row.stored() if row is not None else None
            verdict = reader_verdict(stored, function_view.workspace_now(candidate, source), now)
        slots = slot_summary(db, client_id, source, now) if row is not None else None
        stories.append(SourceStory(source, reading, row, slots, verdict))
    assert candidate is not None
    return Story(now, client, candidate.link, candidate.config, tuple(stories))


def _row_dict(row: CacheRow) -> dict[str, Any]:
    return {
        "calendarLinkId": row.calendar_link_id,
        "calendarType": row.calendar_type,
        "calendarUrl": row.calendar_url,
        "slotDurationMinutes": row.slot_duration_minutes,
        "providerMeta": row.provider_meta,
        "rangeStart": row.range_start.isoformat(),
        "rangeEnd": row.range_end.isoformat(),
        "fetchedAt": row.fetched_at.isoformat(),
        "staleAt": row.stale_at.isoformat(),
    }


def _settings_dict(config: WorkspaceConfig) -> dict[str, Any]:
    return {
        "meetingDurationMinutes": config.meeting_duration_minutes,
        "meetingBookingProvider": config.booking_provider,
        "ghlDefaultCalendarId": config.ghl_default_calendar_id,
        "ghlDirectBookCalendarId": config.ghl_direct_book_calendar_id,
        "calendlyEventTypeLink": config.calendly_link,
        "calendlyEventTypeUri": config.calendly_uri,
        "calendlyDirectBookEventTypeLink": config.calendly_direct_book_link,
        "calendlyDirectBookEventTypeUri": config.calendly_direct_book_uri,
    }
