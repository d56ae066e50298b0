"""GoHighLevel (LeadConnector) public free-slots: the open slots of a booking calendar."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

from lib.errors import ProviderError, ProviderHTTPError
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.slots import parse_instant_ms

TIMEOUT_S = 15.0
NAME = "GoHighLevel"
_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUXT_DATA = re.compile(r'<script[^>]*id="(?:__)?NUXT_DATA(?:__)?"[^>]*>([\s\S]*?)</script>', re.IGNORECASE)
_CALENDAR_ID = re.compile(r"^[A-Za-z0-9]{20,}$")
_BOOKING_ID = re.compile(r"/widget/booking/([A-Za-z0-9]{10,})(?:$|[/?#])")


def calendar_id_from_url(url: str) -> str | None:
    """The calendar id of a `…/widget/booking/{id}` link, read without fetching the page."""
    match = _BOOKING_ID.search(urlsplit(url).path)
    return match.group(1) if match else None


def fetch_slots(ctx: FetchContext, url: str, *, calendar_id_hints: list[str]) -> ProviderResult:
    """Free slots of the first calendar id that answers: the hints in order (cached id, then the
    workspace's configured calendar), then the id in a `/widget/booking/{id}` URL, and last the id
    found in the booking page's `__NUXT_DATA__` (slug links and white-label domains)."""
    candidates = [
        candidate for candidate in dict.fromkeys([*calendar_id_hints, calendar_id_from_url(url)]) if candidate
    ]
    for calendar_id in candidates:
        instants = _free_slots_if_found(ctx, calendar_id)
        if instants is not None:
            return ProviderResult(instants, {"ghlCalendarId": calendar_id, "resolvedUrl": url})
    page_id, resolved_url = _calendar_id_from_page(ctx, url)
    if page_id in candidates:
        raise ProviderError(f"{NAME} calendar {page_id} not found")
    instants = _free_slots_if_found(ctx, page_id)
    if instants is None:
        raise ProviderError(f"{NAME} calendar {page_id} not found")
    return ProviderResult(instants, {"ghlCalendarId": page_id, "resolvedUrl": resolved_url})


def _free_slots_if_found(ctx: FetchContext, calendar_id: str) -> list[int] | None:
    try:
        return _free_slots(ctx, calendar_id)
    except ProviderHTTPError as exc:
        if exc.status in (400, 404, 422):
            return None  # a stale or mistyped id: the next candidate may work
        raise


def _calendar_id_from_page(ctx: FetchContext, url: str) -> tuple[str, str]:
    page = ctx.http.get_tenant_page(
        url, deadline=ctx.deadline, cap_s=TIMEOUT_S, what=f"{NAME} booking page", allow_private=ctx.allow_private
    )
    calendar_id = extract_nuxt_calendar_id(page.body.decode("utf-8", "replace"))
    if calendar_id is None:
        raise ProviderError(f"{NAME} booking page has no calendar id: {url}")
    return calendar_id, page.url


def extract_nuxt_calendar_id(html: str) -> str | None:
    """The calendar id in a Nuxt booking page: the only key of a small object in the __NUXT_DATA__ array."""
    match = _NUXT_DATA.search(html)
    if match is None:
        return None
    try:
        payload = json.loads(match.group(1).strip())
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, list):
        return None
    for item in payload:
        if isinstance(item, dict) and len(item) == 1:
            (key,) = item
            if _CALENDAR_ID.match(key):
                return str(key)
    return None


def _free_slots(ctx: FetchContext, calendar_id: str) -> list[int]:
    data = ctx.http.get_json(
        f"{ctx.base_url}/calendars/{quote(calendar_id, safe='')}/free-slots",
        params={
            "startDate": str(ctx.window.start_ms),
            "endDate": str(ctx.window.end_ms),
            "timezone": "UTC",
        },
        deadline=ctx.deadline,
        cap_s=TIMEOUT_S,
        what=f"{NAME} free-slots",
    )
    instants: list[int] = []
    for key, day in expect_dict(data, f"{NAME} free-slots").items():
        if not _DATE_KEY.match(key) or not isinstance(day, dict):
            continue  # traceId, _dates_ and other metadata
        for slot in expect_list(day.get("slots") or [], f"{NAME} slots"):
            instants.append(parse_instant_ms(_slot_start(slot)))
    return instants


def _slot_start(slot: Any) -> Any:
    return slot.get("startTime") if isinstance(slot, dict) else slot
