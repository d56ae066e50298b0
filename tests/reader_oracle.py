"""A test oracle: the application's cache reader, `getWorkspaceAvailabilityCache`, judging the rows
this function writes. Built from ../shared/spec/origin.md alone (never from lib/), so that a
mistake shared by the function and its own helpers cannot hide here.

The predicate, as origin.md §3.5 states it:

    **`getWorkspaceAvailabilityCache(clientId, {refreshIfStale = true, availabilitySource})`**
    - Loads the default link and settings when `refreshIfStale` is true or the request is
      DIRECT_BOOK, then normalises the source and reads the row.
    - Change detection:
      - `expectedUrl` = `resolveAvailabilityUrl(...)`, or `""` when there is no link.
      - `defaultChanged` = link and row exist and (`row.calendarLinkId != link.id` or
        `normalize(row.calendarUrl) != expectedUrl`).
      - `durationChanged` = `row.slotDurationMinutes != (settings.meetingDurationMinutes ?? 30)`.
      - `metaMissing` = `refreshIfStale` and `row.calendarType == 'calendly'` and
        `row.calendarUrl != ''` and `providerMeta.calendlyEventTypeUuid` is missing.
    - Row exists, `refreshIfStale` is true, and (`staleAt <= now` or `defaultChanged` or
      `durationChanged` or `metaMissing`): refresh synchronously, then re-read.

with the pieces it names, from the same document:

    §3.3 step 1: the default link: `SELECT id,url,type FROM "CalendarLink" WHERE "clientId"=$1
      AND "isDefault"=true LIMIT 1`, with no order
    §3.3 step 4: `normalizeCalendarUrl(s)`: trim; empty → `""`; if the value does not match
      `^https?://` (case-insensitive), prefix `https://`.
    §3.3 step 5: `resolveAvailabilityUrl(link.url, settings, src)`:
      - `base = normalizeCalendarUrl(link.url)`; if empty, return `""`.
      - If provider ≠ CALENDLY (including when there is no settings row), return `base`.
      - For CALENDLY, with every candidate normalised:
        - DIRECT_BOOK: `linkB || uriB || linkA || uriA || base`
        - DEFAULT: `linkA || uriA || base`
    §3.2: If requested ≠ DIRECT_BOOK, the result is DEFAULT. Otherwise, with `provider =
      settings.meetingBookingProvider ?? "GHL"` and all values trimmed, null treated as `""`:
      CALENDLY: neither B value set → DEFAULT; both links set and linkB == linkA → DEFAULT; both
      URIs set and uriB == uriA → DEFAULT; otherwise → DIRECT_BOOK (exact strings). Anything else
      (GHL): `ghlDirectBookCalendarId` empty → DEFAULT; `ghlDefaultCalendarId` non-empty and equal
      to it → DEFAULT; otherwise → DIRECT_BOOK.
    §6: "A Calendly cache whose uuid cannot be resolved sets `metaMissing` on every read"

Readings of the TypeScript the spec paraphrases: "trim" is JavaScript's String.prototype.trim
(ECMAScript WhiteSpace and LineTerminator, which differ from Python's str.strip: U+FEFF is
trimmed, U+001C-U+001F and U+0085 are not); the case-insensitive `^https?://` is a JavaScript
regex without the `u` flag, so only ASCII letters fold (`ſ` is not `s`); "missing" is JavaScript
falsiness, so a null or empty uuid is missing too (§6 above).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.pgserver import admin_connection

# ECMAScript WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP and category Zs) and LineTerminator.
_JS_WHITESPACE = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_HAS_SCHEME = re.compile(r"^https?://", re.IGNORECASE | re.ASCII)
# The function's own sessions say who they are (lib/dburl.py's default application_name).
FUNCTION_APPLICATION_NAME = "availability-cron"
_RECORD_WRITES = [
    'CREATE TABLE IF NOT EXISTS "_readerOracleWrites" ("clientId" text NOT NULL, "availabilitySource" text NOT NULL,'
    ' PRIMARY KEY ("clientId", "availabilitySource"))',
    """CREATE OR REPLACE FUNCTION "_readerOracleNote"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('application_name') = '"""
    + FUNCTION_APPLICATION_NAME
    + """' THEN
        INSERT INTO "_readerOracleWrites" VALUES (NEW."clientId", CAST(NEW."availabilitySource" AS text))
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$""",
    'CREATE OR REPLACE TRIGGER "_readerOracleNote" AFTER INSERT OR UPDATE ON "WorkspaceAvailabilityCache"'
    ' FOR EACH ROW EXECUTE FUNCTION "_readerOracleNote"()',
]


def js_trim(value: str) -> str:
    """JavaScript's String.prototype.trim."""
    start, end = 0, len(value)
    while start < end and value[start] in _JS_WHITESPACE:
        start += 1
    while end > start and value[end - 1] in _JS_WHITESPACE:
        end -= 1
    return value[start:end]


def normalize_calendar_url(raw: str | None) -> str:
    """origin §3.3 step 4."""
    value = js_trim(raw or "")
    if not value:
        return ""
    return value if _JS_HAS_SCHEME.match(value) else f"https://{value}"


@dataclass(frozen=True)
class Settings:
    meeting_duration_minutes: int
    provider: str
    ghl_a: str | None
    ghl_b: str | None
    link_a: str | None
    uri_a: str | None
    link_b: str | None
    uri_b: str | None


def normalize_source(requested: str, settings: Settings | None) -> str:
    """origin §3.2: the source the reader actually reads for a requested one."""
    if requested != "DIRECT_BOOK":
        return "DEFAULT"

    def trimmed(value: str | None) -> str:
        return js_trim(value or "")

    provider = settings.provider if settings else "GHL"
    if provider == "CALENDLY":
        assert settings is not None
        link_a, uri_a = trimmed(settings.link_a), trimmed(settings.uri_a)
        link_b, uri_b = trimmed(settings.link_b), trimmed(settings.uri_b)
        if not link_b and not uri_b:
            return "DEFAULT"
        if link_a and link_b and link_b == link_a:
            return "DEFAULT"
        if uri_a and uri_b and uri_b == uri_a:
            return "DEFAULT"
        return "DIRECT_BOOK"
    ghl_a = trimmed(settings.ghl_a if settings else None)
    ghl_b = trimmed(settings.ghl_b if settings else None)
    if not ghl_b:
        return "DEFAULT"
    if ghl_a and ghl_a == ghl_b:
        return "DEFAULT"
    return "DIRECT_BOOK"


def resolve_availability_url(link_url: str, settings: Settings | None, source: str) -> str:
    """origin §3.3 step 5."""
    base = normalize_calendar_url(link_url)
    if not base:
        return ""
    if settings is None or settings.provider != "CALENDLY":
        return base
    if source == "DIRECT_BOOK":
        choices = [settings.link_b, settings.uri_b, settings.link_a, settings.uri_a]
    else:
        choices = [settings.link_a, settings.uri_a]
    for choice in choices:
        normalized = normalize_calendar_url(choice)
        if normalized:  # JavaScript's ||: the first non-empty one
            return normalized
    return base


@dataclass(frozen=True)
class ReaderVerdict:
    """What the application's reader makes of one row (refreshIfStale = true, the app's default)."""

    client_id: str
    source: str
    read: bool  # False: a DIRECT_BOOK row the reader never reads (it normalises the source to DEFAULT)
    stale: bool
    default_changed: bool
    duration_changed: bool
    meta_missing: bool
    detail: str

    @property
    def looks_changed_or_incomplete(self) -> bool:
        return self.read and (self.default_changed or self.duration_changed or self.meta_missing)

    @property
    def refreshes_inline(self) -> bool:
        return self.read and (self.stale or self.looks_changed_or_incomplete)


def judge_row(connection: Any, client_id: str, source: str, now: datetime) -> ReaderVerdict | None:
    """The reader's verdict on the (clientId, source) row, or None when there is no such row."""
    links = connection.run(
        'SELECT "id", "url", "type" FROM "CalendarLink" WHERE "clientId" = :client AND "isDefault" = true LIMIT 1',
        client=client_id,
    )
    link = links[0] if links else None
    settings = _settings(connection, client_id)
    read_source = normalize_source(source, settings)
    rows = connection.run(
        'SELECT "calendarLinkId", "calendarUrl", "calendarType", "slotDurationMinutes", "providerMeta", "staleAt" '
        'FROM "WorkspaceAvailabilityCache" WHERE "clientId" = :client '
        'AND "availabilitySource" = CAST(:source AS "AvailabilitySource")',
        client=client_id,
        source=source,
    )
    if not rows:
        return None
    link_id, url, calendar_type, slot_duration, meta, stale_at = rows[0]
    expected_url = resolve_availability_url(link[1], settings, read_source) if link else ""
    default_changed = link is not None and (link_id != link[0] or normalize_calendar_url(url) != expected_url)
    wanted_duration = settings.meeting_duration_minutes if settings else 30
    duration_changed = slot_duration != wanted_duration
    uuid = meta.get("calendlyEventTypeUuid") if isinstance(meta, dict) else None
    meta_missing = calendar_type == "calendly" and url != "" and not uuid
    detail = (
        f"row: link={link_id!r} url={url!r} type={calendar_type!r} duration={slot_duration} meta={meta!r}; "
        f"reader: link={link[0] if link else None!r} expectedUrl={expected_url!r} duration={wanted_duration}"
    )
    return ReaderVerdict(
        client_id=client_id,
        source=source,
        read=read_source == source,
        stale=stale_at.replace(tzinfo=UTC) <= now,
        default_changed=default_changed,
        duration_changed=duration_changed,
        meta_missing=meta_missing,
        detail=detail,
    )


def _settings(connection: Any, client_id: str) -> Settings | None:
    found = connection.run(
        'SELECT "meetingDurationMinutes", CAST("meetingBookingProvider" AS text), "ghlDefaultCalendarId", '
        '"ghlDirectBookCalendarId", "calendlyEventTypeLink", "calendlyEventTypeUri", '
        '"calendlyDirectBookEventTypeLink", "calendlyDirectBookEventTypeUri" '
        'FROM "WorkspaceSettings" WHERE "clientId" = :client',
        client=client_id,
    )
    return Settings(*found[0]) if found else None


def record_function_writes(connection: Any) -> None:
    """From now on, remember which rows the function's own sessions insert or update."""
    for statement in _RECORD_WRITES:
        connection.run(statement)


def written_rows(connection: Any) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in connection.run('SELECT * FROM "_readerOracleWrites" ORDER BY 1, 2')]


def judge_written_rows(connection: Any, now: datetime | None = None) -> list[ReaderVerdict]:
    """The reader's verdict on every row the function wrote since record_function_writes."""
    moment = now or datetime.now(UTC)
    verdicts = [judge_row(connection, client_id, source, moment) for client_id, source in written_rows(connection)]
    return [verdict for verdict in verdicts if verdict is not None]


@pytest.fixture(autouse=True, name="reader_accepts_written_rows")
def reader_fixture(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """`reader_accepts_written_rows`, autouse in the modules that import it: after a test that has a
    database, every row the function wrote must look neither changed nor incomplete to the
    application's reader. A test that writes a row the reader must refresh (say, a failure whose uuid
    could not be learnt) requests the fixture and names the row in the yielded dict: {clientId: why}."""
    if "db_url" not in request.fixturenames:
        yield {}
        return
    connection = admin_connection(request.getfixturevalue("db_url"))
    try:
        record_function_writes(connection)
        expected: dict[str, str] = {}
        yield expected
        verdicts = judge_written_rows(connection)
    finally:
        connection.close()
    rejected = [v for v in verdicts if v.looks_changed_or_incomplete and v.client_id not in expected]
    assert not rejected, "the application's reader would refresh these fresh rows inline:\n" + "\n".join(
        f"{v.client_id}/{v.source}: changed={v.default_changed} duration={v.duration_changed} "
        f"metaMissing={v.meta_missing}; {v.detail}"
        for v in rejected
    )
    needless = [v.client_id for v in verdicts if v.client_id in expected and not v.looks_changed_or_incomplete]
    assert not needless, f"rows the test expected the reader to refresh, but it would not: {needless}"
