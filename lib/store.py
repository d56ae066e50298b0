"""All SQL of the run: the one candidate query, the batched cache writes and the metrics query."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lib import jsonfast
from lib.db import CONSTRAINT_VIOLATED, Database
from lib.errors import DatabaseError
from lib.model import (
    DEFAULT_MEETING_DURATION,
    CachedState,
    Candidate,
    DefaultLink,
    Metrics,
    Shard,
    Source,
    WorkspaceConfig,
)
from lib.outcome import RefreshOutcome

# A workspace's shard: the first 32 bits of md5(clientId) as an unsigned number, modulo the number
# of shards. md5 is stable across PostgreSQL versions and platforms (hashtext is not promised to
# be), and it spreads ids of any shape evenly. Python's equivalent is in shard_of().
_IN_SHARD = """(CAST(:shards AS integer) = 1
    OR CAST(CAST('x' || substr(md5({column}), 1, 8) AS bit(32)) AS bigint) % CAST(:shards AS integer)
       = CAST(:shard AS integer))"""
_WORKSPACE_IN_SHARD = _IN_SHARD.format(column='c."id"')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The candidate query's columns: the name each value is read by, and the expression that gives it.
_CANDIDATE_COLUMNS = {
    "clientId": 'c."id"',
    "userId": 'c."userId"',
    "createdAt": 'c."createdAt"',
    "linkId": 'l."id"',
    "linkUrl": 'l."url"',
    "linkType": 'l."type"',
    "hasSettings": 's."id" IS NOT NULL',
    "meetingDurationMinutes": 's."meetingDurationMinutes"',
    "meetingBookingProvider": 'CAST(s."meetingBookingProvider" AS text)',
    "ghlDefaultCalendarId": 's."ghlDefaultCalendarId"',
    "ghlDirectBookCalendarId": 's."ghlDirectBookCalendarId"',
    "calendlyEventTypeLink": 's."calendlyEventTypeLink"',
    "calendlyEventTypeUri": 's."calendlyEventTypeUri"',
    "calendlyDirectBookEventTypeLink": 's."calendlyDirectBookEventTypeLink"',
    "calendlyDirectBookEventTypeUri": 's."calendlyDirectBookEventTypeUri"',
    "hasCache": 'w."id" IS NOT NULL',
    "cachedLinkId": 'w."calendarLinkId"',
    "cachedUrl": 'w."calendarUrl"',
    "cachedMeta": 'w."providerMeta"',
    "staleAt": 'w."staleAt"',
    "lastError": 'w."lastError"',
}
_CANDIDATE_SELECT = ",\n       ".join(f'{expression} AS "{name}"' for name, expression in _CANDIDATE_COLUMNS.items())

# Every workspace a run may refresh, with all its refresh needs, in one round trip.
# The default link is deterministic when there are several: latest updatedAt, then id.
# DEFAULT runs also pick up rows whose workspace lost its default link, so they get cleared.
CANDIDATES_SQL = f"""
WITH default_link AS (
    SELECT DISTINCT ON ("clientId") "clientId", "id", "url", "type"
    FROM "CalendarLink"
    WHERE "isDefault"
      AND (CAST(:client_id AS text) IS NULL OR "clientId" = CAST(:client_id AS text))
    ORDER BY "clientId", "updatedAt" DESC NULLS LAST, "id" ASC
)
SELECT {_CANDIDATE_SELECT}
FROM "Client" c
LEFT JOIN default_link l ON l."clientId" = c."id"
LEFT JOIN "WorkspaceSettings" s ON s."clientId" = c."id"
LEFT JOIN "WorkspaceAvailabilityCache" w
       ON w."clientId" = c."id" AND w."availabilitySource" = CAST(:source AS "AvailabilitySource")
WHERE (CAST(:client_id AS text) IS NULL OR c."id" = CAST(:client_id AS text))
  AND {_WORKSPACE_IN_SHARD}
  AND (l."id" IS NOT NULL
       OR (w."id" IS NOT NULL AND CAST(:source AS text) = 'DEFAULT')
       OR CAST(:client_id AS text) IS NOT NULL)
"""

# The same rows as one JSON text, each row an array in _CANDIDATE_COLUMNS' order. pg8000 reads rows in
# Python, column by column (about 35 µs a candidate, most of the run's start at 10,000 workspaces);
# this text is one value, decoded in C. NULL when there are no rows.
CANDIDATES_AS_JSON_SQL = f"""
SELECT CAST(json_agg(json_build_array({", ".join(f'candidate."{name}"' for name in _CANDIDATE_COLUMNS)})) AS text)
FROM ({CANDIDATES_SQL}) AS candidate
"""

_ROW_COLUMNS = """
    "id" text, "clientId" text, "calendarLinkId" text, "calendarType" text, "calendarUrl" text,
    "slotDurationMinutes" integer, "rangeStart" timestamp(3), "rangeEnd" timestamp(3), "slotsUtc" jsonb,
    "providerMeta" jsonb, "fetchedAt" timestamp(3), "staleAt" timestamp(3), "lastError" text
"""

# Rows whose workspace or link was deleted during the run are left out (or unlinked) instead of
# failing the whole batch on a foreign key.
_INSERT_ROWS = f"""
INSERT INTO "WorkspaceAvailabilityCache" AS w (
    "id", "clientId", "availabilitySource", "calendarLinkId", "calendarType", "calendarUrl",
    "slotDurationMinutes", "rangeStart", "rangeEnd", "slotsUtc", "providerMeta", "fetchedAt",
    "staleAt", "lastError", "updatedAt")
SELECT r."id", r."clientId", CAST(:source AS "AvailabilitySource"),
       (SELECT l."id" FROM "CalendarLink" l WHERE l."id" = r."calendarLinkId"),
       r."calendarType", r."calendarUrl", r."slotDurationMinutes", r."rangeStart", r."rangeEnd",
       r."slotsUtc", r."providerMeta", r."fetchedAt", r."staleAt", r."lastError", r."fetchedAt"
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_ROW_COLUMNS})
WHERE EXISTS (SELECT 1 FROM "Client" c WHERE c."id" = r."clientId")
"""

# A complete new row: every refreshed or configuration outcome.
# Slots and provider ids equal to the stored ones keep the stored value: the row then points at
# the same TOAST data instead of writing a new ~20 kB copy of the slots to the table and the WAL
# (most refreshes find the same slots as a minute ago).
WRITE_ROWS_SQL = f"""{_INSERT_ROWS}
ON CONFLICT ("clientId", "availabilitySource") DO UPDATE SET
    "calendarLinkId" = EXCLUDED."calendarLinkId",
    "calendarType" = EXCLUDED."calendarType",
    "calendarUrl" = EXCLUDED."calendarUrl",
    "slotDurationMinutes" = EXCLUDED."slotDurationMinutes",
    "rangeStart" = EXCLUDED."rangeStart",
    "rangeEnd" = EXCLUDED."rangeEnd",
    "slotsUtc" = CASE WHEN w."slotsUtc" = EXCLUDED."slotsUtc" THEN w."slotsUtc" ELSE EXCLUDED."slotsUtc" END,
    "providerMeta" = CASE WHEN w."providerMeta" = EXCLUDED."providerMeta"
                          THEN w."providerMeta" ELSE EXCLUDED."providerMeta" END,
    "fetchedAt" = EXCLUDED."fetchedAt",
    "staleAt" = EXCLUDED."staleAt",
    "lastError" = EXCLUDED."lastError",
    "updatedAt" = EXCLUDED."updatedAt"
RETURNING w."clientId"
"""

# A provider failure: an existing row keeps its slots minus the past ones (compared in the exact
# ISO form, which sorts like time; anything not in that form is dropped), its range and its link.
_FUTURE_SLOTS = """COALESCE((
        SELECT jsonb_agg(to_jsonb(slot) ORDER BY slot)
        FROM jsonb_array_elements_text(
                 CASE WHEN jsonb_typeof(w."slotsUtc") = 'array' THEN w."slotsUtc" ELSE '[]'::jsonb END) AS slot
        WHERE slot ~ '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$'
          AND slot >= to_char(EXCLUDED."fetchedAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    ), '[]'::jsonb)"""
WRITE_FAILURES_SQL = f"""{_INSERT_ROWS}
ON CONFLICT ("clientId", "availabilitySource") DO UPDATE SET
    -- Rewritten only when a slot has passed (see WRITE_ROWS_SQL on why an equal value is kept).
    "slotsUtc" = CASE WHEN w."slotsUtc" = {_FUTURE_SLOTS} THEN w."slotsUtc" ELSE {_FUTURE_SLOTS} END,
    "fetchedAt" = EXCLUDED."fetchedAt",
    "staleAt" = EXCLUDED."staleAt",
    "lastError" = EXCLUDED."lastError",
    "updatedAt" = EXCLUDED."updatedAt"
RETURNING w."clientId"
"""

# Metrics of the state a run leaves behind, for this source, in one round trip.
METRICS_SQL = f"""
SELECT count(*),
       count(*) FILTER (WHERE w."staleAt" <= CAST(:now AS timestamp(3))),
       count(*) FILTER (WHERE w."lastError" IS NOT NULL),
       oldest."clientId", oldest."rangeStart"
FROM "WorkspaceAvailabilityCache" w
LEFT JOIN LATERAL (
    SELECT o."clientId", o."rangeStart" FROM "WorkspaceAvailabilityCache" o
    WHERE o."availabilitySource" = CAST(:source AS "AvailabilitySource") AND o."lastError" IS NULL
      AND {_IN_SHARD.format(column='o."clientId"')}
    ORDER BY o."rangeStart" ASC, o."clientId" ASC LIMIT 1
) AS oldest ON true
WHERE w."availabilitySource" = CAST(:source AS "AvailabilitySource")
  AND {_IN_SHARD.format(column='w."clientId"')}
GROUP BY oldest."clientId", oldest."rangeStart"
"""


def shard_of(client_id: str, shards: int) -> int:
    """The shard of a workspace, computed as _IN_SHARD does in SQL."""
    digest = hashlib.md5(client_id.encode("utf-8"), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % shards


def load_candidates(db: Database, source: Source, client_id: str | None, shard: Shard) -> list[Candidate]:
    [[text]] = db.run(
        CANDIDATES_AS_JSON_SQL, source=source.value, client_id=client_id, shard=shard.index, shards=shard.count
    )
    return [_candidate_from_row(row) for row in jsonfast.loads(text.encode("utf-8"))] if text is not None else []


def write_outcomes(db: Database, source: Source, outcomes: Sequence[RefreshOutcome]) -> set[str]:
    """Upsert the rows of these outcomes in at most two statements; returns the client ids written.

    A row the database refuses (a workspace deleted between the candidate query and this write, whose
    foreign key then fails the whole statement) costs only itself: the statement is repeated one row
    at a time and the refused rows are left out of the ids returned.
    """
    written: set[str] = set()
    complete = [_row_json(outcome) for outcome in outcomes if not outcome.keeps_previous_slots]
    failures = [_row_json(outcome) for outcome in outcomes if outcome.keeps_previous_slots]
    for sql, rows in ((WRITE_ROWS_SQL, complete), (WRITE_FAILURES_SQL, failures)):
        if not rows:
            continue
        try:
            written.update(_upsert(db, sql, source, rows))
        except DatabaseError as exc:
            if exc.kind != CONSTRAINT_VIOLATED:
                raise
            written.update(_upsert_one_by_one(db, sql, source, rows))
    return written


def _upsert(db: Database, sql: str, source: Source, rows: Sequence[str]) -> set[str]:
    result = db.run(sql, source=source.value, rows="[" + ",".join(rows) + "]")
    return {row[0] for row in result}


def _upsert_one_by_one(db: Database, sql: str, source: Source, rows: Sequence[str]) -> set[str]:
    written: set[str] = set()
    for row in rows:
        try:
            written.update(_upsert(db, sql, source, [row]))
        except DatabaseError as exc:
            if exc.kind != CONSTRAINT_VIOLATED:
                raise
    return written


def read_metrics(db: Database, source: Source, now: datetime, shard: Shard) -> Metrics:
    rows = db.run(METRICS_SQL, source=source.value, now=timestamp_text(now), shard=shard.index, shards=shard.count)
    if not rows:
        return Metrics(0, 0, 0, None, None)
    total, due, erroring, oldest_client, oldest_start = rows[0]
    age = None
    if oldest_start is not None:
        elapsed_minutes = (now - oldest_start.replace(tzinfo=UTC)).total_seconds() / 60
        age = math.floor(elapsed_minutes + 0.5)  # JavaScript's Math.round, as the origin computed it
    return Metrics(total, due, erroring, age, oldest_client)


def timestamp_text(moment: datetime) -> str:
    """A UTC instant as timestamp(3) text (milliseconds, no zone), the way Prisma stores it."""
    # isoformat truncates to the millisecond, as the column does; it is a C call, where strftime is not.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def _row_json(outcome: RefreshOutcome) -> str:
    row = {
        "id": str(uuid.uuid4()),
        "clientId": outcome.client_id,
        "calendarLinkId": outcome.calendar_link_id,
        "calendarType": outcome.calendar_type,
        "calendarUrl": outcome.calendar_url,
        "slotDurationMinutes": outcome.slot_duration_minutes,
        "rangeStart": timestamp_text(outcome.fetched_at),
        "rangeEnd": timestamp_text(outcome.range_end),
        "providerMeta": outcome.provider_meta,
        "fetchedAt": timestamp_text(outcome.fetched_at),
        "staleAt": timestamp_text(outcome.stale_at),
        "lastError": outcome.last_error,
    }
    head = jsonfast.dumps(row)
    if not _storable_text(head):
        row = _storable(row)
        head = jsonfast.dumps(row)
    # The slots are our own ISO text (lib/slots.py): always storable, and joined into the text at once.
    return jsonfast.object_with_strings(row, "slotsUtc", outcome.slots, head=head)


def _storable_text(text: str) -> bool:
    """Whether a row's JSON needs no `_storable` walk, as nearly every row: no NUL (JSON writes it
    `\\u0000`; the six characters in a text are a false alarm that only costs the walk) and no lone
    surrogate (the text then encodes as UTF-8)."""
    if "\\u0000" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable(value: Any) -> Any:
    """`value` with every text PostgreSQL can store: NUL removed, lone surrogates replaced.

    Provider answers and tenant URLs end up in lastError and providerMeta; one such character in
    one row would fail the whole multi-row statement, and with it the batch.
    """
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def _instant(text: str | None) -> datetime | None:
    """A `timestamp(3)` column as JSON writes it ("2026-11-30T03:40:46.487"), read as UTC; None for NULL
    and for what no datetime can hold (infinity, a year BC or beyond 9999)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


def _candidate_from_row(values: list[Any]) -> Candidate:
    row = dict(zip(_CANDIDATE_COLUMNS, values, strict=True))
    link = None
    if row["linkId"] is not None:
        link = DefaultLink(row["linkId"], row["linkUrl"] or "", row["linkType"] or "")
    config = None
    if row["hasSettings"]:
        duration = row["meetingDurationMinutes"]
        config = WorkspaceConfig(
            meeting_duration_minutes=duration if duration is not None else DEFAULT_MEETING_DURATION,
            booking_provider=row["meetingBookingProvider"] or "GHL",
            ghl_default_calendar_id=row["ghlDefaultCalendarId"],
            ghl_direct_book_calendar_id=row["ghlDirectBookCalendarId"],
            calendly_link=row["calendlyEventTypeLink"],
            calendly_uri=row["calendlyEventTypeUri"],
            calendly_direct_book_link=row["calendlyDirectBookEventTypeLink"],
            calendly_direct_book_uri=row["calendlyDirectBookEventTypeUri"],
        )
    cache = None
    if row["hasCache"]:
        meta = row["cachedMeta"]
        cache = CachedState(
            calendar_link_id=row["cachedLinkId"],
            calendar_url=row["cachedUrl"] or "",
            provider_meta=meta if isinstance(meta, dict) else None,
            stale_at=_instant(row["staleAt"]) or _EPOCH,  # unreadable: due now, the safe side
            last_error=row["lastError"],
        )
    created = _instant(row["createdAt"]) or _EPOCH
    return Candidate(row["clientId"], row["userId"] or "", created, link, config, cache)
