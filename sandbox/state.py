"""The mutable state one sandbox's handler threads share, behind one lock.

Options, the registry, faults and their remaining uses, request counts and logs,
the payload cache and the seeded failure RNG live here, so the provider handlers
and the dispatcher can be plain functions of a `SandboxState`.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import datetime

from sandbox.records import Calendar, CalendlyEvent, Fault, Registry
from sandbox.replies import Reply
from sandbox.slots import SlotSet, as_utc, weekday_slots

DAY_MS = 86_400_000
LOG_LIMIT = 100_000  # keeps a long CLI/benchmark run from growing without bound
_PAYLOAD_CACHE_LIMIT = 50_000
# The zones `generate_unknown` answers unknown calendars in: Calendly's, HubSpot's and GHL's defaults.
_GENERATED_ZONES = ("America/New_York", "UTC", "America/Chicago")


class SandboxState:
    """Options plus everything the handlers read and write; mutate only under `lock`."""

    def __init__(
        self,
        *,
        latency_s: float,
        failure_rate: float,
        generate_unknown: bool,
        seed: int,
        clock: Callable[[], datetime],
        cache_payloads: bool,
        calendly_max_range_days: int,
        ghl_max_span_days: int,
    ) -> None:
        self.latency_s = latency_s
        # Set by a benchmark: each request's delay drawn by this function of its calendar key instead.
        self.latency_sampler: Callable[[str | None], float] | None = None
        self.failure_rate = failure_rate
        self.generate_unknown = generate_unknown
        self.seed = seed
        self.clock = clock
        self.cache_payloads = cache_payloads
        self.calendly_max_range_days = calendly_max_range_days
        self.ghl_max_span_ms = ghl_max_span_days * DAY_MS
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.registry = Registry()
        self.generated: dict[str, CalendlyEvent] = {}
        self.generated_slots: dict[str, SlotSet] = {}
        self.faults: dict[str, Fault] = {}
        self.fault_left: dict[str, int | None] = {}
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.log: deque[tuple[str, str]] = deque(maxlen=LOG_LIMIT)
        self.header_log: deque[tuple[str, dict[str, str]]] = deque(maxlen=LOG_LIMIT)
        self.ghl_responses = 0
        self.payloads: dict[tuple[object, ...], Reply] = {}
        self.slot_sets: dict[SlotSet, SlotSet] = {}

    def now(self) -> datetime:
        return as_utc(self.clock())

    def generate_slots(self) -> None:
        """Fill the slots unknown calendars get, from the clock at start (not per request)."""
        if self.generate_unknown:
            now = self.now()
            self.generated_slots = {
                name: SlotSet.of(weekday_slots(now, 31, timezone=name)) for name in _GENERATED_ZONES
            }

    def set_fault(self, key: str, fault: Fault | None) -> None:
        with self.lock:
            if fault is None:
                self.faults.pop(key, None)
                self.fault_left.pop(key, None)
            else:
                self.faults[key] = fault
                self.fault_left[key] = fault.times

    def request_delay(self, key: str | None) -> float:
        """How long to wait before answering a request about `key`."""
        sampler = self.latency_sampler
        return self.latency_s if sampler is None else sampler(key)

    def take_fault(self, key: str) -> Fault | None:
        """The fault for `key`, using up one of its `times`; the caller holds `lock`."""
        fault = self.faults.get(key)
        if fault is None:
            return None
        left = self.fault_left.get(key)
        if left is None:
            return fault
        if left <= 0:
            return None
        self.fault_left[key] = left - 1
        return fault

    def reset(self) -> None:
        """Forget calendars, faults, counts and the request log; reseed failures."""
        with self.lock:
            self.registry = Registry()
            self.generated.clear()
            self.faults.clear()
            self.fault_left.clear()
            self.counts.clear()
            self.total = 0
            self.log.clear()
            self.header_log.clear()
            self.ghl_responses = 0
            self.payloads.clear()
            self.slot_sets.clear()
            self.rng = random.Random(self.seed)

    def shared_slots(self, slots: Iterable[datetime]) -> SlotSet:
        """`SlotSet.of(slots)`, as the very object an equal set registered before got: payload-cache keys
        holding it then compare by identity instead of hundreds of datetimes per request."""
        made = SlotSet.of(slots)
        with self.lock:
            return self.slot_sets.setdefault(made, made)

    def memo(self, key: tuple[object, ...], render: Callable[[], Reply]) -> Reply:
        """`render()`, or with `cache_payloads` its earlier result for an equal key. Keys hold every input
        a body depends on (the slot set by value, and the clock only through the first free start)."""
        if not self.cache_payloads:
            return render()
        with self.lock:
            reply = self.payloads.get(key)
        if reply is None:
            reply = render()
            with self.lock:
                if len(self.payloads) >= _PAYLOAD_CACHE_LIMIT:
                    self.payloads.clear()
                self.payloads[key] = reply
        return reply

    def calendar(self, table: dict[str, Calendar], key: str, tz: str) -> Calendar | None:
        """A registered HubSpot link or GHL calendar, or with `generate_unknown` a made-up one."""
        with self.lock:
            calendar = table.get(key)
        if calendar is None and self.generate_unknown:
            calendar = Calendar(self.generated_slots[tz], tz)
        return calendar
