"""The fake HubSpot Meetings public availability page (`meetings-public/v3/book/availability-page`).

Shapes follow shared/spec/providers.md §2a; the body itself is built by `sandbox.slots`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sandbox import slots as payloads
from sandbox.records import Calendar
from sandbox.replies import Provider, Query, Reply, Route, error, first, json_reply
from sandbox.slots import zone
from sandbox.state import SandboxState

# With `cache_payloads`, one body per slot set is rendered for these stand-in slugs (personal, team)
# and each answer swaps in its own slug's host ids: every other byte is the same for every slug.
_TEMPLATE_SLUGS = {False: "template-link", True: "template-team/link"}


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
    if not state.cache_payloads:
        return json_reply(200, _payload(link, now, tz, offset, slug))
    template = _TEMPLATE_SLUGS["/" in slug]
    key = ("hubspot", template, link.slots, link.durations_ms, str(tz), offset, now.astimezone(tz).date())
    cached = state.memo(
        (*key, link.slots.first_from(now)), lambda: json_reply(200, _payload(link, now, tz, offset, template))
    )
    body = cached.body
    for stand_in, own in zip(payloads.hubspot_user_ids(template), payloads.hubspot_user_ids(slug), strict=True):
        body = body.replace(b'"userId":"%s"' % stand_in.encode(), b'"userId":"%s"' % own.encode())
    return Reply(cached.status, body, cached.content_type, cached.headers)


def _payload(link: Calendar, now: datetime, tz: ZoneInfo, offset: int, slug: str) -> dict[str, object]:
    return payloads.hubspot_availability(
        link.slots, now=now, tz=tz, month_offset=offset, durations_ms=link.durations_ms, slug=slug
    )
