"""Each per-workspace outcome of the origin's tree, (a)–(h), with our deliberate differences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lib.outcome import NO_DEFAULT_LINK_ERROR, NO_SLOTS_ERROR
from sandbox.providers import Fault, weekday_slots
from tests.helpers import assert_invariants, hours_from_now, iso, run_cron
from tests.reader_oracle import reader_fixture  # noqa: F401 - autouse: the app's reader judges every row written

CALENDLY_URL = "https://calendly.com/acme/intro"
HUBSPOT_URL = "https://meetings.hubspot.com/alice"
GHL_ID = "xqwSvxDlit1P0lTnTrfx"
GHL_URL = f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}"


def close_to(moment: datetime, expected: datetime, seconds: float = 10) -> bool:
    return abs((moment - expected).total_seconds()) <= seconds


def test_a_workspace_that_lost_its_default_link_has_its_cache_cleared(client, seed):
    seed.client("c1")
    seed.link("c1", CALENDLY_URL, is_default=False)
    seed.cache(
        "c1",
        slots=[iso(hours_from_now(5))],
        range_start=hours_from_now(-1),
        stale_at=hours_from_now(-0.1),
        calendar_url=CALENDLY_URL,
        calendar_type="calendly",
    )
    report = run_cron(client)
    assert (report["checked"], report["attempted"], report["skippedNoDefault"]) == (1, 1, 1)
    row = seed.row("c1")
    assert row.slots == []
    assert row.last_error == NO_DEFAULT_LINK_ERROR
    assert (row.calendar_link_id, row.calendar_type, row.calendar_url, row.provider_meta) == (None, "unknown", "", {})
    assert close_to(row.stale_at, datetime.now(UTC) + timedelta(hours=24))
    # Backed off on the next run while the cause is still there.
    again = run_cron(client)
    assert (again["skippedBackoff"], again["attempted"]) == (1, 0)
    assert_invariants(again)


def test_a_workspace_with_neither_link_nor_cache_is_not_a_candidate(client, seed):
    seed.client("c1")
    assert run_cron(client)["checked"] == 0


def test_b_blank_link_url_counts_as_no_default(client, seed):
    seed.client("c1")
    link_id = seed.link("c1", "   ")
    report = run_cron(client)
    assert report["skippedNoDefault"] == 1
    row = seed.row("c1")
    assert (row.calendar_link_id, row.last_error, row.slots) == (link_id, NO_DEFAULT_LINK_ERROR, [])


def test_c_unsupported_meeting_duration(client, seed, sandbox, reader_accepts_written_rows):
    # No request is made for this outcome, so a uuid nobody ever learnt cannot be written: the
    # application's reader refreshes such a Calendly row inline (as it did with the origin's rows).
    reader_accepts_written_rows["c1"] = "a (c) Calendly row whose event type uuid was never known"
    seed.client("c1")
    link_id = seed.link("c1", CALENDLY_URL)
    seed.settings("c1", meetingDurationMinutes=45)
    report = run_cron(client)
    assert report["skippedUnsupportedDuration"] == 1
    assert sandbox.total_requests == 0
    row = seed.row("c1")
    assert row.last_error.startswith("Unsupported meeting duration (45m).")
    assert (row.slot_duration, row.calendar_type, row.calendar_url, row.calendar_link_id) == (
        45,
        "calendly",
        CALENDLY_URL,
        link_id,
    )
    assert close_to(row.stale_at, datetime.now(UTC) + timedelta(hours=2))
    assert run_cron(client)["skippedBackoff"] == 1


@pytest.mark.parametrize("known_from", ["the previous row", "the settings"])
def test_c_unsupported_meeting_duration_keeps_a_known_calendly_uuid(client, seed, sandbox, known_from):
    uuid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    seed.client("c1")
    link_id = seed.link("c1", CALENDLY_URL)
    if known_from == "the settings":
        uri = f"https://api.calendly.com/event_types/{uuid}"
        seed.settings("c1", meetingDurationMinutes=45, meetingBookingProvider="CALENDLY", calendlyEventTypeUri=uri)
    else:
        seed.settings("c1", meetingDurationMinutes=45)
        seed.cache(
            "c1",
            slots=[],
            range_start=hours_from_now(-1),
            stale_at=hours_from_now(-0.5),
            calendar_link_id=link_id,
            calendar_url=CALENDLY_URL,
            calendar_type="calendly",
            provider_meta={"calendlyEventTypeUuid": uuid, "calendlyAvailabilityTimezone": "Europe/Berlin"},
        )
    assert run_cron(client)["skippedUnsupportedDuration"] == 1
    assert sandbox.total_requests == 0
    row = seed.row("c1")
    assert (row.calendar_type, row.slot_duration) == ("calendly", 45)
    # The reader (tests/reader_oracle.py, autouse here) would refresh the row inline without the uuid.
    assert row.provider_meta["calendlyEventTypeUuid"] == uuid


def test_fixing_the_meeting_duration_ends_the_backoff_at_once(client, seed, sandbox):
    seed.client("c1")
    seed.link("c1", CALENDLY_URL)
    seed.settings("c1", meetingDurationMinutes=60)
    run_cron(client)
    seed.run('UPDATE "WorkspaceSettings" SET "meetingDurationMinutes" = 30')
    sandbox.add_calendly_event("acme", "intro", weekday_slots(datetime.now(UTC), 31))
    report = run_cron(client)
    assert (report["refreshed"], report["skippedBackoff"]) == (1, 0)
    assert seed.row("c1").last_error is None


def test_d_calendly_slots_and_provider_meta(client, seed, sandbox):
    now = datetime.now(UTC)
    free = weekday_slots(now, 31)
    uuid = sandbox.add_calendly_event("acme", "intro", free, timezone="Europe/Berlin")
    seed.client("c1")
    seed.link("c1", "calendly.com/acme/intro", link_type="calendly")
    report = run_cron(client)
    assert (report["refreshed"], report["emptySlots"], report["failed"]) == (1, 0, 0)
    row = seed.row("c1")
    window_end = row.range_start + timedelta(days=30)
    expected = sorted({iso(slot) for slot in free if row.range_start <= slot <= window_end})
    assert row.slots == expected
    assert row.calendar_url == "https://calendly.com/acme/intro"
    assert row.provider_meta == {"calendlyEventTypeUuid": uuid, "calendlyAvailabilityTimezone": "Europe/Berlin"}
    assert row.last_error is None
    assert close_to(row.stale_at, row.fetched_at + timedelta(minutes=1), 1)
    assert row.range_end == row.range_start + timedelta(days=30)


def test_d_calendly_cached_event_type_skips_the_lookup(client, seed, sandbox):
    uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", CALENDLY_URL, link_id="L1")
    run_cron(client)
    lookups_before = sum("lookup" in path for _, path in sandbox.request_log)
    run_cron(client)
    lookups_after = sum("lookup" in path for _, path in sandbox.request_log)
    assert lookups_after == lookups_before == 1
    assert seed.row("c1").provider_meta["calendlyEventTypeUuid"] == uuid


def test_d_calendly_event_type_uri_from_settings(client, seed, sandbox):
    uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/other-name")
    seed.settings(
        "c1", meetingBookingProvider="CALENDLY", calendlyEventTypeUri=f"https://api.calendly.com/event_types/{uuid}"
    )
    report = run_cron(client)
    assert report["refreshed"] == 1
    assert len(seed.row("c1").slots) > 100


def test_e_hubspot_reads_every_month_the_window_touches(client, seed, sandbox):
    now = datetime.now(UTC)
    free = weekday_slots(now, 45, timezone="UTC")
    sandbox.add_hubspot_link("alice", free, durations_ms=(900000, 1800000, 3600000))
    seed.client("c1")
    seed.link("c1", HUBSPOT_URL, link_type="hubspot")
    report = run_cron(client)
    assert report["refreshed"] == 1
    row = seed.row("c1")
    window_end = row.range_start + timedelta(days=30)
    assert row.slots == sorted({iso(slot) for slot in free if row.range_start <= slot <= window_end})
    # The window spans two calendar months (three late on the 31st): each one was asked for.
    months = {path.split("monthOffset=")[1][0] for _, path in sandbox.request_log if "availability-page" in path}
    assert {"0", "1"} <= months
    assert row.provider_meta == {}


def test_e_hubspot_link_without_thirty_minute_meetings_fails_clearly(client, seed, sandbox):
    sandbox.add_hubspot_link("bob", weekday_slots(datetime.now(UTC), 31), durations_ms=(3600000,))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/bob")
    report = run_cron(client)
    assert report["failed"] == 1
    assert seed.row("c1").last_error == "HubSpot link offers no 30-minute meetings"


def test_f_ghl_calendar_id_from_the_link(client, seed, sandbox):
    free = weekday_slots(datetime.now(UTC), 31, timezone="America/Chicago")
    sandbox.add_ghl_calendar(GHL_ID, free)
    seed.client("c1")
    seed.link("c1", GHL_URL)
    report = run_cron(client)
    assert report["refreshed"] == 1
    row = seed.row("c1")
    window_end = row.range_start + timedelta(days=30)
    assert row.slots == sorted({iso(slot) for slot in free if row.range_start <= slot <= window_end})
    assert row.provider_meta == {"ghlCalendarId": GHL_ID, "resolvedUrl": GHL_URL}
    assert row.calendar_type == "ghl"


def test_f_ghl_settings_calendar_is_tried_first_and_falls_back_to_the_link(client, seed, sandbox):
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", GHL_URL)
    seed.settings("c1", ghlDefaultCalendarId="DeletedCalendar0000000")
    assert run_cron(client)["refreshed"] == 1
    assert sandbox.requests_for("DeletedCalendar0000000") == 1
    assert seed.row("c1").provider_meta["ghlCalendarId"] == GHL_ID


def test_g_unsupported_link_is_a_failure_with_a_clear_error(client, seed):
    seed.client("c1")
    seed.link("c1", "https://example.com/book-me")
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 0)
    assert report["errors"] == [
        "c1: Unsupported calendar link. Supported: Calendly, HubSpot, or GoHighLevel. URL: https://example.com/book-me"
    ]
    row = seed.row("c1")
    assert (row.calendar_type, row.slots) == ("unknown", [])
    # Not backed off: retried on every run.
    assert run_cron(client)["attempted"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=500),
        Fault(status=503, headers=(("Retry-After", "1"),)),
        Fault(body="{not json"),
        Fault(body="<html>maintenance</html>", content_type="text/html"),
        Fault(body='{"days": "soon"}'),
        Fault(body='{"days": [{"status": "available", "spots": [{"start_time": "2026-12-01T09:00:00"}]}]}'),
    ],
)
def test_h_provider_failure_keeps_previous_future_slots_and_range(client, seed, sandbox, fault):
    uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    link_id = seed.link("c1", CALENDLY_URL)
    past, future = iso(hours_from_now(-2)), iso(hours_from_now(30))
    range_start = hours_from_now(-3)
    meta = {"calendlyEventTypeUuid": uuid, "calendlyAvailabilityTimezone": "UTC"}
    seed.cache(
        "c1",
        slots=[past, future],
        range_start=range_start,
        stale_at=hours_from_now(-0.5),
        calendar_link_id=link_id,
        calendar_url=CALENDLY_URL,
        calendar_type="calendly",
        provider_meta=meta,
    )
    sandbox.set_fault(uuid, fault)
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 0)
    assert_invariants(report)
    row = seed.row("c1")
    assert row.slots == [future]
    assert abs((row.range_start - range_start).total_seconds()) < 0.002
    assert row.last_error and row.last_error != NO_SLOTS_ERROR
    assert row.provider_meta == meta
    assert close_to(row.fetched_at, datetime.now(UTC))
    assert report["errors"][0].startswith("c1: ")


@pytest.mark.parametrize("change", ["another link", "the link's URL edited"])
def test_h_failure_after_the_link_changed_drops_the_old_calendars_slots(client, seed, sandbox, change):
    sandbox.add_hubspot_link("new-owner", [], fault=Fault(status=503))
    seed.client("c1")
    new_url = "https://meetings.hubspot.com/new-owner"
    link_id = seed.link("c1", new_url, link_type="hubspot")
    old_link = "L-replaced" if change == "another link" else link_id
    seed.link("c1", "https://calendly.com/old/intro", link_id="L-replaced", is_default=False)
    seed.cache(
        "c1",
        slots=[iso(hours_from_now(30))],
        range_start=hours_from_now(-3),
        stale_at=hours_from_now(-0.5),
        calendar_link_id=old_link,
        calendar_url="https://calendly.com/old/intro",
        calendar_type="calendly",
        provider_meta={"calendlyEventTypeUuid": "old-uuid-0000000000"},
    )
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 0)
    row = seed.row("c1")
    # The old calendar's times are not offered; the row now describes the current link (contract §4),
    # so the application's reader (autouse here) sees nothing changed.
    assert row.slots == []
    assert (row.calendar_link_id, row.calendar_url, row.calendar_type) == (link_id, new_url, "hubspot")
    assert "HTTP 503" in row.last_error and row.provider_meta == {}


def test_h_failure_without_a_previous_row_creates_an_empty_one(client, seed, sandbox):
    sandbox.add_hubspot_link("alice", [], fault=Fault(status=502))
    seed.client("c1")
    link_id = seed.link("c1", HUBSPOT_URL)
    assert run_cron(client)["failed"] == 1
    row = seed.row("c1")
    assert (row.slots, row.calendar_link_id, row.calendar_type, row.calendar_url) == (
        [],
        link_id,
        "hubspot",
        HUBSPOT_URL,
    )
    assert "HTTP 502" in row.last_error


def test_empty_availability_is_refreshed_not_failed(client, seed, sandbox):
    sandbox.add_ghl_calendar(GHL_ID, [])
    seed.client("c1")
    seed.link("c1", GHL_URL)
    seed.cache("c1", slots=[iso(hours_from_now(10))], range_start=hours_from_now(-1), stale_at=hours_from_now(-1))
    report = run_cron(client)
    assert (report["refreshed"], report["emptySlots"], report["failed"]) == (1, 1, 0)
    row = seed.row("c1")
    assert (row.slots, row.last_error) == ([], NO_SLOTS_ERROR)


def test_slots_are_future_only_sorted_unique_utc_in_the_exact_form(client, seed, sandbox):
    now = datetime.now(UTC)
    raw = [now - timedelta(hours=3), now + timedelta(days=40), now + timedelta(hours=5, microseconds=123456)]
    raw += [now + timedelta(hours=2)] * 3
    sandbox.add_hubspot_link("alice", raw)
    seed.client("c1")
    seed.link("c1", HUBSPOT_URL)
    run_cron(client)
    slots = seed.row("c1").slots
    assert slots == sorted(set(slots))
    assert len(slots) == 2
    for slot in slots:
        assert len(slot) == 24 and slot.endswith("Z") and slot[19] == "."
        assert datetime.fromisoformat(slot) >= now


def test_several_default_links_choose_the_latest_updated(client, seed, sandbox, reader_accepts_written_rows):
    # The application takes an arbitrary default link (LIMIT 1 with no order); ours is deterministic
    # (contract §4), so the reader may see "changed" here whatever we choose.
    reader_accepts_written_rows["c1"] = "several default links: the application's choice is arbitrary"
    sandbox.add_hubspot_link("newer", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/older", updated_at=hours_from_now(-48), link_id="L-old")
    seed.link("c1", "https://meetings.hubspot.com/newer", updated_at=hours_from_now(-1), link_id="L-new")
    for _ in range(2):
        run_cron(client)
        assert seed.row("c1").calendar_link_id == "L-new"


def test_a_link_type_mismatch_uses_the_stored_type_and_ids_from_another_link_are_not_reused(client, seed, sandbox):
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", GHL_URL, link_id="L2", link_type="ghl")
    seed.cache(
        "c1",
        slots=[],
        range_start=hours_from_now(-1),
        stale_at=hours_from_now(-1),
        calendar_link_id=None,
        calendar_url="https://other",
        provider_meta={"ghlCalendarId": "StaleCalendarId000000"},
    )
    assert run_cron(client)["refreshed"] == 1
    assert sandbox.requests_for("StaleCalendarId000000") == 0
