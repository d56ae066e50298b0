"""The parsers' fast paths (issue 12) against the one-slot-at-a-time loops they replaced: for every
payload the fuzzers generate, the same instants or the same error (type and message), so remembering
parsed texts and reading whole lists at once loosens nothing. Also the row JSON of lib/jsonfast.py against the
standard library."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lib import jsonfast, slots
from lib.errors import ProviderError, ProviderResponseError
from lib.providers import calendly, ghl, hubspot
from lib.slots import Window, checked_instants, instants_from_texts, normalize_slots, parse_instant_ms
from lib.store import timestamp_text
from tests.test_faults_fuzz import PARSERS, calendly_shaped, ghl_shaped, hubspot_shaped, timestamps, trees

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- the loops the fast paths replaced, written out as the reference ------------------------------------


def reference_instant(text: object) -> int:
    if not isinstance(text, str) or len(text) > 64:
        raise ProviderResponseError(f"slot time is not a timestamp string: {slots._preview(text)}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ProviderResponseError(f"invalid slot time {slots._preview(text)}") from exc
    if moment.tzinfo is None:
        raise ProviderResponseError(f"slot time without a UTC offset: {slots._preview(text)}")
    return reference_checked((moment - _EPOCH) // timedelta(milliseconds=1))


def reference_checked(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderResponseError(f"slot time is not a number: {slots._preview(value)}")
    if not slots._MIN_MS <= value <= slots._MAX_MS:
        raise ProviderResponseError(f"slot time out of range: {slots._preview(value)}")
    return int(value)


def reference_calendly(data: Any) -> list[int]:
    body = calendly.expect_dict(data, "Calendly calendar/range")
    instants: list[int] = []
    for raw_day in calendly.expect_list(body.get("days"), "Calendly calendar/range days"):
        day = calendly.expect_dict(raw_day, "Calendly calendar/range day")
        if day.get("status") == "unavailable":
            continue
        for raw_spot in calendly.expect_list(day.get("spots"), f"Calendly spots of day {day.get('date')!r}"):
            spot = calendly.expect_dict(raw_spot, "Calendly spot")
            if spot.get("status", "available") != "available":
                continue
            instants.append(reference_instant(spot.get("start_time")))
    return instants


def reference_hubspot_starts(data: Any) -> list[int]:
    body = hubspot.expect_dict(data, "HubSpot availability-page")
    availability = hubspot.expect_dict(body.get("linkAvailability"), "HubSpot linkAvailability")
    by_duration = hubspot.expect_dict(
        availability.get("linkAvailabilityByDuration"), "HubSpot linkAvailability.linkAvailabilityByDuration"
    )
    if not by_duration:
        return []
    if hubspot.THIRTY_MINUTES_MS not in by_duration:
        raise ProviderError("HubSpot link offers no 30-minute meetings")
    bucket = hubspot.expect_dict(by_duration[hubspot.THIRTY_MINUTES_MS], "HubSpot 30-minute availabilities")
    entries = hubspot.expect_list(bucket.get("availabilities"), "HubSpot 30-minute availabilities list")
    return [reference_checked(hubspot.expect_dict(e, "HubSpot availability").get("startMillisUtc")) for e in entries]


def reference_ghl(data: Any) -> list[int]:
    body = ghl.expect_dict(data, "GoHighLevel free-slots")
    ghl._reject_error_body(body)
    instants: list[int] = []
    for key, day in body.items():
        if not ghl._DATE_KEY.match(key) or not isinstance(day, dict) or "slots" not in day:
            continue
        for slot in ghl.expect_list(day["slots"], f"GoHighLevel slots of {key}"):
            start = slot.get("startTime") if isinstance(slot, dict) else slot
            instants.append(reference_instant(start))
    return instants


def outcome(parse: Any, payload: Any) -> tuple[str, Any]:
    try:
        return "ok", parse(payload)
    except ProviderError as exc:
        return type(exc).__name__, str(exc)


# --- the parsers: same instants, same first error --------------------------------------------------------

GOOD_SPOT = {"status": "available", "start_time": "2026-12-01T09:00:00-05:00"}


@PARSERS
@given(payload=calendly_shaped | trees)
@example(payload={"days": [{"spots": [GOOD_SPOT, {"start_time": "2026-12-01T09:15:00"}, "odd"]}]})
@example(payload={"days": [{"spots": [GOOD_SPOT, "odd", {"start_time": "2026-12-01T09:15:00"}]}]})
@example(payload={"days": [{"spots": [GOOD_SPOT, {"status": "available"}]}]})
def test_calendly_fast_path_matches_the_slot_by_slot_loop(payload: Any) -> None:
    assert outcome(calendly.parse_range, payload) == outcome(reference_calendly, payload)


@PARSERS
@given(payload=hubspot_shaped | trees)
@example(payload={"linkAvailability": {"linkAvailabilityByDuration": {"1800000": {"availabilities": []}}}})
def test_hubspot_fast_path_matches_the_entry_by_entry_loop(payload: Any) -> None:
    ours = outcome(lambda data: hubspot.parse_availability_page(data).starts_ms, payload)
    assert ours == outcome(reference_hubspot_starts, payload)


@pytest.mark.parametrize(
    "entries",
    [
        [{"startMillisUtc": 1_780_000_000_000}, {"startMillisUtc": True}],
        [{"startMillisUtc": 1_780_000_000_000.0}],  # a float in range is an instant, as before
        [{"startMillisUtc": 1_780_000_000_000}, {"startMillisUtc": 10**30}],
        [{"startMillisUtc": 1_780_000_000_000}, ["not", "an", "object"]],
        [{"startMillisUtc": 1_780_000_000_000}, {"start": 1}],
        [{"startMillisUtc": 946_684_799_990}, None],  # the first fault in order: the range, not the shape
        [{"startMillisUtc": 5}],
    ],
)
def test_hubspot_odd_entries_fail_or_pass_exactly_as_before(entries: list[Any]) -> None:
    payload = {"linkAvailability": {"linkAvailabilityByDuration": {"1800000": {"availabilities": entries}}}}
    ours = outcome(lambda data: hubspot.parse_availability_page(data).starts_ms, payload)
    assert ours == outcome(reference_hubspot_starts, payload)


@PARSERS
@given(payload=ghl_shaped | trees)
@example(payload={"2026-12-01": {"slots": ["2026-12-01T09:00:00-06:00", {"startTime": "2026-12-01T09:30:00"}]}})
@example(payload={"2026-12-01": {"slots": [{"startTime": "2026-12-01T09:00:00-06:00"}, ["x"]]}})
def test_ghl_fast_path_matches_the_slot_by_slot_loop(payload: Any) -> None:
    assert outcome(ghl.parse_free_slots, payload) == outcome(reference_ghl, payload)


@pytest.mark.parametrize("status", [400.0, 10**30, 503])
def test_a_ghl_error_body_with_any_numeric_status_is_an_error(status: float) -> None:
    # 400.0, or a code beyond 64 bits (a float once some decoders read it), must not read as "no slots".
    for body in ({"statusCode": status, "message": "nope"}, json.loads(json.dumps({"statusCode": status}))):
        with pytest.raises(ProviderResponseError, match="error body"):
            ghl.parse_free_slots(body)


# --- remembering parsed texts never loosens the checks ----------------------------------------------------


@PARSERS
@given(texts=st.lists(timestamps | trees, max_size=6))
def test_instants_from_texts_matches_parsing_each(texts: list[Any]) -> None:
    for _ in range(2):  # the second time every valid text is remembered
        assert outcome(instants_from_texts, texts) == outcome(lambda t: [reference_instant(x) for x in t], texts)


def test_a_remembered_text_does_not_make_a_similar_bad_one_pass() -> None:
    good = "2026-12-01T09:00:00+00:00"
    assert instants_from_texts([good]) == [parse_instant_ms(good)]
    for bad in ("2026-12-01T09:00:00", "2026-12-01T09:00:00+00:00 ", "1999-12-31T23:00:00+00:00", None, 1.5):
        with pytest.raises(ProviderResponseError):
            instants_from_texts([good, bad])
        with pytest.raises(ProviderResponseError):
            parse_instant_ms(bad)


def test_checked_instants_refuses_booleans_and_out_of_range_values_and_keeps_floats() -> None:
    assert checked_instants([]) == []
    assert checked_instants([1_780_000_000_000, 1_780_000_000_000.7]) == [1_780_000_000_000, 1_780_000_000_000]
    for bad in ([1_780_000_000_000, True], [1_780_000_000_000, 10**13 * 100], ["1780000000000"], [float("nan")]):
        with pytest.raises(ProviderResponseError):
            checked_instants(bad)


def test_the_memory_of_parsed_texts_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots, "_CACHE_SIZE", 8)
    monkeypatch.setattr(slots, "_MS_BY_TEXT", {})
    monkeypatch.setattr(slots, "_ISO_BY_MS", {})
    start = 1_780_000_000_000
    texts = [slots.iso_from_ms(start + minute * 60_000) for minute in range(40)]
    assert instants_from_texts(texts) == [start + minute * 60_000 for minute in range(40)]
    assert 0 < len(slots._MS_BY_TEXT) <= 8 and 0 < len(slots._ISO_BY_MS) <= 8


@PARSERS
@given(instants=st.lists(st.integers(slots._MIN_MS, slots._MIN_MS + 10**7), max_size=12), edge=st.integers(0, 10**7))
def test_normalize_slots_keeps_the_window_inclusive_sorted_and_unique(instants: list[int], edge: int) -> None:
    start = datetime.fromtimestamp(slots._MIN_MS / 1000, UTC) + timedelta(milliseconds=edge // 2)
    window = Window(start, start + timedelta(milliseconds=edge // 2))
    inside = sorted({ms for ms in instants if window.start_ms <= ms <= window.end_ms})
    assert normalize_slots(instants, window) == tuple(slots.iso_from_ms(ms) for ms in inside)
    assert normalize_slots(iter(instants), window) == normalize_slots(sorted(instants), window)


# --- lib/jsonfast.py -------------------------------------------------------------------------------------

# What a row holds: JSON values without NaN (a cache row never has one).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12,
)


@PARSERS
@given(
    value=st.dictionaries(st.text(max_size=5), json_values, max_size=4), texts=st.lists(st.text(max_size=8), max_size=5)
)
@example(value={}, texts=['a"b', "c"])
@example(value={"x": 1}, texts=["", ""])
@example(value={"x": "é"}, texts=["\\", "\x01"])
def test_object_with_strings_is_the_json_of_the_object_with_the_list(value: dict[str, Any], texts: list[str]) -> None:
    value.pop("slotsUtc", None)
    text = jsonfast.object_with_strings(value, "slotsUtc", tuple(texts))
    assert json.loads(text) == json.loads(json.dumps({**value, "slotsUtc": texts}))


def test_object_with_strings_refuses_a_key_the_object_has() -> None:
    with pytest.raises(ValueError, match="already"):
        jsonfast.object_with_strings({"slotsUtc": 1}, "slotsUtc", ())


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=45))]),
    )
)
def test_timestamp_text_is_the_columns_millisecond_form_in_utc(moment: datetime) -> None:
    # isoformat instead of strftime: the same text, milliseconds truncated as timestamp(3) stores them.
    utc = moment.astimezone(UTC)
    assert timestamp_text(moment) == f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}"
