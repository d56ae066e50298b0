"""GoHighLevel (LeadConnector) public free-slots: the open slots of a booking calendar."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

from lib.errors import ProviderError, ProviderHTTPError, ProviderResponseError
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.providers.tenant import get_tenant_page
from lib.slots import instants_from_texts, ms_chunks, unique_instants

TIMEOUT_S = 15.0
NAME = "GoHighLevel"
# "Date range cannot be more than 31 days" (the v2 spec; assumed for the public endpoint too).
MAX_SPAN_MS = 31 * 86_400_000
_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUXT_DATA = re.compile(r'<script[^>]*id="(?:__)?NUXT_DATA(?:__)?"[^>]*>([\s\S]*?)</script>', re.IGNORECASE)
_CALENDAR_ID = re.compile(r"^[A-Za-z0-9]{20,}$")
_BOOKING_ID = re.compile(r"/widget/booking/([A-Za-z0-9]{10,})(?:$|[/?#])")
# Answers meaning "no such calendar": the next candidate id may be the right one.
_NOT_FOUND_STATUSES = (400, 404, 422)


def calendar_id_from_url(url: str) -> str | None:
    """The calendar id of a `…/widget/booking/{id}` link, read without fetching the page."""
    match = _BOOKING_ID.search(urlsplit(url).path)
    return match.group(1) if match else None


def fetch_slots(ctx: FetchContext, url: str, *, calendar_id_hints: list[str]) -> ProviderResult:
    """Free slots of the first calendar id that answers: the hints in order (cached id, then the
    workspace's configured calendar), then the id in a `/widget/booking/{id}` link, and last the id
    in the booking page's `__NUXT_DATA__` (slug links, white-label domains). As in origin §3.3 (f),
    when the calendar that answered has no free slot, a later hint that has some is used instead."""
    candidates = [c for c in dict.fromkeys([*calendar_id_hints, calendar_id_from_url(url)]) if c]
    for index, calendar_id in enumerate(candidates):
        instants = _free_slots_if_found(ctx, calendar_id)
        if instants is None:
            continue
        found = _result(calendar_id, instants, url)
        if instants:
            return found
        return _first_with_slots(ctx, candidates[index + 1 :], calendar_id_hints, url) or found
    if calendar_id_from_url(url):
        # The link names its calendar, so its page would only name the same one again.
        raise ProviderError(f"{NAME} calendar not found: free-slots refused {', '.join(candidates)}")
    page_id, resolved_url = _calendar_id_from_page(ctx, url)
    instants = None if page_id in candidates else _free_slots_if_found(ctx, page_id)
    if instants is None:
        raise ProviderError(f"{NAME} calendar {page_id} (from the booking page) not found")
    return _result(page_id, instants, resolved_url)


def _first_with_slots(ctx: FetchContext, rest: list[str], hints: list[str], url: str) -> ProviderResult | None:
    for calendar_id in rest:
        if calendar_id not in hints:
            continue  # only the workspace's own hints are worth a second call (origin §3.3 f)
        try:
            instants = _free_slots_if_found(ctx, calendar_id)
        except ProviderError:
            return None  # the first calendar did answer; its empty answer stands
        if instants:
            return _result(calendar_id, instants, url)
    return None


def _result(calendar_id: str, instants: list[int], resolved_url: str) -> ProviderResult:
    return ProviderResult(instants, {"ghlCalendarId": calendar_id, "resolvedUrl": resolved_url})


def _free_slots_if_found(ctx: FetchContext, calendar_id: str) -> list[int] | None:
    """The window's free slots, asked for in spans of at most 31 days, or None when the first span's
    answer says there is no such calendar (a stale or mistyped id: the next candidate may work).
    Errors on later spans are failures: the calendar exists."""
    first, *rest = ms_chunks(ctx.window.start_ms, ctx.window.end_ms, MAX_SPAN_MS)
    try:
        instants = _free_slots(ctx, calendar_id, first)
    except ProviderHTTPError as exc:
        if exc.status in _NOT_FOUND_STATUSES:
            return None
        raise
    for span in rest:
        instants.extend(_free_slots(ctx, calendar_id, span))
    return unique_instants(instants)


def _calendar_id_from_page(ctx: FetchContext, url: str) -> tuple[str, str]:
    what = f"{NAME} booking page"
    try:
        page = get_tenant_page(
            ctx.http, url, deadline=ctx.deadline, cap_s=TIMEOUT_S, what=what, allow_private=ctx.allow_private
        )
    except ProviderError as exc:
        exc.on_tenant_host = True  # the tenant's page, not GoHighLevel's API: no cool-down (lib/throttle.py)
        raise
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


def _free_slots(ctx: FetchContext, calendar_id: str, span: tuple[int, int]) -> list[int]:
    data = ctx.http.get_json(
        f"{ctx.base_url}/calendars/{quote(calendar_id, safe='')}/free-slots",
        params={"startDate": str(span[0]), "endDate": str(span[1]), "timezone": "UTC"},
        deadline=ctx.deadline,
        cap_s=TIMEOUT_S,
        what=f"{NAME} free-slots",
    )
    return parse_free_slots(data)


def parse_free_slots(data: Any) -> list[int]:
    """The slots of a free-slots answer, in epoch ms: only `YYYY-MM-DD` keys whose value holds a
    `slots` array are read (`traceId`, `_dates_` and other metadata are not), each slot a string or
    an object with `startTime`."""
    body = expect_dict(data, f"{NAME} free-slots")
    _reject_error_body(body)
    instants: list[int] = []
    for key, day in body.items():
        if not _DATE_KEY.match(key) or not isinstance(day, dict) or "slots" not in day:
            continue
        slots = expect_list(day["slots"], f"{NAME} slots of {key}")
        instants.extend(instants_from_texts([slot.get("startTime") if type(slot) is dict else slot for slot in slots]))
    return instants


def _reject_error_body(body: dict[str, Any]) -> None:
    # An error sent with a 200 ({"statusCode": 400, "message": ...}) must not read as "no slots".
    status = body.get("statusCode")
    # Any number, not only an int: 400.0, or a code beyond 64 bits that a fast decoder reads as a float.
    if isinstance(status, int | float) and not isinstance(status, bool) and status >= 400:
        message = body.get("message")
        detail = message if isinstance(message, str) else "no message"
        # Control characters (NUL included) become "?": lastError is read by people, in the app and logs.
        detail = "".join(char if char.isprintable() else "?" for char in detail[:120])
        raise ProviderResponseError(f"{NAME} free-slots answered with an error body ({status}: {detail[:120]})")
