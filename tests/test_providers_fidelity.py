"""Provider fidelity through the sandbox: every URL form and fallback of issue 3 not covered by
test_outcomes / test_tenant_urls / test_direct_book, windows split at the providers' limits, a
daylight-saving crossing end to end, a redirect to a private address and a long 429."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic, sleep
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from lib.config import Settings
from lib.deadline import Deadline
from lib.errors import ProviderHTTPError
from lib.options import parse_options
from lib.providers import calendly, ghl
from lib.providers.base import FetchContext
from lib.providers.http import HttpClient
from lib.providers.hubspot import months_touched
from lib.run import run
from lib.slots import Window, to_ms
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.helpers import hours_from_now, iso, run_cron
from tests.reader_oracle import reader_fixture  # noqa: F401 - autouse: the app's reader judges every row written
from tests.stand_in_internet import HostileDns, Route

GHL_ID = "xqwSvxDlit1P0lTnTrfx"
# A white-label booking host and a public address (is_global) that the sandbox_proxy fixture routes to
# the sandbox.
WHITE_LABEL_HOST = "link.acmebrand.example"
PUBLIC_PAGE_ADDRESS = "93.184.216.34"
OTHER_GHL_ID = "OtherCalendar0000000000"
BERLIN = ZoneInfo("Europe/Berlin")
# Wednesday 10 March 2027: New York moves to summer time on the 14th, Berlin on the 28th.
DST_NOW = datetime(2027, 3, 10, 12, tzinfo=UTC)


# A Calendly link whose event type cannot be resolved gives a failure row without the uuid; the
# application's reader refreshes such a row inline (origin §6 notes it), and nothing true can be
# written to stop that: the cron's row must not invent an event type.
UNRESOLVED_CALENDLY = "a failed Calendly link whose event type uuid was never learnt"


def offered(free: list[datetime], start: datetime, days: int) -> list[str]:
    """The cache's form of the instants a provider offered inside [start, start + days]."""
    end = start + timedelta(days=days)
    return sorted({iso(slot) for slot in free if start <= slot <= end})


def queries(sandbox: ProviderSandbox, fragment: str) -> list[dict[str, str]]:
    return [
        {key: values[0] for key, values in parse_qs(urlsplit(target).query).items()}
        for _, target in sandbox.request_log
        if fragment in target
    ]


@pytest.fixture
def sandbox_proxy(monkeypatch: pytest.MonkeyPatch, sandbox: ProviderSandbox) -> ProviderSandbox:
    """Tenant URLs on white-label or public hosts reach the sandbox without a request leaving the
    machine: the white-label name resolves to a public address whose connections are routed to the
    sandbox (tenant pages never go through an HTTP proxy: tests/stand_in_internet.py)."""
    HostileDns(monkeypatch).names[WHITE_LABEL_HOST] = PUBLIC_PAGE_ADDRESS
    Route(monkeypatch, urlsplit(sandbox.base_url).port or 80, frozenset({PUBLIC_PAGE_ADDRESS}))
    return sandbox


# --- Calendly ---------------------------------------------------------------------------


def test_calendly_single_use_scheduling_link(client, seed, sandbox):
    free = weekday_slots(datetime.now(UTC), 31, timezone="Europe/Berlin")
    uuid = sandbox.add_calendly_event("acme", "intro", free, timezone="Europe/Berlin")
    sandbox.add_calendly_scheduling_link("cpz8-kq5-xyz", uuid)
    seed.client("c1")
    seed.link("c1", "https://calendly.com/cpz8-kq5-xyz")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 30)
    assert row.provider_meta == {"calendlyEventTypeUuid": uuid, "calendlyAvailabilityTimezone": "Europe/Berlin"}
    assert [q["timezone"] for q in queries(sandbox, "calendar/range")] == ["Europe/Berlin"]


def test_calendly_event_slug_that_is_a_scheduling_link(client, seed, sandbox):
    free = weekday_slots(datetime.now(UTC), 31)
    uuid = sandbox.add_calendly_event("acme", "intro", free)
    sandbox.add_calendly_scheduling_link("one-off-7x2", uuid)
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/one-off-7x2")
    assert run_cron(client)["refreshed"] == 1
    assert seed.row("c1").provider_meta["calendlyEventTypeUuid"] == uuid
    assert sandbox.requests_for("one-off-7x2") == 1


def test_calendly_profile_link_uses_the_first_event_type_and_the_profile_zone(client, seed, sandbox):
    now = datetime.now(UTC)
    first = weekday_slots(now, 31, hours=(9, 12))
    second = weekday_slots(now, 31, hours=(13, 17))
    uuids = [sandbox.add_calendly_event("jane", "a", first), sandbox.add_calendly_event("jane", "b", second)]
    sandbox.add_calendly_profile("jane", uuids, timezone="America/Chicago")
    seed.client("c1")
    seed.link("c1", "calendly.com/jane")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(first, row.range_start, 30)
    assert row.provider_meta == {"calendlyEventTypeUuid": uuids[0], "calendlyAvailabilityTimezone": "America/Chicago"}


@pytest.mark.parametrize("kind", ["share code", "single-use link"])
def test_calendly_d_links(client, seed, sandbox, kind):
    free = weekday_slots(datetime.now(UTC), 31)
    uuid = sandbox.add_calendly_event("acme", "intro", free)
    if kind == "share code":
        sandbox.add_calendly_share_link("dvz-2k7-qpx", uuid)
    else:
        sandbox.add_calendly_scheduling_link("dvz-2k7-qpx", uuid)
    seed.client("c1")
    seed.link("c1", "https://calendly.com/d/dvz-2k7-qpx/intro-call")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 30)
    assert row.provider_meta["calendlyEventTypeUuid"] == uuid


def test_calendly_d_link_that_no_longer_resolves_fails_clearly(client, seed, sandbox, reader_accepts_written_rows):
    reader_accepts_written_rows["c1"] = UNRESOLVED_CALENDLY
    seed.client("c1")
    seed.link("c1", "https://calendly.com/d/gone-000-zzz/intro-call")
    assert run_cron(client)["failed"] == 1
    assert seed.row("c1").last_error == (
        "Calendly event type not found: the /d/ link may have been paused or expired: "
        "https://calendly.com/d/gone-000-zzz/intro-call"
    )


def test_calendly_unknown_link_fails_with_the_issue_wording(client, seed, sandbox, reader_accepts_written_rows):
    reader_accepts_written_rows["c1"] = UNRESOLVED_CALENDLY
    seed.client("c1")
    seed.link("c1", "https://calendly.com/nobody/nothing")
    assert run_cron(client)["failed"] == 1
    assert seed.row("c1").last_error == "Calendly event type not found for https://calendly.com/nobody/nothing"


def test_calendly_secret_event_is_a_failure_not_no_slots(client, seed, sandbox, reader_accepts_written_rows):
    reader_accepts_written_rows["c1"] = UNRESOLVED_CALENDLY
    sandbox.add_calendly_event("acme", "old", weekday_slots(datetime.now(UTC), 31), public=False)
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/old")
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 0)
    assert seed.row("c1").last_error == (
        "Calendly event type is secret or deactivated (public: false): https://calendly.com/acme/old"
    )


def test_calendly_event_made_secret_after_caching_fails_and_keeps_the_previous_slots(client, seed, sandbox):
    free = weekday_slots(datetime.now(UTC), 31)
    uuid = sandbox.add_calendly_event("acme", "intro", free)
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/intro")
    run_cron(client)
    before = seed.row("c1")
    assert before.slots and before.last_error is None
    sandbox.add_calendly_event("acme", "intro", free, uuid=uuid, public=False)
    assert run_cron(client)["failed"] == 1
    after = seed.row("c1")
    assert "secret or deactivated" in after.last_error
    assert set(after.slots) <= set(before.slots) and after.slots
    assert after.provider_meta == before.provider_meta


def test_calendly_cached_event_with_no_availability_stays_refreshed(client, seed, sandbox):
    uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/intro")
    run_cron(client)
    sandbox.add_calendly_event("acme", "intro", [], uuid=uuid)
    report = run_cron(client)
    assert (report["refreshed"], report["emptySlots"]) == (1, 1)
    assert seed.row("c1").slots == []


DELETED_UUID = "0b9c3a5e-1111-4222-8333-944455556666"


def test_calendly_configured_event_type_that_was_deleted_falls_back_to_the_configured_link(client, seed, sandbox):
    uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/other")
    seed.settings(
        "c1",
        meetingBookingProvider="CALENDLY",
        calendlyEventTypeLink="https://calendly.com/acme/intro",
        calendlyEventTypeUri=f"https://api.calendly.com/event_types/{DELETED_UUID}",
    )
    assert run_cron(client)["refreshed"] == 1
    assert sandbox.requests_for(DELETED_UUID) == 1
    row = seed.row("c1")
    assert row.provider_meta["calendlyEventTypeUuid"] == uuid
    assert row.calendar_url == "https://calendly.com/acme/intro"


def test_calendly_deleted_event_type_uri_alone_fails_naming_it(client, seed, sandbox, reader_accepts_written_rows):
    reader_accepts_written_rows["c1"] = UNRESOLVED_CALENDLY
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/intro")
    uri = f"https://api.calendly.com/event_types/{DELETED_UUID}"
    seed.settings("c1", meetingBookingProvider="CALENDLY", calendlyEventTypeUri=uri)
    assert run_cron(client)["failed"] == 1
    assert seed.row("c1").last_error == f"Calendly event type not found for {uri}"


def test_calendly_cached_ids_are_not_reused_once_the_url_changed(client, seed, sandbox):
    now = datetime.now(UTC)
    old_uuid = sandbox.add_calendly_event("acme", "old", weekday_slots(now, 31, hours=(9, 10)))
    new_free = weekday_slots(now, 31, hours=(14, 15))
    new_uuid = sandbox.add_calendly_event("acme", "new", new_free)
    seed.client("c1")
    link_id = seed.link("c1", "https://calendly.com/acme/new")
    seed.cache(
        "c1",
        slots=[],
        range_start=hours_from_now(-1),
        stale_at=hours_from_now(-1),
        calendar_link_id=link_id,
        calendar_url="https://calendly.com/acme/old",
        calendar_type="calendly",
        provider_meta={"calendlyEventTypeUuid": old_uuid, "calendlyAvailabilityTimezone": "UTC"},
    )
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert sandbox.requests_for(old_uuid) == 0
    assert row.provider_meta["calendlyEventTypeUuid"] == new_uuid
    assert row.slots == offered(new_free, row.range_start, 30)


def test_calendly_long_window_is_split_within_31_dates(client, seed, sandbox, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_LOOKAHEAD_DAYS", "90")
    free = weekday_slots(datetime.now(UTC), 92, timezone="Europe/Berlin")
    sandbox.add_calendly_event("acme", "intro", free, timezone="Europe/Berlin")
    seed.client("c1")
    seed.link("c1", "https://calendly.com/acme/intro")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 90)
    spans = [
        (date.fromisoformat(q["range_start"]), date.fromisoformat(q["range_end"]))
        for q in queries(sandbox, "calendar/range")
    ]
    assert len(spans) >= 3
    assert all((end - start).days < 31 for start, end in spans)
    assert all(spans[n][1] + timedelta(days=1) == spans[n + 1][0] for n in range(len(spans) - 1))
    assert spans[0][0] == row.range_start.astimezone(BERLIN).date()
    assert spans[-1][1] == row.range_end.astimezone(BERLIN).date()


# --- HubSpot ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["meetings-eu1", "meetings-na1", "meetings-na2", "meetings-na3", "meetings-ap1"])
def test_hubspot_regional_hosts_send_the_booking_origin(client, seed, sandbox, host):
    free = weekday_slots(datetime.now(UTC), 31, timezone="UTC")
    sandbox.add_hubspot_link("alice", free)
    seed.client("c1")
    seed.link("c1", f"https://{host}.hubspot.com/alice")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert (row.slots, row.calendar_type) == (offered(free, row.range_start, 30), "hubspot")
    sent = [headers for target, headers in sandbox.request_headers if "availability-page" in target]
    assert sent
    assert {(h.get("Origin"), h.get("Referer")) for h in sent} == {
        (f"https://{host}.hubspot.com", f"https://{host}.hubspot.com/alice")
    }


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://book.acme.example/meetings/sales-desk", "sales-desk"),
        ("www.acme.example/meetings/team/intro-call?embed=true", "team/intro-call"),
        ("https://meetings.hubspot.com/team/intro-call", "team/intro-call"),
    ],
)
def test_hubspot_custom_domains_and_team_slugs(client, seed, sandbox, url, slug):
    free = weekday_slots(datetime.now(UTC), 31, timezone="UTC")
    sandbox.add_hubspot_link(slug, free)
    seed.client("c1")
    seed.link("c1", url)
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert (row.slots, row.calendar_type) == (offered(free, row.range_start, 30), "hubspot")
    assert {q["slug"] for q in queries(sandbox, "availability-page")} == {slug}
    # A team slug travels as one encoded value, never cut at its slash.
    assert all(slug.replace("/", "%2F") in target for _, target in sandbox.request_log)


def test_hubspot_unknown_slug_fails_clearly(client, seed, sandbox):
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/ghost")
    assert run_cron(client)["failed"] == 1
    assert seed.row("c1").last_error == "HubSpot meetings link not found: slug 'ghost' does not exist"


def test_hubspot_asks_for_every_month_at_once_and_reads_until_no_more_follow(client, seed, sandbox):
    now = datetime.now(UTC)
    # Each answer takes 1 s, so the later months' requests (started on the helper threads at the same
    # time as month 0) are under way before month 0 answers: a month not yet started when month 0
    # says hasMore: false is cancelled, which on a busy machine made this count 1 instead of 2.
    sandbox.add_hubspot_link("soon", [now + timedelta(hours=2)], fault=Fault(latency_s=1.0))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/soon")
    assert run_cron(client)["refreshed"] == 1
    # The later months are requested alongside the first (one round trip of latency), then ignored
    # because month 0 said hasMore: false. Nothing waits for an ignored page, so the run may end while
    # that request is still on its way to the sandbox: give it a moment to arrive.
    expected, patience = months_touched(Window.ahead(now, 30)), monotonic() + 5
    while sandbox.requests_for("soon") < expected and monotonic() < patience:
        sleep(0.02)
    assert sandbox.requests_for("soon") == expected
    assert seed.row("c1").slots == [iso(now + timedelta(hours=2))]


def test_hubspot_months_cost_one_round_trip_of_latency(client, seed, sandbox):
    sandbox.add_hubspot_link("slow", weekday_slots(datetime.now(UTC), 40, timezone="UTC"), fault=Fault(latency_s=3.0))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/slow")
    started = monotonic()
    assert run_cron(client)["refreshed"] == 1
    assert sandbox.requests_for("slow") >= 2
    assert monotonic() - started < 5.0  # two months one after the other would take 6 s


def test_hubspot_long_window_reads_every_month(client, seed, sandbox, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_LOOKAHEAD_DAYS", "90")
    free = weekday_slots(datetime.now(UTC), 95, timezone="UTC")
    sandbox.add_hubspot_link("alice", free)
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/alice")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 90)
    offsets = [int(q["monthOffset"]) for q in queries(sandbox, "availability-page")]
    assert sorted(offsets) == list(range(len(offsets)))  # each month once (asked for at the same time)
    assert len(offsets) >= 4  # a 90-day window touches at least four calendar months


# --- GoHighLevel ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"https://api.acmebrand.example/widget/booking/{GHL_ID}",
        f"https://link.msgsndr.com/widget/booking/{GHL_ID}?heightMode=full",
        f"https://app.gohighlevel.com/widget/booking/{GHL_ID}",
    ],
)
def test_ghl_booking_links_on_any_host_are_read_without_the_page(client, seed, sandbox, url):
    free = weekday_slots(datetime.now(UTC), 31, timezone="America/Chicago")
    sandbox.add_ghl_calendar(GHL_ID, free)
    seed.client("c1")
    seed.link("c1", url)
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 30)
    assert row.provider_meta == {"ghlCalendarId": GHL_ID, "resolvedUrl": url}
    assert all("/widget/" not in target for _, target in sandbox.request_log)


def test_ghl_deleted_calendar_named_by_the_link_fails_without_fetching_the_page(client, seed, sandbox):
    seed.client("c1")
    seed.link("c1", f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}")
    seed.settings("c1", ghlDefaultCalendarId="DesiredCalendar00000000")
    assert run_cron(client)["failed"] == 1
    assert seed.row("c1").last_error == (
        f"GoHighLevel calendar not found: free-slots refused DesiredCalendar00000000, {GHL_ID}"
    )
    assert all("/widget/" not in target for _, target in sandbox.request_log)


def test_ghl_white_label_slug_page_is_resolved(client, seed, sandbox_proxy):
    free = weekday_slots(datetime.now(UTC), 31, timezone="America/Chicago")
    sandbox_proxy.add_ghl_calendar(GHL_ID, free)
    sandbox_proxy.add_ghl_booking_page("/widget/bookings/demo-call", GHL_ID)
    url = f"http://{WHITE_LABEL_HOST}/widget/bookings/demo-call"
    seed.client("c1")
    seed.link("c1", url)
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 30)
    assert row.provider_meta == {"ghlCalendarId": GHL_ID, "resolvedUrl": url}
    assert sandbox_proxy.requests_for("/widget/bookings/demo-call") == 1


def test_ghl_page_without_a_calendar_id_fails_with_the_issue_wording(client, seed, sandbox):
    sandbox.add_ghl_booking_page("/widget/bookings/empty", GHL_ID)
    sandbox.set_fault("/widget/bookings/empty", Fault(body="<html><body>Book</body></html>", content_type="text/html"))
    url = f"{sandbox.base_url}/widget/bookings/empty"
    seed.client("c1")
    seed.link("c1", url, link_type="ghl")
    assert run_cron(client)["failed"] == 1
    assert seed.row("c1").last_error == f"GoHighLevel booking page has no calendar id: {url}"


def _ghl_workspace(seed, *, cached: str | None, desired: str | None) -> None:
    seed.client("c1")
    url = f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}"
    link_id = seed.link("c1", url)
    if desired:
        seed.settings("c1", ghlDefaultCalendarId=desired)
    if cached:
        seed.cache(
            "c1",
            slots=[],
            range_start=hours_from_now(-1),
            stale_at=hours_from_now(-1),
            calendar_link_id=link_id,
            calendar_url=url,
            calendar_type="ghl",
            provider_meta={"ghlCalendarId": cached, "resolvedUrl": url},
        )


def test_ghl_cached_calendar_is_asked_first(client, seed, sandbox):
    now = datetime.now(UTC)
    cached_free = weekday_slots(now, 31, hours=(9, 10))
    sandbox.add_ghl_calendar(OTHER_GHL_ID, cached_free)
    sandbox.add_ghl_calendar("DesiredCalendar00000000", weekday_slots(now, 31, hours=(15, 16)))
    _ghl_workspace(seed, cached=OTHER_GHL_ID, desired="DesiredCalendar00000000")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.provider_meta["ghlCalendarId"] == OTHER_GHL_ID
    assert row.slots == offered(cached_free, row.range_start, 30)
    assert sandbox.requests_for("DesiredCalendar00000000") == 0


def test_ghl_empty_cached_calendar_falls_back_to_the_configured_one(client, seed, sandbox):
    desired_free = weekday_slots(datetime.now(UTC), 31, hours=(15, 16))
    sandbox.add_ghl_calendar(OTHER_GHL_ID, [])
    sandbox.add_ghl_calendar("DesiredCalendar00000000", desired_free)
    _ghl_workspace(seed, cached=OTHER_GHL_ID, desired="DesiredCalendar00000000")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.provider_meta["ghlCalendarId"] == "DesiredCalendar00000000"
    assert row.slots == offered(desired_free, row.range_start, 30)


def test_ghl_deleted_cached_calendar_falls_back_to_the_configured_one(client, seed, sandbox):
    desired_free = weekday_slots(datetime.now(UTC), 31)
    sandbox.add_ghl_calendar("DesiredCalendar00000000", desired_free)
    _ghl_workspace(seed, cached="DeletedCalendar00000000", desired="DesiredCalendar00000000")
    assert run_cron(client)["refreshed"] == 1
    assert seed.row("c1").provider_meta["ghlCalendarId"] == "DesiredCalendar00000000"
    assert sandbox.requests_for("DeletedCalendar00000000") == 1


def test_ghl_long_window_is_asked_in_spans_of_31_days(client, seed, sandbox, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_LOOKAHEAD_DAYS", "90")
    free = weekday_slots(datetime.now(UTC), 92, timezone="America/Chicago")
    sandbox.add_ghl_calendar(GHL_ID, free)
    seed.client("c1")
    seed.link("c1", f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert row.slots == offered(free, row.range_start, 90)
    spans = [(int(q["startDate"]), int(q["endDate"])) for q in queries(sandbox, "free-slots")]
    assert len(spans) == 3
    assert all(end - start <= 31 * 86_400_000 for start, end in spans)
    assert all(spans[n][1] == spans[n + 1][0] for n in range(2))
    assert (spans[0][0], spans[-1][1]) == (to_ms(row.range_start), to_ms(row.range_end))


# --- Seams and limits at the provider level (fixed clock) --------------------------------


@pytest.fixture
def fixed_sandbox() -> Iterator[ProviderSandbox]:
    with ProviderSandbox(clock=lambda: DST_NOW) as running:
        yield running


def _context(sandbox: ProviderSandbox, days: int) -> FetchContext:
    return FetchContext(HttpClient(), Window.ahead(DST_NOW, days), Deadline.after(20), sandbox.base_url)


def test_ghl_slot_exactly_at_a_seam_is_returned_once(fixed_sandbox):
    seam = DST_NOW + timedelta(days=31)
    around = [seam - timedelta(minutes=30), seam, seam + timedelta(minutes=30), DST_NOW + timedelta(days=40)]
    fixed_sandbox.add_ghl_calendar(GHL_ID, around)
    result = ghl.fetch_slots(_context(fixed_sandbox, 40), "https://x/widget/booking/" + GHL_ID, calendar_id_hints=[])
    assert result.instants_ms == [to_ms(slot) for slot in around]
    # Both spans were asked about the seam itself: the join, not luck, kept it once.
    spans = [(int(q["startDate"]), int(q["endDate"])) for q in queries(fixed_sandbox, "free-slots")]
    assert spans == [(to_ms(DST_NOW), to_ms(seam)), (to_ms(seam), to_ms(DST_NOW + timedelta(days=40)))]


def test_calendly_slot_at_local_midnight_on_a_seam_is_returned_once(fixed_sandbox):
    seam_day = DST_NOW.astimezone(BERLIN).date() + timedelta(days=31)
    seam = datetime.combine(seam_day, time(0), tzinfo=BERLIN)
    around = [seam - timedelta(minutes=30), seam, seam + timedelta(minutes=30)]
    uuid = fixed_sandbox.add_calendly_event("acme", "night", around, timezone="Europe/Berlin")
    result = calendly.fetch_slots(
        _context(fixed_sandbox, 40), "https://calendly.com/acme/night", event_type_uuid=uuid, timezone="Europe/Berlin"
    )
    assert result.instants_ms == sorted(to_ms(slot) for slot in around)
    ranges = [(q["range_start"], q["range_end"]) for q in queries(fixed_sandbox, "calendar/range")]
    assert ranges[1][0] == seam_day.isoformat()


def test_without_the_split_the_sandbox_rejects_a_long_window(fixed_sandbox, monkeypatch):
    uuid = fixed_sandbox.add_calendly_event("acme", "intro", weekday_slots(DST_NOW, 60))
    fixed_sandbox.add_ghl_calendar(GHL_ID, weekday_slots(DST_NOW, 60))
    monkeypatch.setattr(calendly, "MAX_RANGE_DAYS", 90)
    with pytest.raises(ProviderHTTPError) as calendly_refused:
        calendly.fetch_slots(
            _context(fixed_sandbox, 60), "https://calendly.com/acme/intro", event_type_uuid=uuid, timezone=None
        )
    with pytest.raises(ProviderHTTPError) as ghl_refused:
        ghl._free_slots(_context(fixed_sandbox, 60), GHL_ID, (to_ms(DST_NOW), to_ms(DST_NOW + timedelta(days=60))))
    assert (calendly_refused.value.status, ghl_refused.value.status) == (400, 400)


# --- Daylight saving end to end ----------------------------------------------------------


def test_a_refresh_across_daylight_saving_changes_stores_the_offered_instants_in_utc(env, seed, monkeypatch):
    with ProviderSandbox(clock=lambda: DST_NOW) as providers:
        for name in ("CALENDLY_BASE_URL", "HUBSPOT_BASE_URL", "GHL_BASE_URL"):
            monkeypatch.setitem(env, name, providers.base_url)
        berlin = weekday_slots(DST_NOW, 31, timezone="Europe/Berlin")
        new_york = weekday_slots(DST_NOW, 31, timezone="America/New_York")
        chicago = weekday_slots(DST_NOW, 31, timezone="America/Chicago")
        providers.add_calendly_event("acme", "intro", berlin, timezone="Europe/Berlin")
        providers.add_hubspot_link("alice", new_york)
        providers.add_ghl_calendar(GHL_ID, chicago)
        for client_id, url in (
            ("calendly", "https://calendly.com/acme/intro"),
            ("hubspot", "https://meetings.hubspot.com/alice"),
            ("ghl", f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}"),
        ):
            seed.client(client_id)
            seed.link(client_id, url)
        settings = Settings.from_env(env)
        options = parse_options({}, b"", "", settings)
        result = run(settings, options, invocation_id="dst", http=HttpClient(), clock=lambda: DST_NOW)
    assert result.body["refreshed"] == 3
    rows = seed.rows()
    for client_id, free in (("calendly", berlin), ("hubspot", new_york), ("ghl", chicago)):
        assert rows[client_id].slots == offered(free, DST_NOW, 30), client_id
        assert rows[client_id].range_start == DST_NOW
    # 9:00 local is 08:00Z before and 07:00Z after Berlin's change (28 March 2027) ...
    assert {"2027-03-26T08:00:00.000Z", "2027-03-29T07:00:00.000Z"} <= set(rows["calendly"].slots)
    # ... and 14:00Z before, 13:00Z after New York's (14 March 2027).
    assert {"2027-03-12T14:00:00.000Z", "2027-03-15T13:00:00.000Z"} <= set(rows["hubspot"].slots)
    assert "2027-03-15T12:45:00.000Z" not in rows["hubspot"].slots  # 8:45 New York: before opening


# --- Redirects and rate limits -----------------------------------------------------------


@pytest.mark.parametrize("target", ["canary", "http://169.254.169.254/computeMetadata/v1/"])
def test_a_booking_page_redirecting_to_a_private_address_is_refused(
    client, seed, sandbox_proxy, monkeypatch, canary, target
):
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORK", "false")
    location = f"{canary.base_url}/latest/meta-data/" if target == "canary" else target
    sandbox_proxy.add_ghl_booking_page("/widget/bookings/acme", GHL_ID)
    sandbox_proxy.set_fault("/widget/bookings/acme", Fault(status=302, headers=(("Location", location),)))
    seed.client("c1")
    # A public address literal: the first hop passes the guard (no DNS needed) and reaches the sandbox.
    seed.link("c1", f"http://{PUBLIC_PAGE_ADDRESS}/widget/bookings/acme", link_type="ghl")
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 0)
    error = seed.row("c1").last_error
    assert error.startswith("Blocked URL: ")
    assert "resolves to a non-public address" in error
    assert sandbox_proxy.requests_for("/widget/bookings/acme") == 1
    assert canary.hits == []


def _rate_limited(sandbox: ProviderSandbox, provider: str) -> tuple[str, str, dict[str, Any]]:
    free = weekday_slots(datetime.now(UTC), 31)
    limited = Fault(status=429, headers=(("Retry-After", "120"),))
    if provider == "calendly":
        uuid = sandbox.add_calendly_event("acme", "intro", free, fault=limited)
        return (
            "https://calendly.com/acme/intro",
            "calendly",
            {
                "calendlyEventTypeUuid": uuid,
                "calendlyAvailabilityTimezone": "UTC",
            },
        )
    if provider == "hubspot":
        sandbox.add_hubspot_link("alice", free, fault=limited)
        return "https://meetings.hubspot.com/alice", "hubspot", {}
    sandbox.add_ghl_calendar(GHL_ID, free, fault=limited)
    url = f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}"
    return url, "ghl", {"ghlCalendarId": GHL_ID, "resolvedUrl": url}


@pytest.mark.parametrize("provider", ["calendly", "hubspot", "ghl"])
def test_a_long_retry_after_fails_as_rate_limited_and_keeps_the_previous_future_slots(client, seed, sandbox, provider):
    url, calendar_type, meta = _rate_limited(sandbox, provider)
    seed.client("c1")
    link_id = seed.link("c1", url)
    past, future = iso(hours_from_now(-2)), iso(hours_from_now(30))
    seed.cache(
        "c1",
        slots=[past, future],
        range_start=hours_from_now(-3),
        stale_at=hours_from_now(-0.5),
        calendar_link_id=link_id,
        calendar_url=url,
        calendar_type=calendar_type,
        provider_meta=meta,
    )
    started = datetime.now(UTC)
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 0)
    assert (datetime.now(UTC) - started).total_seconds() < 20  # the 120 s wait was not taken
    row = seed.row("c1")
    assert "HTTP 429: rate limited (retry after 120 s)" in row.last_error
    assert row.slots == [future]
    assert row.provider_meta == meta
