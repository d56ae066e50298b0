"""The fake GoHighLevel (LeadConnector) widget API: `calendars/{id}/free-slots`.

Shapes follow shared/spec/providers.md §3a; the body itself is built by `sandbox.slots`.
"""

from __future__ import annotations

import bisect
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sandbox import slots as payloads
from sandbox.records import Calendar
from sandbox.replies import Provider, Query, Reply, Route, error, first, json_reply
from sandbox.slots import zone
from sandbox.state import SandboxState

# GoHighLevel: "Date range cannot be more than 31 days".
MAX_SPAN_DAYS = 31
# Cached bodies carry this trace id, replaced by a fresh one in every answer.
_TRACE_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def free_slots_route(state: SandboxState, calendar_id: str, query: Query) -> Route:
    """The free slots of one calendar between `startDate` and `endDate` (epoch milliseconds)."""
    calendar = state.calendar(state.registry.ghl, calendar_id, "America/Chicago")
    if calendar is None:
        return Route(Provider.GHL, calendar_id, lambda: error(Provider.GHL, 404, "Calendar not found"), True)
    found = calendar
    return Route(Provider.GHL, calendar_id, lambda: _body(state, found, query), True)


def _body(state: SandboxState, calendar: Calendar, query: Query) -> Reply:
    try:
        tz = zone(first(query, "timezone") or calendar.timezone)
        start_ms = int(first(query, "startDate") or "")
        end_ms = int(first(query, "endDate") or "")
    except ValueError:
        return error(Provider.GHL, 400, "Bad Request")
    if end_ms < start_ms or end_ms - start_ms > state.ghl_max_span_ms:
        return error(Provider.GHL, 400, "Bad Request")
    with state.lock:
        state.ghl_responses += 1
        # Alternate with and without the `_dates_` block, so clients are tested against both shapes.
        dates_meta = state.ghl_responses % 2 == 1
    now, starts = state.now(), calendar.slots.starts
    if not state.cache_payloads:
        return json_reply(200, _payload(calendar, now, tz, start_ms, end_ms, str(uuid.uuid4()), dates_meta))
    low, high = payloads.from_ms(start_ms), payloads.from_ms(end_ms)
    key = ("ghl", calendar.slots, str(tz), dates_meta, calendar.slots.first_from(now))
    # The body depends on the window only through which slots it holds (and, with `_dates_`, its local dates).
    bounds = (bisect.bisect_left(starts, low), bisect.bisect_right(starts, high))
    dates = (low.astimezone(tz).date(), high.astimezone(tz).date()) if dates_meta else None
    cached = state.memo(
        (*key, bounds, dates),
        lambda: json_reply(200, _payload(calendar, now, tz, start_ms, end_ms, _TRACE_PLACEHOLDER, dates_meta)),
    )
    body = cached.body.replace(_TRACE_PLACEHOLDER.encode(), str(uuid.uuid4()).encode())
    return Reply(cached.status, body, cached.content_type, cached.headers)


def _payload(
    calendar: Calendar, now: datetime, tz: ZoneInfo, start_ms: int, end_ms: int, trace_id: str, dates_meta: bool
) -> dict[str, object]:
    return payloads.ghl_free_slots(
        calendar.slots,
        now=now,
        tz=tz,
        start_ms=start_ms,
        end_ms=end_ms,
        trace_id=trace_id,
        dates_meta=dates_meta,
    )
