"""Real HTTP requests against the provider sandbox on 127.0.0.1 (sandbox/providers.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sandbox.providers import Fault, ProviderSandbox, weekday_slots

# Monday 26 Oct 2026, 10:00 in New York. New York leaves DST on Sunday 1 Nov 2026.
NOW = datetime(2026, 10, 26, 14, 0, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
TIMEOUT = 5.0
GHL_ID = "xqwSvxDlit1P0lTnTrfx"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox() -> Iterator[ProviderSandbox]:
    with ProviderSandbox(clock=lambda: NOW) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def get(session: requests.Session, sandbox: ProviderSandbox, path: str, **params: Any) -> requests.Response:
    return session.get(sandbox.base_url + path, params=params, timeout=TIMEOUT)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def spots_of(days: list[dict[str, Any]], status: str) -> list[str]:
    return [s["start_time"] for d in days for s in d["spots"] if s["status"] == status]


# --- weekday_slots ------------------------------------------------------------------


def test_weekday_slots_follow_local_business_hours_across_dst() -> None:
    slots = weekday_slots(NOW, 30)

    assert 650 <= len(slots) <= 720
    assert slots[0] == datetime(2026, 10, 26, 10, 0, tzinfo=NEW_YORK)
    assert all(s.weekday() < 5 and 9 <= s.hour < 17 for s in slots)
    offsets = {s.date(): s.utcoffset() for s in slots}
    assert offsets[date(2026, 10, 30)] == timedelta(hours=-4)
    assert offsets[date(2026, 11, 2)] == timedelta(hours=-5)


def test_weekday_slots_skip_wall_times_that_do_not_exist() -> None:
    # Cairo springs forward at midnight on Friday 30 Apr 2027: 00:00-00:59 never happen.
    cairo = ZoneInfo("Africa/Cairo")
    start = datetime(2027, 4, 29, 12, 0, tzinfo=cairo)

    slots = weekday_slots(start, 2, timezone="Africa/Cairo", hours=(0, 2))

    assert [s.isoformat() for s in slots] == [
        "2027-04-30T01:00:00+03:00",
        "2027-04-30T01:15:00+03:00",
        "2027-04-30T01:30:00+03:00",
        "2027-04-30T01:45:00+03:00",
    ]
    with pytest.raises(ValueError, match="timezone-aware"):
        weekday_slots(datetime(2026, 1, 1), 1)


# --- Calendly -----------------------------------------------------------------------


def test_calendly_lookup_then_range_uses_requested_zone_across_dst(
    sandbox: ProviderSandbox, http: requests.Session
) -> None:
    free = weekday_slots(NOW - timedelta(hours=2), 30)
    sandbox.add_calendly_event("acme", "intro-call", free)

    lookup = get(http, sandbox, "/api/booking/event_types/lookup", event_type_slug="intro-call", profile_slug="acme")
    assert lookup.status_code == 200
    event = lookup.json()
    assert event["availability_timezone"] == "America/New_York"
    assert event["public"] is True
    assert event["profile"]["timezone"] == "America/New_York"
    assert event["next_availability"] == "2026-10-26T10:00:00-04:00"

    response = get(
        http,
        sandbox,
        f"/api/booking/event_types/{event['uuid']}/calendar/range",
        timezone="America/New_York",
        diagnostics="false",
        range_start="2026-10-26",
        range_end="2026-11-04",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["today"] == "2026-10-26"
    assert body["invitee_publisher_error"] is False
    days = {d["date"]: d for d in body["days"]}
    assert list(days) == [str(date(2026, 10, 26) + timedelta(n)) for n in range(10)]
    assert days["2026-10-31"] == {"date": "2026-10-31", "status": "unavailable", "spots": [], "invitee_events": []}
    # Only slots at or after the server's now; the offset follows the DST change.
    assert spots_of([days["2026-10-26"]], "available")[0] == "2026-10-26T10:00:00-04:00"
    assert spots_of([days["2026-10-30"]], "available")[-1] == "2026-10-30T16:45:00-04:00"
    assert spots_of([days["2026-11-02"]], "available")[0] == "2026-11-02T09:00:00-05:00"

    window_end = datetime(2026, 11, 5, tzinfo=NEW_YORK)
    expected = {s for s in free if NOW <= s < window_end}
    available = spots_of(body["days"], "available")
    assert {datetime.fromisoformat(s) for s in available} == expected
    assert len(available) == len(expected)

    decoys = spots_of(body["days"], "unavailable")
    assert decoys
    assert not {datetime.fromisoformat(s) for s in decoys} & set(free)


def test_calendly_day_keys_are_local_to_the_requested_zone(sandbox: ProviderSandbox, http: requests.Session) -> None:
    free = weekday_slots(NOW, 14)
    event_uuid = sandbox.add_calendly_event("acme", "intro", free)
    tokyo = ZoneInfo("Asia/Tokyo")

    body = get(
        http,
        sandbox,
        f"/api/booking/event_types/{event_uuid}/calendar/range",
        timezone="Asia/Tokyo",
        range_start="2026-10-27",
        range_end="2026-11-05",
    ).json()

    for day in body["days"]:
        for spot in day["spots"]:
            assert spot["start_time"].endswith("+09:00")
            local = datetime.fromisoformat(spot["start_time"]).date()
            assert local.isoformat() == day["date"]
    starts = {datetime.fromisoformat(s) for s in spots_of(body["days"], "available")}
    low = datetime(2026, 10, 27, tzinfo=tokyo)
    high = datetime(2026, 11, 6, tzinfo=tokyo)
    assert starts == {s for s in free if low <= s < high}

    utc_body = get(
        http,
        sandbox,
        f"/api/booking/event_types/{event_uuid}/calendar/range",
        range_start="2026-10-27",
        range_end="2026-10-27",
    ).json()
    assert spots_of(utc_body["days"], "available")[0] == "2026-10-27T13:00:00+00:00"


def test_calendly_range_longer_than_31_days_is_rejected(sandbox: ProviderSandbox, http: requests.Session) -> None:
    event_uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(NOW, 30))
    path = f"/api/booking/event_types/{event_uuid}/calendar/range"

    too_long = get(http, sandbox, path, range_start="2026-10-26", range_end="2026-11-26")
    month = get(http, sandbox, path, range_start="2026-10-26", range_end="2026-11-25")

    assert too_long.status_code == 400
    assert too_long.json()["title"] == "Invalid Argument"
    assert month.status_code == 200
    assert len(month.json()["days"]) == 31
    missing = get(http, sandbox, "/api/booking/event_types/nope/calendar/range")
    assert missing.status_code == 404
    assert missing.json() == {"message": "not found"}


def test_calendly_scheduling_links_profiles_and_not_found(sandbox: ProviderSandbox, http: requests.Session) -> None:
    event_uuid = sandbox.add_calendly_event("jane", "demo", weekday_slots(NOW, 5), timezone="Europe/Berlin")
    sandbox.add_calendly_scheduling_link("cpz8-kq5-xyz", event_uuid)
    sandbox.add_calendly_profile("jane", [event_uuid], timezone="Europe/Berlin")

    link = get(http, sandbox, "/api/booking/scheduling_links/cpz8-kq5-xyz").json()
    assert link["owner_uuid"] == event_uuid
    assert link["owner_type"] == "EventType"
    shared = get(http, sandbox, "/api/booking/event_types/lookup", share_uuid=link["owner_uuid"]).json()
    assert shared["uuid"] == event_uuid
    assert shared["availability_timezone"] == "Europe/Berlin"

    profile = get(http, sandbox, "/api/booking/profiles/jane").json()
    assert profile["timezone"] == "Europe/Berlin"
    assert profile["name"]
    listed = get(http, sandbox, "/api/booking/profiles/jane/event_types").json()
    assert isinstance(listed, list)
    assert [(e["uuid"], e["slug"], e["duration"]) for e in listed] == [(event_uuid, "demo", 30)]

    for path in (
        "/api/booking/scheduling_links/jane",
        "/api/booking/profiles/nobody",
        "/api/booking/profiles/nobody/event_types",
    ):
        response = get(http, sandbox, path)
        assert (response.status_code, response.json()) == (404, {"message": "not found"})
    unknown = get(http, sandbox, "/api/booking/event_types/lookup", event_type_slug="x", profile_slug="nobody")
    assert (unknown.status_code, unknown.json()) == (404, {"message": "not found"})


def test_range_limits_are_configurable() -> None:
    with ProviderSandbox(clock=lambda: NOW, calendly_max_range_days=7, ghl_max_span_days=7) as sandbox:
        event_uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(NOW, 30))
        sandbox.add_ghl_calendar(GHL_ID, weekday_slots(NOW, 30))
        range_path = f"/api/booking/event_types/{event_uuid}/calendar/range"
        slots_path = f"/calendars/{GHL_ID}/free-slots"
        with requests.Session() as http:
            week = get(http, sandbox, range_path, range_start="2026-10-26", range_end="2026-11-01")
            eight = get(http, sandbox, range_path, range_start="2026-10-26", range_end="2026-11-02")
            span = get(http, sandbox, slots_path, startDate=ms(NOW), endDate=ms(NOW + timedelta(days=7)))
            longer = get(http, sandbox, slots_path, startDate=ms(NOW), endDate=ms(NOW + timedelta(days=7)) + 1)
    assert (week.status_code, eight.status_code, span.status_code, longer.status_code) == (200, 400, 200, 400)
    with pytest.raises(ValueError, match="at least one day"):
        ProviderSandbox(calendly_max_range_days=0)


def test_calendly_share_code_is_looked_up_as_an_event_type_uuid(
    sandbox: ProviderSandbox, http: requests.Session
) -> None:
    event_uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(NOW, 5), timezone="Europe/Berlin")
    sandbox.add_calendly_share_link("dvz-2k7-qpx", event_uuid)

    shared = get(http, sandbox, "/api/booking/event_types/lookup", event_type_uuid="dvz-2k7-qpx")
    unknown = get(http, sandbox, "/api/booking/event_types/lookup", event_type_uuid="zzz-000-zzz")

    assert (shared.status_code, shared.json()["uuid"]) == (200, event_uuid)
    assert (unknown.status_code, unknown.json()) == (404, {"message": "not found"})


def test_request_headers_are_recorded(sandbox: ProviderSandbox, http: requests.Session) -> None:
    sandbox.add_hubspot_link("alice", weekday_slots(NOW, 5))
    http.get(
        f"{sandbox.base_url}/meetings-public/v3/book/availability-page?slug=alice",
        headers={"Origin": "https://meetings-eu1.hubspot.com"},
        timeout=TIMEOUT,
    )
    ((target, headers),) = sandbox.request_headers
    assert target == "/meetings-public/v3/book/availability-page?slug=alice"
    assert headers["Origin"] == "https://meetings-eu1.hubspot.com"
    sandbox.reset()
    assert sandbox.request_headers == []


def test_calendly_secret_event_has_no_next_availability(sandbox: ProviderSandbox, http: requests.Session) -> None:
    event_uuid = sandbox.add_calendly_event("acme", "old", weekday_slots(NOW, 5), public=False)

    event = get(http, sandbox, "/api/booking/event_types/lookup", event_type_slug="old", profile_slug="acme").json()
    assert event["public"] is False
    assert event["next_availability"] is None
    assert event["unavailability_reason"]
    days = get(
        http,
        sandbox,
        f"/api/booking/event_types/{event_uuid}/calendar/range",
        range_start="2026-10-26",
        range_end="2026-10-30",
    ).json()["days"]
    assert all(d["status"] == "unavailable" and d["spots"] == [] for d in days)


# --- HubSpot ------------------------------------------------------------------------


def hubspot_page(
    http: requests.Session, sandbox: ProviderSandbox, slug: str, offset: int, **extra: Any
) -> requests.Response:
    return get(http, sandbox, "/meetings-public/v3/book/availability-page", slug=slug, monthOffset=offset, **extra)


def test_hubspot_months_has_more_and_team_slug(sandbox: ProviderSandbox, http: requests.Session) -> None:
    free = weekday_slots(NOW - timedelta(days=1), 46, timezone="UTC")
    sandbox.add_hubspot_link("team/intro-call", free, durations_ms=(900_000, 1_800_000, 3_600_000))

    seen: list[int] = []
    has_more: list[bool] = []
    for offset, month in enumerate((10, 11, 12)):
        response = hubspot_page(http, sandbox, "team/intro-call", offset, timezone="UTC")
        assert response.status_code == 200
        assert "team%2Fintro-call" in response.url
        link = response.json()["linkAvailability"]
        by_duration = link["linkAvailabilityByDuration"]
        assert set(by_duration) == {"900000", "1800000", "3600000"}
        half_hour = by_duration["1800000"]
        assert half_hour["meetingDurationMillis"] == 1_800_000
        starts = [a["startMillisUtc"] for a in half_hour["availabilities"]]
        assert all(a["endMillisUtc"] - a["startMillisUtc"] == 1_800_000 for a in half_hour["availabilities"])
        assert all(datetime.fromtimestamp(s / 1000, UTC).month == month for s in starts)
        seen += starts
        has_more.append(link["hasMore"])
        busy = response.json()["allUsersBusyTimes"]
        assert len(busy) == 2  # a team link has two users
        busy_starts = {b["start"] for user in busy for b in user["busyTimes"]}
        assert busy_starts
        assert not busy_starts & {ms(s) for s in free}

    assert has_more == [True, True, False]
    assert seen == [ms(s) for s in free if s >= NOW]

    last = hubspot_page(http, sandbox, "team/intro-call", 3).json()["linkAvailability"]
    assert last["hasMore"] is False
    assert last["linkAvailabilityByDuration"]["1800000"]["availabilities"] == []

    missing = hubspot_page(http, sandbox, "intro-call", 0)
    assert missing.status_code == 404
    assert missing.json()["message"] == "slug does not exist"
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_hubspot_months_are_counted_in_the_requested_zone(sandbox: ProviderSandbox, http: requests.Session) -> None:
    # Mon 30 Nov 2026 16:00 UTC is already 1 Dec in Tokyo.
    free = weekday_slots(NOW, 40, timezone="UTC")
    sandbox.add_hubspot_link("sales", free)
    tokyo = ZoneInfo("Asia/Tokyo")

    november = hubspot_page(http, sandbox, "sales", 1, timezone="Asia/Tokyo").json()
    december = hubspot_page(http, sandbox, "sales", 2, timezone="Asia/Tokyo").json()

    def months(body: dict[str, Any]) -> set[int]:
        by_duration = body["linkAvailability"]["linkAvailabilityByDuration"]
        availabilities = by_duration["1800000"]["availabilities"]
        return {datetime.fromtimestamp(a["startMillisUtc"] / 1000, tokyo).month for a in availabilities}

    assert months(november) == {11}
    assert months(december) == {12}
    assert november["linkAvailability"]["hasMore"] is True
    first_december = december["linkAvailability"]["linkAvailabilityByDuration"]["1800000"]["availabilities"][0][
        "startMillisUtc"
    ]
    assert first_december == ms(datetime(2026, 11, 30, 15, 0, tzinfo=UTC))


# --- GoHighLevel --------------------------------------------------------------------


def test_ghl_free_slots_keys_trace_id_and_dates_metadata(sandbox: ProviderSandbox, http: requests.Session) -> None:
    free = weekday_slots(NOW, 30, timezone="America/Chicago")
    sandbox.add_ghl_calendar(GHL_ID, free)
    end = datetime(2026, 11, 3, 9, 0, tzinfo=CHICAGO)  # exactly a free slot: inclusive
    path = f"/calendars/{GHL_ID}/free-slots"

    first = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(end)).json()
    second = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(end)).json()

    assert ("_dates_" in first) != ("_dates_" in second)
    for body in (first, second):
        assert re.fullmatch(r"[0-9a-f-]{36}", body.pop("traceId"))
        body.pop("_dates_", None)
    assert first == second
    assert sorted(first) == [
        "2026-10-26",
        "2026-10-27",
        "2026-10-28",
        "2026-10-29",
        "2026-10-30",
        "2026-11-02",
        "2026-11-03",
    ]
    assert first["2026-10-30"]["slots"][0] == "2026-10-30T09:00:00-05:00"
    assert first["2026-11-02"]["slots"][0] == "2026-11-02T09:00:00-06:00"
    assert first["2026-11-03"]["slots"] == ["2026-11-03T09:00:00-06:00"]
    returned = [datetime.fromisoformat(s) for day in first.values() for s in day["slots"]]
    assert returned == [s for s in free if NOW <= s <= end]

    in_utc = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(end), timezone="UTC").json()
    assert in_utc["2026-10-26"]["slots"][0] == "2026-10-26T14:00:00+00:00"
    assert in_utc["2026-10-26"]["slots"][-1] == "2026-10-26T21:45:00+00:00"


def test_ghl_rejects_spans_over_31_days_and_unknown_calendars(sandbox: ProviderSandbox, http: requests.Session) -> None:
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(NOW, 30))
    path = f"/calendars/{GHL_ID}/free-slots"
    day_ms = 86_400_000

    too_long = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(NOW) + 32 * day_ms)
    exact = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(NOW) + 31 * day_ms)
    unknown = get(http, sandbox, "/calendars/AAAAAAAAAAAAAAAAAAAA/free-slots", startDate=1, endDate=2)

    assert too_long.status_code == 400
    assert too_long.json() == {"statusCode": 400, "message": "Bad Request"}
    assert exact.status_code == 200
    assert (unknown.status_code, unknown.json()) == (404, {"statusCode": 404, "message": "Calendar not found"})


def test_booking_page_nuxt_data_holds_the_calendar_id(sandbox: ProviderSandbox, http: requests.Session) -> None:
    sandbox.add_ghl_booking_page("/widget/bookings/acme-demo", GHL_ID)

    response = http.get(
        sandbox.base_url + "/widget/bookings/acme-demo", headers={"Accept": "text/html"}, timeout=TIMEOUT
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    match = re.search(
        r'<script[^>]*id="(?:__)?NUXT_DATA(?:__)?"[^>]*>([\s\S]*?)</script>', response.text, re.IGNORECASE
    )
    assert match is not None
    payload = json.loads(match.group(1).strip())
    assert isinstance(payload, list)
    single_id_keys = [
        next(iter(item))
        for item in payload
        if isinstance(item, dict) and len(item) == 1 and re.fullmatch(r"[A-Za-z0-9]{20,}", next(iter(item)))
    ]
    assert single_id_keys == [GHL_ID]
    assert any(isinstance(i, dict) and len(i) > 2 for i in payload)
    assert get(http, sandbox, "/widget/bookings/other").status_code == 404


# --- faults, latency, failures ------------------------------------------------------


def test_fault_with_status_and_retry_after_applies_only_once(sandbox: ProviderSandbox, http: requests.Session) -> None:
    fault = Fault(status=429, headers=(("Retry-After", "1"),), times=1)
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(NOW, 5), fault=fault)
    path = f"/calendars/{GHL_ID}/free-slots"

    limited = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(NOW) + 1)
    normal = get(http, sandbox, path, startDate=ms(NOW), endDate=ms(NOW) + 1)

    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["statusCode"] == 429
    assert normal.status_code == 200
    assert "traceId" in normal.json()


def test_faults_send_raw_bodies_and_provider_shaped_errors(sandbox: ProviderSandbox, http: requests.Session) -> None:
    sandbox.add_hubspot_link("broken", weekday_slots(NOW, 5), fault=Fault(body="{not json"))
    event_uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(NOW, 5))
    sandbox.set_fault(event_uuid, Fault(status=503))
    sandbox.add_hubspot_link("busy", [], fault=Fault(status=429))

    raw = hubspot_page(http, sandbox, "broken", 0)
    calendly = get(http, sandbox, "/api/booking/event_types/lookup", event_type_slug="intro", profile_slug="acme")
    limited = hubspot_page(http, sandbox, "busy", 0)

    assert (raw.status_code, raw.text) == (200, "{not json")
    assert calendly.status_code == 503
    assert calendly.json()["title"] == "Service Unavailable"
    assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"
    sandbox.set_fault(event_uuid, None)
    assert get(
        http,
        sandbox,
        f"/api/booking/event_types/{event_uuid}/calendar/range",
        range_start="2026-10-26",
        range_end="2026-10-26",
    ).ok


def test_hang_fault_times_out_on_the_client_and_does_not_block_stop() -> None:
    sandbox = ProviderSandbox(clock=lambda: NOW).start()
    sandbox.add_hubspot_link("stuck", weekday_slots(NOW, 5), fault=Fault(hang=True))
    url = sandbox.base_url + "/meetings-public/v3/book/availability-page"

    with pytest.raises(requests.Timeout):
        requests.get(url, params={"slug": "stuck"}, timeout=0.3)
    started = time.monotonic()
    sandbox.stop()

    assert time.monotonic() - started < 5.0  # waiting for the hung handler would never end
    assert sandbox.requests_for("stuck") == 1


def test_latency_applies_per_request_without_serializing() -> None:
    with ProviderSandbox(latency_s=0.3, clock=lambda: NOW) as sandbox:
        sandbox.add_ghl_calendar(GHL_ID, weekday_slots(NOW, 5))
        url = f"{sandbox.base_url}/calendars/{GHL_ID}/free-slots"
        params = {"startDate": ms(NOW), "endDate": ms(NOW) + 86_400_000}

        def fetch(_: int) -> int:
            return requests.get(url, params=params, timeout=TIMEOUT).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=32) as pool:
            statuses = list(pool.map(fetch, range(32)))
        elapsed = time.monotonic() - started

    assert statuses == [200] * 32
    assert 0.3 <= elapsed < 4.0  # one after the other would take 9.6 s


def test_failure_rate_is_deterministic_per_seed_and_spares_lookups() -> None:
    def run(seed: int) -> list[int]:
        with ProviderSandbox(failure_rate=0.5, seed=seed, clock=lambda: NOW) as sandbox:
            sandbox.add_hubspot_link("flaky", weekday_slots(NOW, 5))
            sandbox.add_calendly_event("acme", "intro", weekday_slots(NOW, 5))
            with requests.Session() as http:
                statuses = [hubspot_page(http, sandbox, "flaky", 0) for _ in range(20)]
                lookups = [
                    get(
                        http, sandbox, "/api/booking/event_types/lookup", event_type_slug="intro", profile_slug="acme"
                    ).status_code
                    for _ in range(5)
                ]
        assert lookups == [200] * 5
        failed = [r for r in statuses if r.status_code == 503]
        assert failed
        assert all(r.headers["Retry-After"] == "1" for r in failed)
        return [r.status_code for r in statuses]

    first = run(7)
    assert run(7) == first
    assert 200 in first


def test_generate_unknown_answers_unregistered_calendars() -> None:
    with ProviderSandbox(generate_unknown=True, clock=lambda: NOW) as sandbox, requests.Session() as http:
        lookup = get(
            http, sandbox, "/api/booking/event_types/lookup", event_type_slug="intro", profile_slug="workspace-0042"
        ).json()
        again = get(
            http, sandbox, "/api/booking/event_types/lookup", event_type_slug="intro", profile_slug="workspace-0042"
        ).json()
        assert lookup["uuid"] == again["uuid"]
        days = get(
            http,
            sandbox,
            f"/api/booking/event_types/{lookup['uuid']}/calendar/range",
            timezone="America/New_York",
            range_start="2026-10-26",
            range_end="2026-11-25",
        ).json()["days"]
        assert len(spots_of(days, "available")) > 600

        hubspot = hubspot_page(http, sandbox, "rep-17", 1).json()["linkAvailability"]
        assert hubspot["linkAvailabilityByDuration"]["1800000"]["availabilities"]
        ghl = get(
            http,
            sandbox,
            "/calendars/GeneratedCalendar0001/free-slots",
            startDate=ms(NOW),
            endDate=ms(NOW) + 7 * 86_400_000,
        ).json()
        assert ghl["2026-10-27"]["slots"][0] == "2026-10-27T09:00:00-05:00"
        assert sandbox.requests_for(lookup["uuid"]) == 3


def test_requests_are_counted_per_calendar_and_logged(sandbox: ProviderSandbox, http: requests.Session) -> None:
    sandbox.add_hubspot_link("team/intro-call", weekday_slots(NOW, 5))
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(NOW, 5))

    for _ in range(3):
        hubspot_page(http, sandbox, "team/intro-call", 0)
    get(http, sandbox, f"/calendars/{GHL_ID}/free-slots", startDate=1, endDate=2)
    get(http, sandbox, "/nothing/here")

    assert sandbox.requests_for("team/intro-call") == 3
    assert sandbox.requests_for(GHL_ID) == 1
    assert sandbox.total_requests == 5
    assert sandbox.request_log[-1] == ("GET", "/nothing/here")
    assert sandbox.request_log[0][1].startswith("/meetings-public/v3/book/availability-page?slug=team%2Fintro-call")

    sandbox.reset()
    assert (sandbox.total_requests, sandbox.request_log) == (0, [])
    assert hubspot_page(http, sandbox, "team/intro-call", 0).status_code == 404


def test_keep_alive_connections_are_reused(sandbox: ProviderSandbox, http: requests.Session) -> None:
    sandbox.add_hubspot_link("rep", weekday_slots(NOW, 5))
    responses = [hubspot_page(http, sandbox, "rep", 0) for _ in range(3)]

    assert all(r.status_code == 200 for r in responses)
    assert all("close" not in r.headers.get("Connection", "") for r in responses)
    assert all(int(r.headers["Content-Length"]) == len(r.content) for r in responses)


def test_cli_prints_base_url_and_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    command = [sys.executable, "-m", "sandbox.providers", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--latency-ms", "10", "--generate-unknown"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert base_url is not None, line
        response = requests.get(
            base_url.group(0) + "/meetings-public/v3/book/availability-page", params={"slug": "anyone"}, timeout=TIMEOUT
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, stderr
    assert stderr == ""


def sandbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "provider-sandbox"]


def test_stop_releases_idle_keep_alive_connections() -> None:
    # Other servers (the session-wide sandbox of other test files) have their own threads.
    others = set(sandbox_threads())
    sandbox = ProviderSandbox().start()
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as client:
        client.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = client.recv(65536)
        assert answer.startswith(b"HTTP/1.1 404 ")
        assert b"Connection: close" not in answer  # kept alive, idle
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 5.0  # waiting for the idle connection would never end
        assert client.recv(65536) == b""  # the server closed it
    assert [thread for thread in sandbox_threads() if thread not in others] == []
