"""One request end to end: route it to a provider, count and log it, then misbehave as told.

Latency, faults and random 503s are decided here, the same way for every provider,
so the per-provider modules only ever render the honest answer. Nothing here blocks:
`plan` says how long to wait and what to send, and `sandbox.server` keeps the time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus, urlsplit

from sandbox import calendly, ghl, hubspot
from sandbox.pages import page_route
from sandbox.replies import Provider, Query, Reply, Route, error, fault_reply, with_headers
from sandbox.state import SandboxState


def _decoded(text: str, decode: Callable[[str], str]) -> str:
    # Most names need no decoding, and calling the decoder costs more than looking.
    return decode(text) if "%" in text or "+" in text else text


def parse_query(query: str) -> Query:
    """`parse_qs(query, keep_blank_values=True)`, for the plain queries every client sends, in a third of the time."""
    values: Query = {}
    for field in query.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        values.setdefault(_decoded(name, unquote_plus), []).append(_decoded(value, unquote_plus))
    return values


def route(state: SandboxState, method: str, target: str) -> Route:
    """Which provider and calendar key `target` concerns, and how to answer it."""
    parts = urlsplit(target)
    query = parse_query(parts.query)
    segments = [_decoded(s, unquote) for s in parts.path.split("/") if s]
    if method != "GET":
        return Route(Provider.NONE, None, lambda: error(Provider.NONE, 405))
    # Booking pages live at arbitrary registered paths, so they win over the API patterns.
    page = page_route(state, parts.path)
    if page is not None:
        return page
    match segments:
        case ["api", "booking", "event_types", "lookup"]:
            return calendly.lookup_route(state, query)
        case ["api", "booking", "event_types", event_uuid, "calendar", "range"]:
            return calendly.range_route(state, event_uuid, query)
        case ["api", "booking", "scheduling_links", slug]:
            return Route(Provider.CALENDLY, slug, lambda: calendly.link_reply(state, slug))
        case ["api", "booking", "profiles", slug]:
            return Route(Provider.CALENDLY, slug, lambda: calendly.profile_reply(state, slug))
        case ["api", "booking", "profiles", slug, "event_types"]:
            return Route(Provider.CALENDLY, slug, lambda: calendly.profile_events_reply(state, slug))
        case ["meetings-public", "v3", "book", "availability-page"]:
            return hubspot.availability_route(state, query)
        case ["calendars", calendar_id, "free-slots"]:
            return ghl.free_slots_route(state, calendar_id, query)
    return Route(Provider.NONE, None, lambda: error(Provider.NONE, 404, "not found"))


@dataclass(frozen=True)
class Answer:
    """What to do about one request: after `delay_s`, send `render()`, or with `hang` never answer
    (the connection stays open and silent until the client gives up or the sandbox stops)."""

    delay_s: float
    render: Callable[[], Reply]
    hang: bool = False


def plan(state: SandboxState, method: str, target: str, headers: dict[str, str]) -> Answer:
    """Count and log one request, take its fault or random failure, and say when and how to answer.

    The body is rendered only when the delay is over (`Answer.render`), as a provider would.
    """
    found = route(state, method, target)
    with state.lock:
        state.total += 1
        state.log.append((method, target))
        state.header_log.append((target, headers))  # the server's own dict: nothing else holds it
        fault = None
        if found.key is not None:
            state.counts[found.key] += 1
            fault = state.take_fault(found.key)
        # A fault replaces the random failure, so a test that set one gets exactly it.
        failing = (
            fault is None and found.availability and state.failure_rate > 0 and state.rng.random() < state.failure_rate
        )
    delay = state.request_delay(found.key)
    if fault is None:
        if failing:
            return Answer(delay, lambda: with_headers(error(found.provider, 503), (("Retry-After", "1"),)))
        return Answer(delay, found.render)
    delay += fault.latency_s
    if fault.hang:
        return Answer(delay, found.render, hang=True)
    if fault.status is not None or fault.body is not None:
        return Answer(delay, lambda: fault_reply(found.provider, fault))
    return Answer(delay, lambda: with_headers(found.render(), fault.headers))
