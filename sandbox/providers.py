"""A loopback fake of the Calendly, HubSpot and GoHighLevel public availability APIs.

One threaded HTTP/1.1 server answers all three by path, so CALENDLY_BASE_URL,
HUBSPOT_BASE_URL and GHL_BASE_URL can all point at `ProviderSandbox.base_url`.
Calendars are registered in memory; faults, latency and random 503s are knobs.
Run `python -m sandbox.providers --help` for a standalone server.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import random
import signal
import socket
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

from sandbox import slots as payloads
from sandbox.slots import SlotSet, as_utc, weekday_slots, zone

__all__ = ["Fault", "ProviderSandbox", "main", "weekday_slots"]

_GENERATED_NAMESPACE = uuid.UUID("5f0c7d8e-2a41-4b8e-9a57-3c1e0d6b9f21")
# Calendly's booking API: at most this many dates per calendar/range call, both ends included
# ("about a month", providers.md §1a). GoHighLevel: "Date range cannot be more than 31 days".
CALENDLY_MAX_RANGE_DAYS = 31
GHL_MAX_SPAN_DAYS = 31
_DAY_MS = 86_400_000
_LOG_LIMIT = 100_000  # keeps a long CLI/benchmark run from growing without bound
_PAYLOAD_CACHE_LIMIT = 50_000
# Cached GoHighLevel bodies carry this trace id, replaced by a fresh one in every answer.
_TRACE_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Fault:
    """How to misbehave for requests concerning one calendar key.

    With neither `status` nor `body` (and no `hang`), the normal answer is sent
    after `latency_s`, with `headers` added. A `body` without `status` is sent as 200.
    """

    status: int | None = None
    body: str | bytes | None = None
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    latency_s: float = 0.0
    hang: bool = False
    times: int | None = None


class _Provider(Enum):
    CALENDLY = "calendly"
    HUBSPOT = "hubspot"
    GHL = "ghl"
    PAGE = "page"
    NONE = "none"


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Route:
    provider: _Provider
    key: str | None
    render: Callable[[], _Reply]
    availability: bool = False


@dataclass(frozen=True)
class _CalendlyEvent:
    uuid: str
    profile: str
    slug: str
    slots: SlotSet
    timezone: str
    public: bool = True


@dataclass(frozen=True)
class _Calendar:
    """A HubSpot link or GHL calendar: free starts plus per-provider settings."""

    slots: SlotSet
    timezone: str = "UTC"
    durations_ms: tuple[int, ...] = (1_800_000,)


@dataclass
class _Registry:
    events: dict[str, _CalendlyEvent] = field(default_factory=dict)
    event_by_slug: dict[tuple[str, str], str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    share_codes: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    hubspot: dict[str, _Calendar] = field(default_factory=dict)
    ghl: dict[str, _Calendar] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)


def _json(status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    return _Reply(status, json.dumps(body, separators=(",", ":")).encode(), headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_CALENDLY_TITLES = {400: "Invalid Argument", 401: "Unauthenticated", 403: "Permission Denied"}


def _error(provider: _Provider, status: int, message: str | None = None) -> _Reply:
    """A provider-shaped error body for `status`."""
    text = message or _phrase(status)
    if provider is _Provider.CALENDLY:
        if status == 404:
            return _json(404, {"message": "not found"})
        headers = (("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "60"))
        title = _CALENDLY_TITLES.get(status, _phrase(status))
        return _json(status, {"title": title, "message": text}, headers if status == 429 else ())
    if provider is _Provider.HUBSPOT:
        return _json(status, *_hubspot_error(status, message))
    if provider is _Provider.GHL:
        ghl: dict[str, object] = {"statusCode": status, "message": text}
        if status == 401:
            ghl["error"] = "Unauthorized"
        return _json(status, ghl)
    if provider is _Provider.PAGE:
        html = f"<!DOCTYPE html><html><body><h1>{status} {_phrase(status)}</h1></body></html>\n"
        return _Reply(status, html.encode(), "text/html; charset=utf-8")
    return _json(status, {"message": text})


def _hubspot_error(status: int, message: str | None) -> tuple[dict[str, object], tuple[tuple[str, str], ...]]:
    body: dict[str, object] = {"status": "error"}
    headers: tuple[tuple[str, str], ...] = ()
    if status == 404:
        body["message"] = message or "slug does not exist"
        body["category"] = "OBJECT_NOT_FOUND"
    elif status == 429:
        body["message"] = message or "You have reached your ten_secondly_rolling limit."
        body["errorType"] = "RATE_LIMIT"
        body["policyName"] = "TEN_SECONDLY_ROLLING"
        body["requestId"] = str(uuid.uuid4())
        headers = (
            ("X-HubSpot-RateLimit-Max", "100"),
            ("X-HubSpot-RateLimit-Remaining", "0"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
        )
    else:
        server_side = status >= 500
        body["message"] = message or ("Internal Error" if server_side else _phrase(status))
        body["category"] = "UNKNOWN" if server_side else "VALIDATION_ERROR"
    body["correlationId"] = str(uuid.uuid4())
    return body, headers


def _with_headers(reply: _Reply, headers: tuple[tuple[str, str], ...]) -> _Reply:
    if not headers:
        return reply
    names = {name.lower() for name, _ in headers}
    kept = tuple((n, v) for n, v in reply.headers if n.lower() not in names)
    return _Reply(reply.status, reply.body, reply.content_type, kept + headers)


def _fault_reply(provider: _Provider, fault: Fault) -> _Reply:
    status = fault.status if fault.status is not None else 200
    if fault.body is None:
        reply = _error(provider, status)
    else:
        raw = fault.body.encode() if isinstance(fault.body, str) else fault.body
        reply = _Reply(status, raw, fault.content_type)
    return _with_headers(reply, fault.headers)


def _title(slug: str) -> str:
    return " ".join(part.capitalize() for part in slug.replace("_", "-").split("-") if part)


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class ProviderSandbox:
    """In-memory Calendly, HubSpot and GHL availability APIs on one loopback server."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_s: float = 0.0,
        failure_rate: float = 0.0,
        generate_unknown: bool = False,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        cache_payloads: bool = False,
        calendly_max_range_days: int = CALENDLY_MAX_RANGE_DAYS,
        ghl_max_span_days: int = GHL_MAX_SPAN_DAYS,
    ) -> None:
        """`cache_payloads` renders each availability body once per distinct input (slot set, query,
        first free start): a benchmark at high concurrency then measures the client, not this server.
        Longer Calendly ranges and GoHighLevel spans than the limits are answered with a 400."""
        if latency_s < 0 or not 0.0 <= failure_rate <= 1.0:
            raise ValueError("latency_s must be >= 0 and failure_rate within [0, 1]")
        if calendly_max_range_days < 1 or ghl_max_span_days < 1:
            raise ValueError("range limits must be at least one day")
        self._calendly_max_range_days = calendly_max_range_days
        self._ghl_max_span_ms = ghl_max_span_days * _DAY_MS
        self._host, self._port = host, port
        self._latency_s = latency_s
        self._failure_rate = failure_rate
        self._generate_unknown = generate_unknown
        self._seed = seed
        self._cache_payloads = cache_payloads
        self._payloads: dict[tuple[object, ...], _Reply] = {}
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._registry = _Registry()
        self._generated: dict[str, _CalendlyEvent] = {}
        self._generated_slots: dict[str, SlotSet] = {}
        self._faults: dict[str, Fault] = {}
        self._fault_left: dict[str, int | None] = {}
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._log: deque[tuple[str, str]] = deque(maxlen=_LOG_LIMIT)
        self._header_log: deque[tuple[str, dict[str, str]]] = deque(maxlen=_LOG_LIMIT)
        self._ghl_responses = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        if self._generate_unknown:
            now = self._now()
            self._generated_slots = {
                name: SlotSet.of(weekday_slots(now, 31, timezone=name))
                for name in ("America/New_York", "UTC", "America/Chicago")
            }
        server = _Server((self._host, self._port), self)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hung and sleeping handlers are released, not waited for."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=1.0)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        return f"http://{self._host}:{self._server.server_address[1]}"

    # --- registration -------------------------------------------------------------

    def add_calendly_event(
        self,
        profile: str,
        event: str,
        slots: Iterable[datetime],
        *,
        uuid: str | None = None,
        timezone: str = "America/New_York",
        public: bool = True,
        fault: Fault | None = None,
    ) -> str:
        """Register `calendly.com/{profile}/{event}`; returns its event-type uuid."""
        zone(timezone)
        event_uuid = uuid or _generated_uuid(profile, event)
        record = _CalendlyEvent(event_uuid, profile, event, SlotSet.of(slots), timezone, public)
        with self._lock:
            self._registry.events[event_uuid] = record
            self._registry.event_by_slug[(profile, event)] = event_uuid
        if fault is not None:
            self.set_fault(event_uuid, fault)
        return event_uuid

    def add_calendly_scheduling_link(self, slug: str, event_uuid: str) -> None:
        """Register `calendly.com/{slug}` as a single-use link to an event type."""
        with self._lock:
            self._registry.links[slug] = event_uuid

    def add_calendly_share_link(self, code: str, event_uuid: str) -> None:
        """Register `calendly.com/d/{code}`: looked up as `lookup?event_type_uuid={code}`."""
        with self._lock:
            self._registry.share_codes[code] = event_uuid

    def add_calendly_profile(
        self, slug: str, event_uuids: Sequence[str], *, timezone: str = "America/New_York"
    ) -> None:
        zone(timezone)
        with self._lock:
            self._registry.profiles[slug] = (timezone, tuple(event_uuids))

    def add_hubspot_link(
        self,
        slug: str,
        slots: Iterable[datetime],
        *,
        durations_ms: Sequence[int] = (1_800_000,),
        fault: Fault | None = None,
    ) -> None:
        if not durations_ms or any(d <= 0 for d in durations_ms):
            raise ValueError("durations_ms must be non-empty and positive")
        with self._lock:
            self._registry.hubspot[slug] = _Calendar(SlotSet.of(slots), "UTC", tuple(durations_ms))
        if fault is not None:
            self.set_fault(slug, fault)

    def add_ghl_calendar(
        self,
        calendar_id: str,
        slots: Iterable[datetime],
        *,
        timezone: str = "America/Chicago",
        fault: Fault | None = None,
    ) -> None:
        zone(timezone)
        with self._lock:
            self._registry.ghl[calendar_id] = _Calendar(SlotSet.of(slots), timezone)
        if fault is not None:
            self.set_fault(calendar_id, fault)

    def add_ghl_booking_page(self, path: str, calendar_id: str, *, fault: Fault | None = None) -> None:
        """Serve a Nuxt booking page at `path` (e.g. `/widget/bookings/acme`)."""
        path = "/" + urlsplit(path).path.lstrip("/")
        with self._lock:
            self._registry.pages[path] = calendar_id
        if fault is not None:
            self.set_fault(path, fault)

    def set_fault(self, key: str, fault: Fault | None) -> None:
        """Set or clear (None) the fault for a uuid, slug, calendar id or page path."""
        with self._lock:
            if fault is None:
                self._faults.pop(key, None)
                self._fault_left.pop(key, None)
            else:
                self._faults[key] = fault
                self._fault_left[key] = fault.times

    def reset(self) -> None:
        """Forget calendars, faults, counts and the request log; reseed failures."""
        with self._lock:
            self._registry = _Registry()
            self._generated.clear()
            self._faults.clear()
            self._fault_left.clear()
            self._counts.clear()
            self._total = 0
            self._log.clear()
            self._header_log.clear()
            self._ghl_responses = 0
            self._payloads.clear()
            self._rng = random.Random(self._seed)

    # --- observation --------------------------------------------------------------

    def requests_for(self, key: str) -> int:
        """Requests that concerned `key`: event uuid (lookups and range calls), link
        slug, profile slug, HubSpot slug, GHL calendar id or booking-page path."""
        with self._lock:
            return self._counts[key]

    @property
    def total_requests(self) -> int:
        with self._lock:
            return self._total

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """A snapshot of (method, path with query) per request, in arrival order (last 100k)."""
        with self._lock:
            return list(self._log)

    @property
    def request_headers(self) -> list[tuple[str, dict[str, str]]]:
        """A snapshot of (path with query, request headers) per request, in arrival order (last 100k)."""
        with self._lock:
            return [(target, dict(headers)) for target, headers in self._header_log]

    # --- request handling (called on handler threads) -----------------------------

    def _now(self) -> datetime:
        return as_utc(self._clock())

    def _handle(self, method: str, target: str, headers: dict[str, str] | None = None) -> _Reply | None:
        """Answer one request, or None when the connection should just be dropped."""
        route = self._route(method, target)
        with self._lock:
            self._total += 1
            self._log.append((method, target))
            self._header_log.append((target, headers or {}))
            fault = None
            if route.key is not None:
                self._counts[route.key] += 1
                fault = self._take_fault(route.key)
            failing = (
                fault is None
                and route.availability
                and self._failure_rate > 0
                and self._rng.random() < self._failure_rate
            )
        if self._latency_s and self._stopping.wait(self._latency_s):
            return None
        extra: tuple[tuple[str, str], ...] = ()
        if fault is not None:
            if fault.latency_s and self._stopping.wait(fault.latency_s):
                return None
            if fault.hang:
                self._stopping.wait()
                return None
            if fault.status is not None or fault.body is not None:
                return _fault_reply(route.provider, fault)
            extra = fault.headers
        if failing:
            return _with_headers(_error(route.provider, 503), (("Retry-After", "1"),))
        return _with_headers(route.render(), extra)

    def _take_fault(self, key: str) -> Fault | None:
        fault = self._faults.get(key)
        if fault is None:
            return None
        left = self._fault_left.get(key)
        if left is None:
            return fault
        if left <= 0:
            return None
        self._fault_left[key] = left - 1
        return fault

    def _memo(self, key: tuple[object, ...], render: Callable[[], _Reply]) -> _Reply:
        """`render()`, or with `cache_payloads` its earlier result for an equal key. Keys hold every input
        a body depends on (the slot set by value, and the clock only through the first free start)."""
        if not self._cache_payloads:
            return render()
        with self._lock:
            reply = self._payloads.get(key)
        if reply is None:
            reply = render()
            with self._lock:
                if len(self._payloads) >= _PAYLOAD_CACHE_LIMIT:
                    self._payloads.clear()
                self._payloads[key] = reply
        return reply

    def _route(self, method: str, target: str) -> _Route:
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if method != "GET":
            return _Route(_Provider.NONE, None, lambda: _error(_Provider.NONE, 405))
        page = self._page_route(parts.path)
        if page is not None:
            return page
        match segments:
            case ["api", "booking", "event_types", "lookup"]:
                return self._calendly_lookup(query)
            case ["api", "booking", "event_types", event_uuid, "calendar", "range"]:
                return self._calendly_range(event_uuid, query)
            case ["api", "booking", "scheduling_links", slug]:
                return _Route(_Provider.CALENDLY, slug, lambda: self._calendly_link(slug))
            case ["api", "booking", "profiles", slug]:
                return _Route(_Provider.CALENDLY, slug, lambda: self._calendly_profile(slug))
            case ["api", "booking", "profiles", slug, "event_types"]:
                return _Route(_Provider.CALENDLY, slug, lambda: self._calendly_profile_events(slug))
            case ["meetings-public", "v3", "book", "availability-page"]:
                return self._hubspot(query)
            case ["calendars", calendar_id, "free-slots"]:
                return self._ghl(calendar_id, query)
        return _Route(_Provider.NONE, None, lambda: _error(_Provider.NONE, 404, "not found"))

    # --- Calendly -----------------------------------------------------------------

    def _calendly_event(self, event_uuid: str) -> _CalendlyEvent | None:
        with self._lock:
            return self._registry.events.get(event_uuid) or self._generated.get(event_uuid)

    def _generate_event(self, event_uuid: str, profile: str, slug: str) -> _CalendlyEvent | None:
        if not self._generate_unknown:
            return None
        tz = "America/New_York"
        record = _CalendlyEvent(event_uuid, profile, slug, self._generated_slots[tz], tz)
        with self._lock:
            return self._generated.setdefault(event_uuid, record)

    def _calendly_lookup(self, query: dict[str, list[str]]) -> _Route:
        profile, slug = _first(query, "profile_slug"), _first(query, "event_type_slug")
        share = _first(query, "share_uuid") or _first(query, "event_type_uuid")
        if share:
            with self._lock:
                share = self._registry.share_codes.get(share, share)
        if profile and slug:
            with self._lock:
                known = self._registry.event_by_slug.get((profile, slug))
            event_uuid = known or _generated_uuid(profile, slug)
            record = self._calendly_event(event_uuid) or self._generate_event(event_uuid, profile, slug)
            key = event_uuid if record is not None else f"{profile}/{slug}"
        elif share:
            key, record = share, self._calendly_event(share)
        else:
            return _Route(
                _Provider.CALENDLY,
                None,
                lambda: _error(_Provider.CALENDLY, 400, "event_type_slug and profile_slug required"),
            )
        if record is None:
            return _Route(_Provider.CALENDLY, key, lambda: _error(_Provider.CALENDLY, 404))
        found = record
        return _Route(_Provider.CALENDLY, key, lambda: self._calendly_lookup_body(found))

    def _calendly_lookup_body(self, event: _CalendlyEvent) -> _Reply:
        with self._lock:
            profile = self._registry.profiles.get(event.profile)
            link = next((s for s, u in self._registry.links.items() if u == event.uuid), None)
        next_start = event.slots.first_from(self._now()) if event.public else None
        return _json(
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

    def _calendly_range(self, event_uuid: str, query: dict[str, list[str]]) -> _Route:
        record = self._calendly_event(event_uuid)
        if record is None and _is_uuid(event_uuid):
            record = self._generate_event(event_uuid, "generated", "30min")
        if record is None:
            return _Route(_Provider.CALENDLY, event_uuid, lambda: _error(_Provider.CALENDLY, 404), True)
        found = record
        return _Route(_Provider.CALENDLY, event_uuid, lambda: self._calendly_range_body(found, query), True)

    def _calendly_range_body(self, event: _CalendlyEvent, query: dict[str, list[str]]) -> _Reply:
        try:
            tz = zone(_first(query, "timezone") or "UTC")
            start = date.fromisoformat(_first(query, "range_start") or "")
            end = date.fromisoformat(_first(query, "range_end") or "")
        except ValueError as exc:
            return _error(_Provider.CALENDLY, 400, f"invalid parameter: {exc}")
        if end < start or (end - start).days >= self._calendly_max_range_days:
            message = f"the range may cover at most {self._calendly_max_range_days} days"
            return _error(_Provider.CALENDLY, 400, message)
        now = self._now()
        key = ("calendly", event.slots, event.timezone, event.public, str(tz), start, end)
        return self._memo(
            (*key, event.slots.first_from(now), now.astimezone(tz).date()),
            lambda: _json(
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

    def _calendly_link(self, slug: str) -> _Reply:
        with self._lock:
            owner = self._registry.links.get(slug)
        if owner is None:
            return _error(_Provider.CALENDLY, 404)
        return _json(200, {"uid": slug, "owner_uuid": owner, "owner_type": "EventType"})

    def _calendly_profile(self, slug: str) -> _Reply:
        with self._lock:
            profile = self._registry.profiles.get(slug)
        if profile is None:
            return _error(_Provider.CALENDLY, 404)
        return _json(200, {"name": _title(slug), "slug": slug, "timezone": profile[0]})

    def _calendly_profile_events(self, slug: str) -> _Reply:
        with self._lock:
            profile = self._registry.profiles.get(slug)
            events = self._registry.events
            found = [events[u] for u in profile[1] if u in events] if profile else []
        if profile is None:
            return _error(_Provider.CALENDLY, 404)
        listed = [{"uuid": e.uuid, "slug": e.slug, "name": _title(e.slug), "duration": 30} for e in found]
        return _json(200, listed)

    # --- HubSpot and GoHighLevel --------------------------------------------------

    def _calendar(self, table: dict[str, _Calendar], key: str, tz: str) -> _Calendar | None:
        with self._lock:
            calendar = table.get(key)
        if calendar is None and self._generate_unknown:
            calendar = _Calendar(self._generated_slots[tz], tz)
        return calendar

    def _hubspot(self, query: dict[str, list[str]]) -> _Route:
        slug = _first(query, "slug")
        if not slug:
            return _Route(_Provider.HUBSPOT, None, lambda: _error(_Provider.HUBSPOT, 400, "slug is required"))
        link = self._calendar(self._registry.hubspot, slug, "UTC")
        if link is None:
            return _Route(_Provider.HUBSPOT, slug, lambda: _error(_Provider.HUBSPOT, 404), True)
        found = link
        return _Route(_Provider.HUBSPOT, slug, lambda: self._hubspot_body(slug, found, query), True)

    def _hubspot_body(self, slug: str, link: _Calendar, query: dict[str, list[str]]) -> _Reply:
        try:
            tz = zone(_first(query, "timezone") or "UTC")
            offset = int(_first(query, "monthOffset") or "0")
        except ValueError as exc:
            return _error(_Provider.HUBSPOT, 400, f"invalid parameter: {exc}")
        now = self._now()
        key = ("hubspot", slug, link.slots, link.durations_ms, str(tz), offset, now.astimezone(tz).date())
        return self._memo(
            (*key, link.slots.first_from(now)),
            lambda: _json(
                200,
                payloads.hubspot_availability(
                    link.slots, now=now, tz=tz, month_offset=offset, durations_ms=link.durations_ms, slug=slug
                ),
            ),
        )

    def _ghl(self, calendar_id: str, query: dict[str, list[str]]) -> _Route:
        calendar = self._calendar(self._registry.ghl, calendar_id, "America/Chicago")
        if calendar is None:
            return _Route(_Provider.GHL, calendar_id, lambda: _error(_Provider.GHL, 404, "Calendar not found"), True)
        found = calendar
        return _Route(_Provider.GHL, calendar_id, lambda: self._ghl_body(found, query), True)

    def _ghl_body(self, calendar: _Calendar, query: dict[str, list[str]]) -> _Reply:
        try:
            tz = zone(_first(query, "timezone") or calendar.timezone)
            start_ms = int(_first(query, "startDate") or "")
            end_ms = int(_first(query, "endDate") or "")
        except ValueError:
            return _error(_Provider.GHL, 400, "Bad Request")
        if end_ms < start_ms or end_ms - start_ms > self._ghl_max_span_ms:
            return _error(_Provider.GHL, 400, "Bad Request")
        with self._lock:
            self._ghl_responses += 1
            dates_meta = self._ghl_responses % 2 == 1
        now, starts = self._now(), calendar.slots.starts
        if not self._cache_payloads:
            return _json(200, self._ghl_payload(calendar, now, tz, start_ms, end_ms, str(uuid.uuid4()), dates_meta))
        low, high = payloads.from_ms(start_ms), payloads.from_ms(end_ms)
        key = ("ghl", calendar.slots, str(tz), dates_meta, calendar.slots.first_from(now))
        bounds = (bisect.bisect_left(starts, low), bisect.bisect_right(starts, high))
        dates = (low.astimezone(tz).date(), high.astimezone(tz).date()) if dates_meta else None
        cached = self._memo(
            (*key, bounds, dates),
            lambda: _json(200, self._ghl_payload(calendar, now, tz, start_ms, end_ms, _TRACE_PLACEHOLDER, dates_meta)),
        )
        body = cached.body.replace(_TRACE_PLACEHOLDER.encode(), str(uuid.uuid4()).encode())
        return _Reply(cached.status, body, cached.content_type, cached.headers)

    @staticmethod
    def _ghl_payload(
        calendar: _Calendar, now: datetime, tz: ZoneInfo, start_ms: int, end_ms: int, trace_id: str, dates_meta: bool
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

    def _page_route(self, raw_path: str) -> _Route | None:
        with self._lock:
            path = raw_path if raw_path in self._registry.pages else unquote(raw_path)
            calendar_id = self._registry.pages.get(path)
        if calendar_id is None:
            return None
        with self._lock:
            calendar = self._registry.ghl.get(calendar_id)
        tz = calendar.timezone if calendar else "America/Chicago"
        html = payloads.nuxt_booking_page(calendar_id, path=path, timezone=tz)
        reply = _Reply(200, html.encode(), "text/html; charset=utf-8")
        return _Route(_Provider.PAGE, path, lambda: reply)


def _generated_uuid(profile: str, event: str) -> str:
    return str(uuid.uuid5(_GENERATED_NAMESPACE, f"calendly:{profile}/{event}"))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sandbox: ProviderSandbox) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Unblock handler threads parked on keep-alive reads or hung faults."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-answer are expected; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_version = "ProviderSandbox/1.0"
    sys_version = ""

    @property
    def _owner(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self._owner.track(self.connection, open_=True)

    def finish(self) -> None:
        self._owner.track(self.connection, open_=False)
        with contextlib.suppress(OSError):  # the client may already be gone
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sandbox keeps its own request log."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        reply = self._owner.sandbox._handle(self.command, self.path, dict(self.headers.items()))
        if reply is None:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a sandbox until Ctrl-C or SIGTERM, printing its base URL on one line."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.providers", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--generate-unknown", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-payloads", action="store_true", help="render each distinct body once (benchmarks)")
    args = parser.parse_args(argv)
    sandbox = ProviderSandbox(
        args.host,
        args.port,
        latency_s=args.latency_ms / 1000,
        failure_rate=args.failure_rate,
        generate_unknown=args.generate_unknown,
        seed=args.seed,
        cache_payloads=args.cache_payloads,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with sandbox:
        print(f"provider sandbox listening on {sandbox.base_url}", flush=True)
        while not done.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
