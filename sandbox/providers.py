"""A loopback fake of the Calendly, HubSpot and GoHighLevel public availability APIs.

One HTTP/1.1 server (an asyncio loop on a background thread) answers all three by path, so CALENDLY_BASE_URL,
HUBSPOT_BASE_URL and GHL_BASE_URL can all point at `ProviderSandbox.base_url`.
Calendars are registered in memory; faults, latency and random 503s are knobs.
Run `python -m sandbox.providers --help` for a standalone server.
"""

# This module is the facade and CLI: the records live in `sandbox.records`, the
# per-provider answers in `sandbox.calendly`, `.hubspot`, `.ghl` and `.pages`,
# request dispatch in `sandbox.dispatch` and the HTTP plumbing in `sandbox.server`.
# None of those import this module, so `python -m sandbox.providers` loads it once.

from __future__ import annotations

import argparse
import functools
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import FrameType, TracebackType
from typing import Self
from urllib.parse import urlsplit

from sandbox.calendly import MAX_RANGE_DAYS as CALENDLY_MAX_RANGE_DAYS
from sandbox.calendly import generated_uuid
from sandbox.dispatch import plan
from sandbox.ghl import MAX_SPAN_DAYS as GHL_MAX_SPAN_DAYS
from sandbox.records import Calendar, CalendlyEvent, Fault
from sandbox.server import SandboxServer
from sandbox.slots import weekday_slots, zone
from sandbox.state import SandboxState

__all__ = ["Fault", "ProviderSandbox", "main", "weekday_slots"]


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
        self._host, self._port = host, port
        self._state = SandboxState(
            latency_s=latency_s,
            failure_rate=failure_rate,
            generate_unknown=generate_unknown,
            seed=seed,
            clock=clock or (lambda: datetime.now(UTC)),
            cache_payloads=cache_payloads,
            calendly_max_range_days=calendly_max_range_days,
            ghl_max_span_days=ghl_max_span_days,
        )
        self._server: SandboxServer | None = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        self._state.generate_slots()
        server = SandboxServer((self._host, self._port), functools.partial(plan, self._state))
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving; hung and waiting requests' connections are closed, not waited for."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

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
        return f"http://{self._host}:{self._server.port}"

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
        event_uuid = uuid or generated_uuid(profile, event)
        record = CalendlyEvent(event_uuid, profile, event, self._state.shared_slots(slots), timezone, public)
        state = self._state
        with state.lock:
            state.registry.events[event_uuid] = record
            state.registry.event_by_slug[(profile, event)] = event_uuid
        if fault is not None:
            self.set_fault(event_uuid, fault)
        return event_uuid

    def add_calendly_scheduling_link(self, slug: str, event_uuid: str) -> None:
        """Register `calendly.com/{slug}` as a single-use link to an event type."""
        with self._state.lock:
            self._state.registry.links[slug] = event_uuid

    def add_calendly_share_link(self, code: str, event_uuid: str) -> None:
        """Register `calendly.com/d/{code}`: looked up as `lookup?event_type_uuid={code}`."""
        with self._state.lock:
            self._state.registry.share_codes[code] = event_uuid

    def add_calendly_profile(
        self, slug: str, event_uuids: Sequence[str], *, timezone: str = "America/New_York"
    ) -> None:
        zone(timezone)
        with self._state.lock:
            self._state.registry.profiles[slug] = (timezone, tuple(event_uuids))

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
        calendar = Calendar(self._state.shared_slots(slots), "UTC", tuple(durations_ms))
        with self._state.lock:
            self._state.registry.hubspot[slug] = calendar
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
        calendar = Calendar(self._state.shared_slots(slots), timezone)
        with self._state.lock:
            self._state.registry.ghl[calendar_id] = calendar
        if fault is not None:
            self.set_fault(calendar_id, fault)

    def add_ghl_booking_page(self, path: str, calendar_id: str, *, fault: Fault | None = None) -> None:
        """Serve a Nuxt booking page at `path` (e.g. `/widget/bookings/acme`)."""
        path = "/" + urlsplit(path).path.lstrip("/")
        with self._state.lock:
            self._state.registry.pages[path] = calendar_id
        if fault is not None:
            self.set_fault(path, fault)

    def set_latency_sampler(self, sampler: Callable[[str | None], float] | None) -> None:
        """Draw each request's delay (seconds) with `sampler(calendar key)` instead of the fixed latency;
        None goes back to the fixed one. For benchmarks with realistic, uneven provider latency."""
        self._state.latency_sampler = sampler

    def set_fault(self, key: str, fault: Fault | None) -> None:
        """Set or clear (None) the fault for a uuid, slug, calendar id or page path."""
        self._state.set_fault(key, fault)

    def reset(self) -> None:
        """Forget calendars, faults, counts and the request log; reseed failures."""
        self._state.reset()

    # --- observation --------------------------------------------------------------

    def requests_for(self, key: str) -> int:
        """Requests that concerned `key`: event uuid (lookups and range calls), link
        slug, profile slug, HubSpot slug, GHL calendar id or booking-page path."""
        with self._state.lock:
            return self._state.counts[key]

    @property
    def total_requests(self) -> int:
        with self._state.lock:
            return self._state.total

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """A snapshot of (method, path with query) per request, in arrival order (last 100k)."""
        with self._state.lock:
            return list(self._state.log)

    @property
    def request_headers(self) -> list[tuple[str, dict[str, str]]]:
        """A snapshot of (path with query, request headers) per request, in arrival order (last 100k)."""
        with self._state.lock:
            return [(target, dict(headers)) for target, headers in self._state.header_log]


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
