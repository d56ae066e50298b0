"""Calendly's public booking API: resolve a booking link to an event type, then read its open spots."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lib.errors import ProviderError, ProviderHTTPError
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.slots import parse_instant_ms

LOOKUP_TIMEOUT_S = 12.0
RANGE_TIMEOUT_S = 20.0
NAME = "Calendly"


def fetch_slots(ctx: FetchContext, url: str, *, event_type_uuid: str | None, timezone: str | None) -> ProviderResult:
    """Open spots of the event type behind `url` (or of `event_type_uuid`, when it is known and alive)."""
    if event_type_uuid:
        try:
            return _range(ctx, event_type_uuid, timezone or "UTC")
        except ProviderHTTPError as exc:
            if exc.status not in (400, 404):
                raise
            # The cached or configured uuid is gone; resolve the link afresh below.
    uuid, resolved_zone = _resolve(ctx, url)
    return _range(ctx, uuid, resolved_zone)


def _resolve(ctx: FetchContext, url: str) -> tuple[str, str]:
    segments = [part for part in urlsplit(url.split("?", 1)[0]).path.split("/") if part]
    if len(segments) >= 2:
        found = _lookup(ctx, {"event_type_slug": segments[1], "profile_slug": segments[0]})
        if found is None:
            found = _via_scheduling_link(ctx, segments[1])
    elif len(segments) == 1:
        found = _via_scheduling_link(ctx, segments[0]) or _profile_default_event(ctx, segments[0])
    else:
        raise ProviderError(f"{NAME} link names no event type: {url}")
    if found is None:
        raise ProviderError(f"{NAME} event type not found for {url}")
    return found


def _lookup(ctx: FetchContext, params: dict[str, str]) -> tuple[str, str] | None:
    data = _get_or_none(ctx, "/api/booking/event_types/lookup", params, "event type lookup")
    if data is None:
        return None
    event = expect_dict(data, f"{NAME} event type lookup")
    if event.get("public") is False:
        raise ProviderError(f"{NAME} event type is secret or deactivated (public: false)")
    uuid = event.get("uuid")
    if not isinstance(uuid, str) or not uuid:
        raise ProviderError(f"{NAME} event type lookup returned no uuid")
    return uuid, _zone_name(event.get("availability_timezone"))


def _via_scheduling_link(ctx: FetchContext, slug: str) -> tuple[str, str] | None:
    link = _get_or_none(ctx, f"/api/booking/scheduling_links/{quote(slug, safe='')}", None, "scheduling link")
    if link is None:
        return None
    owner = expect_dict(link, f"{NAME} scheduling link").get("owner_uuid")
    if not isinstance(owner, str) or not owner:
        return None
    return _lookup(ctx, {"share_uuid": owner})


def _profile_default_event(ctx: FetchContext, slug: str) -> tuple[str, str] | None:
    path = f"/api/booking/profiles/{quote(slug, safe='')}"
    profile = _get_or_none(ctx, path, None, "profile")
    if profile is None:
        return None
    zone = _zone_name(expect_dict(profile, f"{NAME} profile").get("timezone"))
    events = expect_list(_get_or_none(ctx, f"{path}/event_types", None, "profile event types") or [], NAME)
    first = events[0] if events else None
    if not isinstance(first, dict) or not isinstance(first.get("uuid"), str):
        return None
    return first["uuid"], zone


def _range(ctx: FetchContext, uuid: str, zone_name: str) -> ProviderResult:
    zone_name = _zone_name(zone_name)
    zone = ZoneInfo(zone_name)
    first_day = ctx.window.start.astimezone(zone).date()
    last_day = ctx.window.end.astimezone(zone).date()
    params = {
        "timezone": zone_name,
        "diagnostics": "false",
        "range_start": first_day.isoformat(),
        "range_end": last_day.isoformat(),
    }
    data = ctx.http.get_json(
        f"{ctx.base_url}/api/booking/event_types/{quote(uuid, safe='')}/calendar/range",
        params=params,
        deadline=ctx.deadline,
        cap_s=RANGE_TIMEOUT_S,
        what=f"{NAME} calendar/range",
    )
    instants = _open_spots(expect_dict(data, f"{NAME} calendar/range"))
    return ProviderResult(instants, {"calendlyEventTypeUuid": uuid, "calendlyAvailabilityTimezone": zone_name})


def _open_spots(data: dict[str, Any]) -> list[int]:
    instants: list[int] = []
    for raw_day in expect_list(data.get("days", []), f"{NAME} days"):
        day = expect_dict(raw_day, f"{NAME} day")
        if day.get("status") == "unavailable":
            continue
        for raw_spot in expect_list(day.get("spots") or [], f"{NAME} spots"):
            spot = expect_dict(raw_spot, f"{NAME} spot")
            if spot.get("status", "available") != "available":
                continue
            instants.append(parse_instant_ms(spot.get("start_time")))
    return instants


def _get_or_none(ctx: FetchContext, path: str, params: dict[str, str] | None, what: str) -> Any:
    """A lookup's JSON, or None when Calendly says it does not exist (404)."""
    try:
        return ctx.http.get_json(
            f"{ctx.base_url}{path}", params=params, deadline=ctx.deadline, cap_s=LOOKUP_TIMEOUT_S, what=f"{NAME} {what}"
        )
    except ProviderHTTPError as exc:
        if exc.status == 404:
            return None
        raise


def _zone_name(value: Any) -> str:
    """A zone name Calendly gave us, or UTC when it gave none we can use."""
    if isinstance(value, str) and value:
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return "UTC"
