"""GoHighLevel (LeadConnector) public free-slots: the open slots of a booking calendar."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from lib.errors import ProviderError, ProviderHTTPError
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.slots import parse_instant_ms

TIMEOUT_S = 15.0
NAME = "GoHighLevel"
_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BOOKING_ID = re.compile(r"/widget/booking/([A-Za-z0-9]{10,})(?:$|[/?#])")


def calendar_id_from_url(url: str) -> str | None:
    """The calendar id of a `…/widget/booking/{id}` link, read without fetching the page."""
    match = _BOOKING_ID.search(urlsplit(url).path)
    return match.group(1) if match else None


def fetch_slots(ctx: FetchContext, url: str, *, calendar_id_hints: list[str]) -> ProviderResult:
    """Free slots of the first calendar id that answers: the hints in order, then the id in the URL."""
    candidates = list(dict.fromkeys([*calendar_id_hints, calendar_id_from_url(url) or ""]))
    candidates = [candidate for candidate in candidates if candidate]
    if not candidates:
        raise ProviderError(f"{NAME} booking link has no calendar id: {url}")
    last_error: ProviderError | None = None
    for calendar_id in candidates:
        try:
            instants = _free_slots(ctx, calendar_id)
        except ProviderHTTPError as exc:
            if exc.status not in (400, 404, 422):
                raise
            last_error = exc
            continue
        return ProviderResult(instants, {"ghlCalendarId": calendar_id, "resolvedUrl": url})
    assert last_error is not None
    raise ProviderError(f"{NAME} calendar not found ({last_error})")


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
