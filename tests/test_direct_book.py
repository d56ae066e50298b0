"""The DIRECT_BOOK source: its own rows, eligibility, URL and calendar resolution, its own lock key."""

from __future__ import annotations

from datetime import UTC, datetime

from devtools.pgserver import admin_connection
from sandbox.providers import weekday_slots
from tests.helpers import assert_invariants, run_cron
from tests.reader_oracle import reader_fixture  # noqa: F401 - autouse: the app's reader judges every row written

GHL_A = "CalendarAAAAAAAAAAAAAAAA"
GHL_B = "CalendarBBBBBBBBBBBBBBBB"
GHL_URL = f"https://api.leadconnectorhq.com/widget/booking/{GHL_A}"


def test_direct_book_refreshes_only_workspaces_with_a_distinct_calendar(client, seed, sandbox):
    now = datetime.now(UTC)
    sandbox.add_ghl_calendar(GHL_A, weekday_slots(now, 31, hours=(9, 12)))
    sandbox.add_ghl_calendar(GHL_B, weekday_slots(now, 31, hours=(13, 17)))
    for client_id, direct in (("distinct", GHL_B), ("same", GHL_A), ("none", None)):
        seed.client(client_id)
        seed.link(client_id, GHL_URL)
        seed.settings(client_id, ghlDefaultCalendarId=GHL_A, ghlDirectBookCalendarId=direct)
    seed.client("no-settings")
    seed.link("no-settings", GHL_URL)
    report = run_cron(client, "source=directBook")
    assert_invariants(report)
    assert report["source"] == "DIRECT_BOOK"
    assert report["options"]["source"] == "directBook"
    assert (report["checked"], report["refreshed"], report["skippedNotConfigured"]) == (4, 1, 3)
    rows = seed.rows("DIRECT_BOOK")
    assert set(rows) == {"distinct"}
    assert rows["distinct"].provider_meta["ghlCalendarId"] == GHL_B
    assert seed.rows("DEFAULT") == {}  # nothing is written to the DEFAULT rows by a DIRECT_BOOK run


def test_direct_book_calendly_uses_the_direct_book_event_link(client, seed, sandbox):
    now = datetime.now(UTC)
    sandbox.add_calendly_event("acme", "intro", weekday_slots(now, 31))
    sandbox.add_calendly_event("acme", "direct", weekday_slots(now, 31, hours=(10, 11)))
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/intro")
    seed.settings(
        "c1",
        meetingBookingProvider="CALENDLY",
        calendlyEventTypeLink="https://calendly.com/acme/intro",
        calendlyDirectBookEventTypeLink="calendly.com/acme/direct",
    )
    assert run_cron(client, "source=directBook")["refreshed"] == 1
    row = seed.row("c1", "DIRECT_BOOK")
    assert row.calendar_url == "https://calendly.com/acme/direct"
    assert all(slot[11:13] in ("14", "15", "16") for slot in row.slots)  # 10:00-11:00 New York in UTC


def test_the_two_sources_have_independent_locks(client, db_url):
    holder = admin_connection(db_url)
    try:
        holder.run("SELECT pg_advisory_lock(61061061061)")
        assert run_cron(client)["skipped"] is True
        assert "skipped" not in run_cron(client, "source=directBook")
        holder.run("SELECT pg_advisory_lock(61061061062)")
        assert run_cron(client, "source=directBook")["skipped"] is True
    finally:
        holder.close()
