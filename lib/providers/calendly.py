"""Calendly's public booking API: resolve a booking link to an event type, then read its open spots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lib.errors import ProviderError, ProviderHTTPError
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.slots import day_chunks, instants_from_texts, parse_instant_ms, unique_instants

LOOKUP_TIMEOUT_S = 12.0
RANGE_TIMEOUT_S = 20.0
# The booking API rejects ranges wider than "about a month" (providers.md §1a); 31 dates per call,
# both ends inclusive, fits every reading of that limit. Longer windows take several calls.
MAX_RANGE_DAYS = 31
NAME = "Calendly"
SHARE_LINK_SEGMENT = "d"  # calendly.com/d/{code}/...: share and single-use links
# Event type ids as Calendly writes them; anything else (a NUL, say) must not reach the cache row.
_EVENT_TYPE_UUID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CalendlyEventUnavailable(ProviderError):
    """The link resolves, but its event type is secret or deactivated (`public: false`)."""


@dataclass(frozen=True)
class EventType:
    uuid: str
    timezone: str
    public: bool = True


def fetch_slots(ctx: FetchContext, url: str, *, event_type_uuid: str | None, timezone: str | None) -> ProviderResult:
    """Open spots of the event type behind `url` (or of `event_type_uuid`, when it is known and alive)."""
    if event_type_uuid:
        known = _range_if_found(ctx, EventType(event_type_uuid, _zone_name(timezone)))
        if known is not None:
            return known if known.instants_ms else _confirm_empty(ctx, url, event_type_uuid, known)
        # The cached or configured uuid is gone: resolve the link afresh.
    return _range(ctx, _public(_resolve(ctx, url), url))


def _confirm_empty(ctx: FetchContext, url: str, uuid: str, empty: ProviderResult) -> ProviderResult:
    """A known event type with no open spot may have been made secret since: look the link up again,
    and only a secret event turns "no slots" into a failure. Other lookup trouble keeps the answer."""
    try:
        event = _resolve(ctx, url)
    except ProviderError:
        return empty
    if event.uuid == uuid:
        _public(event, url)
    return empty


def _public(event: EventType, url: str) -> EventType:
    if not event.public:
        raise CalendlyEventUnavailable(f"{NAME} event type is secret or deactivated (public: false): {url}")
    return event


def _resolve(ctx: FetchContext, url: str) -> EventType:
    """The event type a booking link names, following the origin's order of attempts (origin §5.2)."""
    segments = [unquote(part) for part in urlsplit(url.split("?", 1)[0]).path.split("/") if part]
    if len(segments) >= 2 and segments[0] == SHARE_LINK_SEGMENT:
        found = _via_share_code(ctx, segments[1])
        if found is None:
            raise ProviderError(f"{NAME} event type not found: the /d/ link may have been paused or expired: {url}")
        return found
    if len(segments) >= 2:
        found = _lookup(ctx, {"event_type_slug": segments[1], "profile_slug": segments[0]})
        found = found or _via_scheduling_link(ctx, segments[1])
    elif len(segments) == 1:
        found = _via_scheduling_link(ctx, segments[0]) or _profile_default_event(ctx, segments[0])
    else:
        raise ProviderError(f"{NAME} link names no event type: {url}")
    if found is None:
        raise ProviderError(f"{NAME} event type not found for {url}")
    return found


def _via_share_code(ctx: FetchContext, code: str) -> EventType | None:
    # Unverified (providers.md §1a): one integration looks the code up as an event type uuid;
    # single-use links also live under /d/, so the scheduling-link route is tried next.
    return _lookup(ctx, {"event_type_uuid": code}) or _via_scheduling_link(ctx, code)


def _lookup(ctx: FetchContext, params: dict[str, str]) -> EventType | None:
    data = _get_or_none(ctx, "/api/booking/event_types/lookup", params, "event type lookup")
    if data is None:
        return None
    event = expect_dict(data, f"{NAME} event type lookup")
    uuid = _usable_uuid(event.get("uuid"))
    if uuid is None:
        return None  # e.g. {"message": "not found"} with a 200: the next way of resolving may work
    return EventType(uuid, _zone_name(event.get("availability_timezone")), event.get("public") is not False)


def _via_scheduling_link(ctx: FetchContext, slug: str) -> EventType | None:
    link = _get_or_none(ctx, f"/api/booking/scheduling_links/{quote(slug, safe='')}", None, "scheduling link")
    if link is None:
        return None
    owner = expect_dict(link, f"{NAME} scheduling link").get("owner_uuid")
    if not isinstance(owner, str) or not owner:
        return None
    return _lookup(ctx, {"share_uuid": owner})


def _profile_default_event(ctx: FetchContext, slug: str) -> EventType | None:
    path = f"/api/booking/profiles/{quote(slug, safe='')}"
    profile = _get_or_none(ctx, path, None, "profile")
    if profile is None:
        return None
    zone = _zone_name(expect_dict(profile, f"{NAME} profile").get("timezone"))
    listed = _get_or_none(ctx, f"{path}/event_types", None, "profile event types")
    events = expect_list([] if listed is None else listed, f"{NAME} profile event types")
    # The origin takes the first event type, as Calendly lists them, when a profile has several.
    first = events[0] if events else None
    if not isinstance(first, dict):
        return None
    uuid = _usable_uuid(first.get("uuid"))
    if uuid is None:
        return None
    return EventType(uuid, zone, first.get("public") is not False)


def _range_if_found(ctx: FetchContext, event: EventType) -> ProviderResult | None:
    try:
        return _range(ctx, event)
    except ProviderHTTPError as exc:
        if exc.status in (400, 404):
            return None
        raise


def _range(ctx: FetchContext, event: EventType) -> ProviderResult:
    """Every open spot of the window, asked for in the event's zone, in runs of MAX_RANGE_DAYS dates."""
    zone_name = _zone_name(event.timezone)
    zone = ZoneInfo(zone_name)
    first_day = ctx.window.start.astimezone(zone).date()
    last_day = ctx.window.end.astimezone(zone).date()
    instants: list[int] = []
    for chunk_start, chunk_end in day_chunks(first_day, last_day, MAX_RANGE_DAYS):
        data = ctx.http.get_json(
            f"{ctx.base_url}/api/booking/event_types/{quote(event.uuid, safe='')}/calendar/range",
            params={
                "timezone": zone_name,
                "diagnostics": "false",
                "range_start": chunk_start.isoformat(),
                "range_end": chunk_end.isoformat(),
            },
            deadline=ctx.deadline,
            cap_s=RANGE_TIMEOUT_S,
            what=f"{NAME} calendar/range",
        )
        instants.extend(parse_range(data))
    meta = {"calendlyEventTypeUuid": event.uuid, "calendlyAvailabilityTimezone": zone_name}
    return ProviderResult(unique_instants(instants), meta)


def parse_range(data: Any) -> list[int]:
    """The open spots of a `calendar/range` answer, in epoch ms.

    Days whose status is "unavailable" and spots whose status is not "available" are skipped; a
    spot without a status counts as open, as the origin read every spot.
    """
    body = expect_dict(data, f"{NAME} calendar/range")
    days = body.get("days")
    if _plain_days(days):
        try:  # the usual answer, in one pass; anything odd takes the day-by-day loop below
            times = [
                spot["start_time"]
                for day in days
                if day.get("status") != "unavailable"
                for spot in day["spots"]
                if spot.get("status", "available") == "available"
            ]
        except (AttributeError, KeyError, TypeError):
            pass
        else:
            return instants_from_texts(times)
    instants: list[int] = []
    for raw_day in expect_list(days, f"{NAME} calendar/range days"):
        day = expect_dict(raw_day, f"{NAME} calendar/range day")
        if day.get("status") == "unavailable":
            continue
        spots = expect_list(day.get("spots"), f"{NAME} spots of day {day.get('date')!r}")
        instants.extend(_open_spot_instants(spots))
    return instants


def _plain_days(days: Any) -> TypeGuard[list[dict[str, Any]]]:
    """A list of day objects, each unavailable or with a list of spots: then reading the spots in one
    pass cannot skip past a fault the day-by-day loop would name (a dict or text where the spots
    list belongs iterates as something else)."""
    return type(days) is list and all(
        type(day) is dict and (day.get("status") == "unavailable" or type(day.get("spots")) is list) for day in days
    )


def _open_spot_instants(spots: list[Any]) -> list[int]:
    """The open spots of one day. The comprehension is the usual case (every spot an object with a
    start time); an odd spot sends the day through the one-by-one loop, which finds and names the
    first fault in the order the spots came, as a single loop would."""
    try:
        times = [spot["start_time"] for spot in spots if spot.get("status", "available") == "available"]
    except (AttributeError, KeyError, TypeError):
        instants: list[int] = []
        for raw_spot in spots:
            spot = expect_dict(raw_spot, f"{NAME} spot")
            if spot.get("status", "available") == "available":
                instants.append(parse_instant_ms(spot.get("start_time")))
        return instants
    return instants_from_texts(times)


def _get_or_none(ctx: FetchContext, path: str, params: dict[str, str] | None, what: str) -> Any:
    """A lookup's JSON, or None when Calendly says it does not exist (404)."""
    try:
        data = ctx.http.get_json(
            f"{ctx.base_url}{path}", params=params, deadline=ctx.deadline, cap_s=LOOKUP_TIMEOUT_S, what=f"{NAME} {what}"
        )
    except ProviderHTTPError as exc:
        if exc.status == 404:
            return None
        raise
    return None if _says_not_found(data) else data


def _says_not_found(data: Any) -> bool:
    # Calendly's not-found body, {"message": "not found"}, has been seen as the answer to unknown names.
    return isinstance(data, dict) and str(data.get("message", "")).strip().lower() == "not found"


def _usable_uuid(value: Any) -> str | None:
    return value if isinstance(value, str) and _EVENT_TYPE_UUID.fullmatch(value) else None


def _zone_name(value: Any) -> str:
    """A zone name Calendly gave us, or UTC when it gave none we can use."""
    if isinstance(value, str) and value:
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return "UTC"
