"""The candidate query, read as one JSON text (lib/store.py, CANDIDATES_AS_JSON_SQL): every column comes
back with the value and type the workspace's rows hold, awkward texts and millisecond times included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.db import connect
from lib.dburl import parse_database_url
from lib.model import UNSHARDED, CachedState, Candidate, DefaultLink, Source, WorkspaceConfig
from lib.store import load_candidates
from tests.dbtools import Seeder

# Quotes, a backslash, a control character, non-Latin text, an emoji and 19 digits in a row (which
# sends the whole text to json.loads, lib/jsonfast.py): each must come back as it was stored.
AWKWARD = 'https://acme.example/widget/bookings/q"uote\\back\tslash-日本-🙂-1234567890123456789'


def load(db_url: str, source: Source = Source.DEFAULT) -> dict[str, Candidate]:
    with connect(parse_database_url(db_url, variable="DATABASE_URL"), timeout_s=10) as db:
        return {candidate.client_id: candidate for candidate in load_candidates(db, source, None, UNSHARDED)}


def test_no_workspace_is_an_empty_list(seed: Seeder, db_url: str) -> None:
    assert load(db_url) == {}


def test_every_column_reads_back_as_stored(seed: Seeder, db_url: str) -> None:
    created = datetime(2026, 3, 29, 1, 59, 59, 987000, tzinfo=UTC)
    stale = datetime(2026, 11, 30, 12, 0, 0, 1000, tzinfo=UTC)
    seed.client("full", "agency-é", created_at=created)
    link_id = seed.link("full", AWKWARD, link_type="ghl", link_id="link-full")
    seed.settings(
        "full",
        meetingDurationMinutes=45,
        meetingBookingProvider="CALENDLY",
        ghlDefaultCalendarId="g1",
        ghlDirectBookCalendarId=None,
        calendlyEventTypeLink="https://calendly.com/a/b",
        calendlyEventTypeUri="https://api.calendly.com/event_types/0123456789abcdef",
        calendlyDirectBookEventTypeLink=None,
        calendlyDirectBookEventTypeUri="https://api.calendly.com/event_types/fedcba9876543210",
    )
    meta = {"ghlCalendarId": "g1", "nested": {"list": [1, 2.5, None, True, "ü"]}, "big": 12345678901234567890}
    seed.cache(
        "full",
        slots=[],
        range_start=created,
        stale_at=stale,
        last_error="Unexpected error: 'x' \\ \"y\"",
        calendar_link_id=link_id,
        calendar_url=AWKWARD,
        provider_meta=meta,
    )
    seed.client("bare", "")
    seed.link("bare", "calendly.com/bare/intro")

    candidates = load(db_url)

    assert candidates["full"] == Candidate(
        client_id="full",
        user_id="agency-é",
        created_at=created,
        link=DefaultLink("link-full", AWKWARD, "ghl"),
        config=WorkspaceConfig(
            meeting_duration_minutes=45,
            booking_provider="CALENDLY",
            ghl_default_calendar_id="g1",
            ghl_direct_book_calendar_id=None,
            calendly_link="https://calendly.com/a/b",
            calendly_uri="https://api.calendly.com/event_types/0123456789abcdef",
            calendly_direct_book_link=None,
            calendly_direct_book_uri="https://api.calendly.com/event_types/fedcba9876543210",
        ),
        cache=CachedState(
            calendar_link_id=link_id,
            calendar_url=AWKWARD,
            provider_meta=meta,
            stale_at=stale,
            last_error="Unexpected error: 'x' \\ \"y\"",
        ),
    )
    full_cache = candidates["full"].cache
    assert full_cache is not None and full_cache.provider_meta is not None
    assert type(full_cache.provider_meta["big"]) is int  # an int, not the float a lax decoder would give
    bare = candidates["bare"]
    assert (bare.user_id, bare.link, bare.config, bare.cache) == (
        "",
        DefaultLink(bare.link.id if bare.link else "", "calendly.com/bare/intro", "unknown"),
        None,
        None,
    )
    assert abs(bare.created_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_time_no_datetime_can_hold_reads_as_due_not_as_a_failed_run(seed: Seeder, db_url: str) -> None:
    seed.client("odd")
    seed.link("odd", "https://meetings.hubspot.com/odd")
    seed.cache("odd", slots=[], range_start=datetime.now(UTC), stale_at=datetime.now(UTC))
    seed.run('UPDATE "WorkspaceAvailabilityCache" SET "staleAt" = \'infinity\'')
    seed.run('UPDATE "Client" SET "createdAt" = \'-infinity\'')
    candidate = load(db_url)["odd"]
    assert candidate.cache is not None
    assert candidate.cache.stale_at == candidate.created_at == datetime(1970, 1, 1, tzinfo=UTC)
