"""The status view's own SQL (reads only): the cache rows without their slots, one workspace's
record, and one row's slot summary. Rows become frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devtools.status.reader import StoredRow
from lib.db import Database
from lib.model import Source

# Every cache row (or one workspace's), without slotsUtc: the slots are ~20 kB a row, and the
# overview needs none of them. Times come as epoch milliseconds (timestamp(3) values are UTC):
# pg8000 parses timestamp text with strptime, which was most of the view's time at 10,000 rows.
ROWS_SQL = """
SELECT w."clientId", CAST(w."availabilitySource" AS text), w."calendarLinkId", w."calendarType",
       w."calendarUrl", w."slotDurationMinutes", w."providerMeta",
       CAST(extract(epoch FROM w."rangeStart") * 1000 AS bigint),
       CAST(extract(epoch FROM w."rangeEnd") * 1000 AS bigint),
       CAST(extract(epoch FROM w."fetchedAt") * 1000 AS bigint),
       CAST(extract(epoch FROM w."staleAt") * 1000 AS bigint),
       w."lastError"
FROM "WorkspaceAvailabilityCache" w
WHERE CAST(:client_id AS text) IS NULL OR w."clientId" = CAST(:client_id AS text)
ORDER BY w."clientId", w."availabilitySource"
"""

CLIENT_SQL = """
SELECT c."id", c."name", c."userId", c."createdAt",
       (SELECT count(*) FROM "CalendarLink" l WHERE l."clientId" = c."id" AND l."isDefault"),
       (SELECT count(*) FROM "CalendarLink" l WHERE l."clientId" = c."id")
FROM "Client" c
WHERE c."id" = :client_id
"""

# The slots of one row: how many, how many still ahead (the reader drops the past ones), first, last.
# Stored slots are sorted ISO text, so text order is time order.
SLOTS_SQL = """
SELECT CASE WHEN jsonb_typeof(w."slotsUtc") = 'array' THEN jsonb_array_length(w."slotsUtc") END,
       (SELECT count(*) FROM jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(w."slotsUtc") = 'array' THEN w."slotsUtc" ELSE '[]'::jsonb END) AS slot
        WHERE slot >= to_char(CAST(:now AS timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
       CASE WHEN jsonb_typeof(w."slotsUtc") = 'array' THEN w."slotsUtc" ->> 0 END,
       CASE WHEN jsonb_typeof(w."slotsUtc") = 'array' THEN w."slotsUtc" ->> -1 END
FROM "WorkspaceAvailabilityCache" w
WHERE w."clientId" = :client_id AND w."availabilitySource" = CAST(:source AS "AvailabilitySource")
"""


@dataclass(frozen=True)
class CacheRow:
    """One `"WorkspaceAvailabilityCache"` row, without its slots."""

    client_id: str
    source: Source
    calendar_link_id: str | None
    calendar_type: str
    calendar_url: str
    slot_duration_minutes: int
    provider_meta: Any
    range_start: datetime
    range_end: datetime
    fetched_at: datetime
    stale_at: datetime
    last_error: str | None

    @classmethod
    def from_row(cls, row: list[Any]) -> CacheRow:
        client_id, source, link_id, calendar_type, url, duration, meta, start, end, fetched, stale, error = row
        return cls(
            client_id,
            Source(source),
            link_id,
            calendar_type,
            url,
            duration,
            meta,
            _from_epoch_ms(start),
            _from_epoch_ms(end),
            _from_epoch_ms(fetched),
            _from_epoch_ms(stale),
            error,
        )

    def stored(self) -> StoredRow:
        """The columns the application's reader compares."""
        return StoredRow(
            self.calendar_link_id,
            self.calendar_type,
            self.calendar_url,
            self.slot_duration_minutes,
            self.provider_meta,
            self.stale_at,
        )


@dataclass(frozen=True)
class ClientRecord:
    id: str
    name: str
    agency: str  # Client.userId, the fairness bucket
    created_at: datetime
    default_links: int  # more than one: the application's reader may pick another than the function
    links: int


@dataclass(frozen=True)
class SlotSummary:
    count: int | None  # None: slotsUtc is not an array
    ahead: int
    first: str | None
    last: str | None


def cache_rows(db: Database, client_id: str | None = None) -> list[CacheRow]:
    return [CacheRow.from_row(row) for row in db.run(ROWS_SQL, client_id=client_id)]


def client_record(db: Database, client_id: str) -> ClientRecord | None:
    rows = db.run(CLIENT_SQL, client_id=client_id)
    if not rows:
        return None
    client, name, agency, created, default_links, links = rows[0]
    return ClientRecord(client, name or "", agency or "", _utc(created), default_links, links)


def slot_summary(db: Database, client_id: str, source: Source, now: datetime) -> SlotSummary:
    rows = db.run(SLOTS_SQL, client_id=client_id, source=source.value, now=now.isoformat())
    count, ahead, first, last = rows[0] if rows else (None, 0, None, None)
    return SlotSummary(count, ahead, first, last)


def _from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
