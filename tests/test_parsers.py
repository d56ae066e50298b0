"""The providers' pure parsers, fed the response shapes recorded in shared/spec/providers.md: every
shape, daylight-saving crossings, inclusive seams when a window is split, and malformed answers
(which must be a ProviderError with a clear message, never another exception)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from lib.config import DEFAULT_HUBSPOT_BASE_URL
from lib.errors import ProviderError, ProviderResponseError
from lib.providers.calendly import parse_range
from lib.providers.ghl import calendar_id_from_url, parse_free_slots
from lib.providers.hubspot import (
    api_base_url,
    booking_headers,
    meeting_slug,
    months_touched,
    parse_availability_page,
)
from lib.slots import (
    Window,
    day_chunks,
    iso_from_ms,
    ms_chunks,
    normalize_slots,
    parse_instant_ms,
    to_ms,
    unique_instants,
)

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
DAY_MS = 86_400_000


def utc_iso(instants: list[int]) -> list[str]:
    return [iso_from_ms(ms) for ms in instants]


# --- Calendly calendar/range ----------------------------------------------------------

# The recorded sample of providers.md §1a, verbatim.
CALENDLY_RECORDED = json.loads(
    """{
  "invitee_publisher_error": false,
  "today": "2022-02-15",
  "availability_timezone": "America/Denver",
  "days": [
    {"date": "2022-02-19", "status": "unavailable", "spots": [], "invitee_events": []},
    {"date": "2022-02-22", "status": "available", "invitee_events": [], "spots": [
      {"status": "available", "start_time": "2022-02-22T07:00:00-07:00", "invitees_remaining": 1},
      {"status": "available", "start_time": "2022-02-22T07:15:00-07:00", "invitees_remaining": 1}]}
  ],
  "diagnostic_data": null,
  "current_user": {"email": null, "locale": null, "is_pretending": false,
                   "diagnostics": {"available": false, "enabled": false}}
}"""
)


def calendly_day(day: str, status: str, *spots: tuple[str, str]) -> dict[str, Any]:
    return {
        "date": day,
        "status": status,
        "spots": [{"status": s, "start_time": t, "invitees_remaining": 1} for s, t in spots],
        "invitee_events": [],
    }


def test_calendly_recorded_sample_gives_its_spots_in_utc():
    assert utc_iso(parse_range(CALENDLY_RECORDED)) == ["2022-02-22T14:00:00.000Z", "2022-02-22T14:15:00.000Z"]


def test_calendly_unavailable_days_and_spots_are_skipped_and_status_less_spots_kept():
    body = {
        "days": [
            # An "unavailable" day is skipped even if it lists spots.
            calendly_day("2026-03-02", "unavailable", ("available", "2026-03-02T09:00:00-05:00")),
            calendly_day(
                "2026-03-03",
                "available",
                ("unavailable", "2026-03-03T08:45:00-05:00"),
                ("available", "2026-03-03T09:00:00-05:00"),
                ("booked", "2026-03-03T09:15:00-05:00"),
            ),
            {"date": "2026-03-04", "status": "available", "spots": [{"start_time": "2026-03-04T10:00:00-05:00"}]},
            # A group event with seats left.
            {
                "date": "2026-03-05",
                "status": "available",
                "spots": [{"status": "available", "start_time": "2026-03-05T11:00:00-05:00", "invitees_remaining": 7}],
            },
        ]
    }
    assert utc_iso(parse_range(body)) == [
        "2026-03-03T14:00:00.000Z",
        "2026-03-04T15:00:00.000Z",
        "2026-03-05T16:00:00.000Z",
    ]


def test_calendly_days_without_spots_and_an_empty_range_are_no_slots_not_errors():
    assert parse_range({"days": []}) == []
    assert parse_range({"days": [calendly_day("2026-03-02", "unavailable")]}) == []
    assert parse_range({"days": [calendly_day("2026-03-02", "available")]}) == []


def test_calendly_offsets_change_across_new_york_spring_forward():
    # New York moves from -05:00 to -04:00 on Sunday 8 March 2026: 9:00 local is 14:00Z, then 13:00Z.
    body = {
        "days": [
            calendly_day("2026-03-06", "available", ("available", "2026-03-06T09:00:00-05:00")),
            calendly_day("2026-03-08", "unavailable"),
            calendly_day("2026-03-09", "available", ("available", "2026-03-09T09:00:00-04:00")),
        ]
    }
    assert utc_iso(parse_range(body)) == ["2026-03-06T14:00:00.000Z", "2026-03-09T13:00:00.000Z"]


def test_calendly_offsets_change_across_berlin_autumn_change():
    # Berlin moves from +02:00 to +01:00 on Sunday 25 October 2026: 9:00 local is 07:00Z, then 08:00Z.
    body = {
        "days": [
            calendly_day("2026-10-23", "available", ("available", "2026-10-23T09:00:00+02:00")),
            calendly_day("2026-10-26", "available", ("available", "2026-10-26T09:00:00+01:00")),
        ]
    }
    assert utc_iso(parse_range(body)) == ["2026-10-23T07:00:00.000Z", "2026-10-26T08:00:00.000Z"]


def test_calendly_a_whole_dst_week_built_with_zoneinfo_round_trips():
    # Every half hour of 9:00-17:00 New York time around the autumn change, as Calendly would write it.
    starts = [
        datetime.combine(date(2026, 10, 29) + timedelta(days=offset), time(9), tzinfo=NEW_YORK)
        + timedelta(minutes=30 * step)
        for offset in range(6)
        for step in range(16)
    ]
    body = {"days": [calendly_day("x", "available", *(("available", s.isoformat()) for s in starts))]}
    expected = sorted(to_ms(s) for s in starts)
    assert sorted(parse_range(body)) == expected
    # The same 9:00 wall time is 13:00Z before the change and 14:00Z after it.
    assert iso_from_ms(expected[0]) == "2026-10-29T13:00:00.000Z"
    assert iso_from_ms(expected[-16]) == "2026-11-03T14:00:00.000Z"


BAD_CALENDLY = [
    (None, "calendar/range is missing or null"),
    ([], "calendar/range has an unexpected shape (expected an object, got a list)"),
    ({}, "calendar/range days is missing or null"),
    ({"days": None}, "calendar/range days is missing or null"),
    ({"days": "soon"}, "days has an unexpected shape (expected a list, got a string)"),
    ({"days": [None]}, "calendar/range day is missing or null"),
    ({"days": [7]}, "calendar/range day has an unexpected shape (expected an object, got a number)"),
    ({"days": [{"date": "2026-03-03", "status": "available"}]}, "spots of day '2026-03-03' is missing"),
    ({"days": [{"status": "available", "spots": {"a": 1}}]}, "expected a list, got an object"),
    ({"days": [{"status": "available", "spots": ["09:00"]}]}, "spot has an unexpected shape"),
    ({"days": [calendly_day("d", "available", ("available", "2026-12-01T09:00:00"))]}, "without a UTC offset"),
    ({"days": [{"status": "available", "spots": [{"status": "available"}]}]}, "not a timestamp string: None"),
    ({"days": [calendly_day("d", "available", ("available", "tomorrow at 9"))]}, "invalid slot time"),
    ({"days": [{"status": "available", "spots": [{"start_time": 1787159700000}]}]}, "not a timestamp string"),
    ({"days": [calendly_day("d", "available", ("available", "1900-01-01T09:00:00Z"))]}, "out of range"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_CALENDLY)
def test_calendly_malformed_answers_are_provider_response_errors(payload, message):
    with pytest.raises(ProviderResponseError) as raised:
        parse_range(payload)
    assert message in str(raised.value)
    assert str(raised.value).startswith(("Calendly", "slot time", "invalid slot time"))


# --- HubSpot availability-page --------------------------------------------------------

# The recorded shape of providers.md §2a, verbatim.
HUBSPOT_RECORDED = json.loads(
    """{
  "linkAvailability": {
    "hasMore": true,
    "linkAvailabilityByDuration": {
      "1800000": {"meetingDurationMillis": 1800000,
                  "availabilities": [{"startMillisUtc": 1787159700000, "endMillisUtc": 1787161500000}]}
    }
  },
  "allUsersBusyTimes": [{"isOffline": false,
                          "busyTimes": [{"start": 1787166000000, "end": 1787169600000}],
                          "meetingsUser": {"userId": "...", "calendarProvider": "GOOGLE"}}]
}"""
)


def hubspot_body(by_duration: Any, has_more: Any = False) -> dict[str, Any]:
    return {"linkAvailability": {"hasMore": has_more, "linkAvailabilityByDuration": by_duration}}


def bucket(duration: int, *starts: int) -> dict[str, Any]:
    return {
        "meetingDurationMillis": duration,
        "availabilities": [{"startMillisUtc": s, "endMillisUtc": s + duration} for s in starts],
    }


def test_hubspot_recorded_sample_gives_the_start_and_never_the_busy_time():
    page = parse_availability_page(HUBSPOT_RECORDED)
    assert page.starts_ms == [1787159700000]
    assert page.has_more is True
    assert 1787166000000 not in page.starts_ms


def test_hubspot_only_the_thirty_minute_bucket_is_read():
    base = 1_800_000_000_000
    body = hubspot_body(
        {
            "900000": bucket(900_000, base - 900_000, base),
            "1800000": bucket(1_800_000, base, base + 900_000),  # 15-minute steps for a 30-minute meeting
            "3600000": bucket(3_600_000, base + 7_200_000),
        }
    )
    page = parse_availability_page(body)
    assert page.starts_ms == [base, base + 900_000]
    assert page.has_more is False


def test_hubspot_link_without_thirty_minutes_is_a_clear_failure():
    with pytest.raises(ProviderError, match=r"^HubSpot link offers no 30-minute meetings$"):
        parse_availability_page(hubspot_body({"3600000": bucket(3_600_000, 1_800_000_000_000)}, True))


def test_hubspot_empty_month_and_missing_has_more():
    assert parse_availability_page(hubspot_body({})).starts_ms == []
    empty_bucket = parse_availability_page(hubspot_body({"1800000": bucket(1_800_000)}, True))
    assert (empty_bucket.starts_ms, empty_bucket.has_more) == ([], True)
    no_flag = {"linkAvailability": {"linkAvailabilityByDuration": {"1800000": bucket(1_800_000, 1_800_000_000_000)}}}
    assert parse_availability_page(no_flag).has_more is False
    # Only a real true means more: a string must not keep the loop going.
    assert parse_availability_page(hubspot_body({}, "yes")).has_more is False


def test_hubspot_float_milliseconds_are_accepted():
    assert parse_availability_page(hubspot_body({"1800000": bucket(1_800_000, 1.8e12)})).starts_ms == [
        1_800_000_000_000
    ]


BAD_HUBSPOT = [
    (None, "availability-page is missing or null"),
    ("<html>", "availability-page has an unexpected shape (expected an object, got a string)"),
    ({}, "linkAvailability is missing or null"),
    ({"linkAvailability": []}, "linkAvailability has an unexpected shape"),
    ({"linkAvailability": {"hasMore": False}}, "linkAvailabilityByDuration is missing or null"),
    (hubspot_body([]), "linkAvailabilityByDuration has an unexpected shape"),
    (hubspot_body({"1800000": None}), "30-minute availabilities is missing or null"),
    (hubspot_body({"1800000": {"meetingDurationMillis": 1800000}}), "availabilities list is missing"),
    (hubspot_body({"1800000": {"availabilities": [None]}}), "availability is missing or null"),
    (hubspot_body({"1800000": {"availabilities": [{"endMillisUtc": 1}]}}), "slot time is not a number: None"),
    (hubspot_body({"1800000": {"availabilities": [{"startMillisUtc": "1787159700000"}]}}), "not a number"),
    (hubspot_body({"1800000": {"availabilities": [{"startMillisUtc": True}]}}), "not a number: True"),
    (hubspot_body({"1800000": {"availabilities": [{"startMillisUtc": float("nan")}]}}), "out of range"),
    (hubspot_body({"1800000": {"availabilities": [{"startMillisUtc": 1787159700}]}}), "out of range"),  # seconds
]


@pytest.mark.parametrize(("payload", "message"), BAD_HUBSPOT)
def test_hubspot_malformed_answers_are_provider_response_errors(payload, message):
    with pytest.raises(ProviderResponseError) as raised:
        parse_availability_page(payload)
    assert message in str(raised.value)
    assert str(raised.value).startswith(("HubSpot", "slot time"))


# --- HubSpot links --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://meetings.hubspot.com/alice", "alice"),
        ("https://meetings.hubspot.com/alice/?uuid=1#top", "alice"),
        ("https://meetings-eu1.hubspot.com/alice", "alice"),
        ("https://meetings-na2.hubspot.com/team/intro-call", "team/intro-call"),
        ("https://meetings-ap1.hubspot.com/team%2Fintro-call", "team/intro-call"),
        ("https://book.acme.example/meetings/bob", "bob"),
        ("https://www.acme.example/meetings/sales/demo/", "sales/demo"),
        ("https://app.hubspot.com/meetings/carol", "carol"),
        ("https://example.com/alice", None),
        ("https://meetings.hubspot.com/", None),
        ("https://evil-meetings.hubspot.com.example/alice", None),
    ],
)
def test_hubspot_meeting_slugs(url, slug):
    assert meeting_slug(url) == slug


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("https://meetings-eu1.hubspot.com/alice", DEFAULT_HUBSPOT_BASE_URL, "https://api-eu1.hubapi.com"),
        ("https://meetings-eu1.hubspot.com/alice", DEFAULT_HUBSPOT_BASE_URL + "/", "https://api-eu1.hubapi.com"),
        ("https://meetings.hubspot.com/alice", DEFAULT_HUBSPOT_BASE_URL, DEFAULT_HUBSPOT_BASE_URL),
        ("https://meetings-na2.hubspot.com/alice", DEFAULT_HUBSPOT_BASE_URL, DEFAULT_HUBSPOT_BASE_URL),
        ("https://book.acme.example/meetings/bob", DEFAULT_HUBSPOT_BASE_URL, DEFAULT_HUBSPOT_BASE_URL),
        # A configured HUBSPOT_BASE_URL wins for every link (local sandbox, a proxy, a new region).
        ("https://meetings-eu1.hubspot.com/alice", "http://127.0.0.1:9", "http://127.0.0.1:9"),
    ],
)
def test_hubspot_api_host_per_booking_host(url, configured, expected):
    assert api_base_url(url, configured) == expected


def test_hubspot_booking_headers_name_the_booking_page():
    assert booking_headers("https://meetings-eu1.hubspot.com/team/intro?x=1") == {
        "Origin": "https://meetings-eu1.hubspot.com",
        "Referer": "https://meetings-eu1.hubspot.com/team/intro",
    }


@pytest.mark.parametrize(
    ("start", "days", "months"),
    [
        (datetime(2026, 3, 1, tzinfo=UTC), 30, 1),
        (datetime(2026, 3, 5, tzinfo=UTC), 30, 2),
        (datetime(2027, 1, 31, 12, tzinfo=UTC), 30, 3),  # Jan 31 -> Mar 2
        (datetime(2026, 1, 31, 12, tzinfo=UTC), 90, 5),  # Jan 31 -> May 1
        (datetime(2026, 12, 20, tzinfo=UTC), 30, 2),  # over the new year
        # 30 April in Los Angeles is already 1 May in UTC, the zone the months are asked in.
        (datetime(2026, 4, 30, 20, tzinfo=ZoneInfo("America/Los_Angeles")), 1, 1),
    ],
)
def test_hubspot_months_the_window_touches(start, days, months):
    assert months_touched(Window.ahead(start, days)) == months


# --- GoHighLevel free-slots -----------------------------------------------------------

# The recorded shape of providers.md §3a (with a traceId) and of the v2 spec example.
GHL_RECORDED = json.loads(
    """{
  "2026-03-10": {"slots": ["2026-03-10T09:00:00-05:00", "2026-03-10T09:30:00-05:00"]},
  "2026-03-11": {"slots": ["2026-03-11T10:00:00-05:00"]},
  "traceId": "4c1a9a3e-2f6d-4b8e-9d0e-1f2a3b4c5d6e"
}"""
)


def test_ghl_recorded_sample_gives_its_slots_in_utc():
    assert utc_iso(sorted(parse_free_slots(GHL_RECORDED))) == [
        "2026-03-10T14:00:00.000Z",
        "2026-03-10T14:30:00.000Z",
        "2026-03-11T15:00:00.000Z",
    ]


def test_ghl_metadata_keys_are_ignored_and_slot_objects_read():
    body = {
        "_dates_": {"startDate": "2026-03-10", "endDate": "2026-03-12", "slots": ["2026-03-10T01:00:00Z"]},
        "traceId": "t",
        "2026-03-10": {"slots": [{"startTime": "2026-03-10T09:00:00-05:00", "endTime": "2026-03-10T09:30:00-05:00"}]},
        "2026-03-11": {"slots": ["2026-03-11T10:00:00-05:00", {"startTime": "2026-03-11T10:30:00-05:00"}]},
        "2026-03-12": {"slots": []},
        "2026-03-13": "closed",  # not a day object: ignored, as the spec says to read only day objects
        "2026-03-14": {"note": "no slots key"},
        "20260315": {"slots": ["2026-03-15T10:00:00-05:00"]},  # not a YYYY-MM-DD key
    }
    assert utc_iso(sorted(parse_free_slots(body))) == [
        "2026-03-10T14:00:00.000Z",
        "2026-03-11T15:00:00.000Z",
        "2026-03-11T15:30:00.000Z",
    ]


def test_ghl_empty_answers_are_no_slots():
    assert parse_free_slots({}) == []
    assert parse_free_slots({"traceId": "t"}) == []
    assert parse_free_slots({"_dates_": {}, "traceId": "t"}) == []


def test_ghl_offsets_change_across_chicago_spring_forward():
    # Chicago moves from -06:00 to -05:00 on 8 March 2026; day keys stay local dates.
    body = {
        "2026-03-07": {"slots": ["2026-03-07T09:00:00-06:00"]},
        "2026-03-09": {"slots": ["2026-03-09T09:00:00-05:00"]},
        "traceId": "t",
    }
    assert utc_iso(sorted(parse_free_slots(body))) == ["2026-03-07T15:00:00.000Z", "2026-03-09T14:00:00.000Z"]


def test_ghl_the_repeated_fall_back_hour_gives_two_instants():
    # 1:30 happens twice in New York on 1 November 2026; the offsets tell the two apart.
    body = {"2026-11-01": {"slots": ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"]}}
    assert utc_iso(sorted(parse_free_slots(body))) == ["2026-11-01T05:30:00.000Z", "2026-11-01T06:30:00.000Z"]


BAD_GHL = [
    (None, "free-slots is missing or null"),
    (["2026-03-10T09:00:00-05:00"], "free-slots has an unexpected shape (expected an object, got a list)"),
    ({"2026-03-10": {"slots": None}}, "slots of 2026-03-10 is missing or null"),
    ({"2026-03-10": {"slots": "09:00"}}, "slots of 2026-03-10 has an unexpected shape"),
    ({"2026-03-10": {"slots": [None]}}, "not a timestamp string: None"),
    ({"2026-03-10": {"slots": [{"endTime": "2026-03-10T09:30:00-05:00"}]}}, "not a timestamp string: None"),
    ({"2026-03-10": {"slots": ["2026-03-10T09:00:00"]}}, "without a UTC offset"),
    ({"2026-03-10": {"slots": [1773151200000]}}, "not a timestamp string"),
    ({"statusCode": 400, "message": "Bad Request"}, "error body (400: Bad Request)"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_GHL)
def test_ghl_malformed_answers_are_provider_response_errors(payload, message):
    with pytest.raises(ProviderResponseError) as raised:
        parse_free_slots(payload)
    assert message in str(raised.value)
    assert str(raised.value).startswith(("GoHighLevel", "slot time"))


@pytest.mark.parametrize(
    ("url", "calendar_id"),
    [
        ("https://api.leadconnectorhq.com/widget/booking/xqwSvxDlit1P0lTnTrfx", "xqwSvxDlit1P0lTnTrfx"),
        ("https://api.acmebrand.com/widget/booking/xqwSvxDlit1P0lTnTrfx?heightMode=full", "xqwSvxDlit1P0lTnTrfx"),
        ("https://link.msgsndr.com/widget/booking/xqwSvxDlit1P0lTnTrfx/", "xqwSvxDlit1P0lTnTrfx"),
        ("https://api.leadconnectorhq.com/widget/bookings/growthlabpro", None),
        ("https://api.leadconnectorhq.com/widget/booking/short", None),
    ],
)
def test_ghl_calendar_id_from_booking_links(url, calendar_id):
    assert calendar_id_from_url(url) == calendar_id


# --- Timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-23T09:00:00+02:00", "2026-10-23T07:00:00.000Z"),
        ("2020-01-02T20:00:00.000000Z", "2020-01-02T20:00:00.000Z"),  # Calendly API v2
        ("2026-03-10T09:00:00.123-05:00", "2026-03-10T14:00:00.123Z"),
        ("2026-03-10T09:00:00.123999-05:00", "2026-03-10T14:00:00.123Z"),  # truncated like Date
        ("2026-07-01T05:30:00+05:30", "2026-07-01T00:00:00.000Z"),
    ],
)
def test_timestamps_with_any_offset_become_utc(text, expected):
    assert iso_from_ms(parse_instant_ms(text)) == expected


# --- Split windows and their seams ----------------------------------------------------


def test_day_chunks_cover_every_date_once_within_the_limit():
    first, last = date(2026, 1, 1), date(2026, 3, 31)
    chunks = day_chunks(first, last, 31)
    assert chunks == [
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 3, 3)),
        (date(2026, 3, 4), date(2026, 3, 31)),
    ]
    covered = [start + timedelta(days=n) for start, end in chunks for n in range((end - start).days + 1)]
    assert covered == [first + timedelta(days=n) for n in range(90)]
    assert day_chunks(first, first + timedelta(days=30), 31) == [(first, first + timedelta(days=30))]
    assert day_chunks(first, first, 31) == [(first, first)]
    with pytest.raises(ValueError, match="max_days"):
        day_chunks(first, last, 0)


@pytest.mark.parametrize("days", [1, 30, 31, 32, 62, 90])
def test_ms_chunks_share_their_seams_and_respect_the_limit(days):
    start = to_ms(datetime(2026, 10, 20, 12, tzinfo=UTC))
    end = start + days * DAY_MS
    chunks = ms_chunks(start, end, 31 * DAY_MS)
    assert chunks[0][0] == start
    assert chunks[-1][1] == end
    assert all(0 < high - low <= 31 * DAY_MS for low, high in chunks)
    assert all(chunks[n][1] == chunks[n + 1][0] for n in range(len(chunks) - 1))  # inclusive seams, no gap
    assert len(chunks) == -(-days // 31)


def test_a_slot_exactly_at_a_seam_is_joined_once():
    start = to_ms(datetime(2026, 10, 20, 12, tzinfo=UTC))
    (_, seam), (seam_again, end) = ms_chunks(start, start + 40 * DAY_MS, 31 * DAY_MS)
    assert seam == seam_again
    # What an inclusive provider answers for each span: the seam start comes back twice.
    first = [start, seam - 1_800_000, seam]
    second = [seam, seam + 1_800_000, end]
    assert unique_instants(first + second) == [start, seam - 1_800_000, seam, seam + 1_800_000, end]


def test_the_window_keeps_both_of_its_ends():
    now = datetime(2026, 10, 20, 12, tzinfo=UTC)
    window = Window.ahead(now, 30)
    inside = [window.start_ms, window.end_ms, window.start_ms + DAY_MS]
    outside = [window.start_ms - 1, window.end_ms + 1]
    kept = normalize_slots(inside + outside + inside, window)
    assert kept == tuple(iso_from_ms(ms) for ms in sorted(inside))
