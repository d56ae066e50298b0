"""The fake HubSpot Meetings public availability page (`meetings-public/v3/book/availability-page`).

Shapes follow shared/spec/providers.md §2a; the body itself is built by `sandbox.slots`.
"""

from __future__ import annotations

from sandbox import slots as payloads
from sandbox.records import Calendar
from sandbox.replies import Provider, Query, Reply, Route, error, first, json_reply
from sandbox.slots import zone
from sandbox.state import SandboxState


def availability_route(state: SandboxState, query: Query) -> Route:
    """One month of a meeting link's availability, chosen by `slug` and `monthOffset`."""
    slug = first(query, "slug")
    if not slug:
        return Route(Provider.HUBSPOT, None, lambda: error(Provider.HUBSPOT, 400, "slug is required"))
    link = state.calendar(state.registry.hubspot, slug, "UTC")
    if link is None:
        return Route(Provider.HUBSPOT, slug, lambda: error(Provider.HUBSPOT, 404), True)
    found = link
    return Route(Provider.HUBSPOT, slug, lambda: _body(state, slug, found, query), True)


def _body(state: SandboxState, slug: str, link: Calendar, query: Query) -> Reply:
    try:
        tz = zone(first(query, "timezone") or "UTC")
        offset = int(first(query, "monthOffset") or "0")
    except ValueError as exc:
        return error(Provider.HUBSPOT, 400, f"invalid parameter: {exc}")
    now = state.now()
    key = ("hubspot", slug, link.slots, link.durations_ms, str(tz), offset, now.astimezone(tz).date())
    return state.memo(
        (*key, link.slots.first_from(now)),
        lambda: json_reply(
            200,
            payloads.hubspot_availability(
                link.slots, now=now, tz=tz, month_offset=offset, durations_ms=link.durations_ms, slug=slug
            ),
        ),
    )
