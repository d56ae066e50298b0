"""The fake Calendly booking API: event-type lookup, calendar range, links and profiles.

Each function turns a parsed request into a `Route` (or a `Reply`) against a
`SandboxState`; bodies come from `sandbox.slots`, shapes from shared/spec/providers.md §1a.
"""

from __future__ import annotations

import uuid
from datetime import date

from sandbox import slots as payloads
from sandbox.records import CalendlyEvent
from sandbox.replies import Provider, Query, Reply, Route, error, first, json_reply
from sandbox.slots import zone
from sandbox.state import SandboxState

# Calendly's booking API: at most this many dates per calendar/range call, both ends included
# ("about a month", providers.md §1a).
MAX_RANGE_DAYS = 31
# Fixed, so an unregistered profile/slug gets the same made-up uuid in every run.
_GENERATED_NAMESPACE = uuid.UUID("5f0c7d8e-2a41-4b8e-9a57-3c1e0d6b9f21")


def generated_uuid(profile: str, event: str) -> str:
    """The event-type uuid for `calendly.com/{profile}/{event}` when none was given."""
    return str(uuid.uuid5(_GENERATED_NAMESPACE, f"calendly:{profile}/{event}"))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _title(slug: str) -> str:
    return " ".join(part.capitalize() for part in slug.replace("_", "-").split("-") if part)


def _event(state: SandboxState, event_uuid: str) -> CalendlyEvent | None:
    with state.lock:
        return state.registry.events.get(event_uuid) or state.generated.get(event_uuid)


def _generate_event(state: SandboxState, event_uuid: str, profile: str, slug: str) -> CalendlyEvent | None:
    if not state.generate_unknown:
        return None
    tz = "America/New_York"
    record = CalendlyEvent(event_uuid, profile, slug, state.generated_slots[tz], tz)
    with state.lock:
        # setdefault: two threads generating the same event both answer with the first record.
        return state.generated.setdefault(event_uuid, record)


def lookup_route(state: SandboxState, query: Query) -> Route:
    """`event_types/lookup` by profile and event slug, or by share code / event-type uuid."""
    profile, slug = first(query, "profile_slug"), first(query, "event_type_slug")
    share = first(query, "share_uuid") or first(query, "event_type_uuid")
    if share:
        with state.lock:
            share = state.registry.share_codes.get(share, share)
    if profile and slug:
        with state.lock:
            known = state.registry.event_by_slug.get((profile, slug))
        event_uuid = known or generated_uuid(profile, slug)
        record = _event(state, event_uuid) or _generate_event(state, event_uuid, profile, slug)
        # Unknown slugs are counted (and faulted) under "profile/slug", as no uuid exists for them.
        key = event_uuid if record is not None else f"{profile}/{slug}"
    elif share:
        key, record = share, _event(state, share)
    else:
        return Route(
            Provider.CALENDLY,
            None,
            lambda: error(Provider.CALENDLY, 400, "event_type_slug and profile_slug required"),
        )
    if record is None:
        return Route(Provider.CALENDLY, key, lambda: error(Provider.CALENDLY, 404))
    found = record
    return Route(Provider.CALENDLY, key, lambda: _lookup_body(state, found))


def _lookup_body(state: SandboxState, event: CalendlyEvent) -> Reply:
    with state.lock:
        profile = state.registry.profiles.get(event.profile)
        link = next((s for s, u in state.registry.links.items() if u == event.uuid), None)
    next_start = event.slots.first_from(state.now()) if event.public else None
    return json_reply(
        200,
        {
            "uuid": event.uuid,
            "slug": event.slug,
            "name": _title(event.slug),
            "duration": 30,
            "kind": "solo",
            "public": event.public,
            "availability_timezone": event.timezone,
            "profile": {
                "name": _title(event.profile),
                "slug": event.profile,
                "type": "User",
                "timezone": profile[0] if profile else event.timezone,
            },
            "scheduling_link": {"uid": link} if link else None,
            "next_availability": payloads.local_iso(next_start, zone(event.timezone)) if next_start else None,
            "unavailability_reason": None if event.public else "event_type_secret_or_inactive",
        },
    )


def range_route(state: SandboxState, event_uuid: str, query: Query) -> Route:
    """`event_types/{uuid}/calendar/range`: the free days and spots of one event type."""
    record = _event(state, event_uuid)
    if record is None and _is_uuid(event_uuid):
        record = _generate_event(state, event_uuid, "generated", "30min")
    if record is None:
        return Route(Provider.CALENDLY, event_uuid, lambda: error(Provider.CALENDLY, 404), True)
    found = record
    return Route(Provider.CALENDLY, event_uuid, lambda: _range_body(state, found, query), True)


def _range_body(state: SandboxState, event: CalendlyEvent, query: Query) -> Reply:
    try:
        tz = zone(first(query, "timezone") or "UTC")
        start = date.fromisoformat(first(query, "range_start") or "")
        end = date.fromisoformat(first(query, "range_end") or "")
    except ValueError as exc:
        return error(Provider.CALENDLY, 400, f"invalid parameter: {exc}")
    if end < start or (end - start).days >= state.calendly_max_range_days:
        message = f"the range may cover at most {state.calendly_max_range_days} days"
        return error(Provider.CALENDLY, 400, message)
    now = state.now()
    key = ("calendly", event.slots, event.timezone, event.public, str(tz), start, end)
    return state.memo(
        (*key, event.slots.first_from(now), now.astimezone(tz).date()),
        lambda: json_reply(
            200,
            payloads.calendly_range(
                event.slots,
                now=now,
                tz=tz,
                range_start=start,
                range_end=end,
                availability_timezone=event.timezone,
                bookable=event.public,
            ),
        ),
    )


def link_reply(state: SandboxState, slug: str) -> Reply:
    """`scheduling_links/{slug}`: which event type a single-use link books."""
    with state.lock:
        owner = state.registry.links.get(slug)
    if owner is None:
        return error(Provider.CALENDLY, 404)
    return json_reply(200, {"uid": slug, "owner_uuid": owner, "owner_type": "EventType"})


def profile_reply(state: SandboxState, slug: str) -> Reply:
    """`profiles/{slug}`: a user's name and time zone."""
    with state.lock:
        profile = state.registry.profiles.get(slug)
    if profile is None:
        return error(Provider.CALENDLY, 404)
    return json_reply(200, {"name": _title(slug), "slug": slug, "timezone": profile[0]})


def profile_events_reply(state: SandboxState, slug: str) -> Reply:
    """`profiles/{slug}/event_types`: a user's listed event types."""
    with state.lock:
        profile = state.registry.profiles.get(slug)
        events = state.registry.events
        found = [events[u] for u in profile[1] if u in events] if profile else []
    if profile is None:
        return error(Provider.CALENDLY, 404)
    listed = [{"uuid": e.uuid, "slug": e.slug, "name": _title(e.slug), "duration": 30} for e in found]
    return json_reply(200, listed)
