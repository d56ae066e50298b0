"""What a sandbox has been told to serve: registered calendars and the faults to inject.

Plain values only; `sandbox.state` owns the locking and `sandbox.providers` the
methods that fill them in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.slots import SlotSet


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


@dataclass(frozen=True)
class CalendlyEvent:
    """One Calendly event type, reachable by uuid and by (profile, slug)."""

    uuid: str
    profile: str
    slug: str
    slots: SlotSet
    timezone: str
    public: bool = True


@dataclass(frozen=True)
class Calendar:
    """A HubSpot link or GHL calendar: free starts plus per-provider settings."""

    slots: SlotSet
    timezone: str = "UTC"
    durations_ms: tuple[int, ...] = (1_800_000,)


@dataclass
class Registry:
    """Every registered calendar, by the key its provider's URLs carry."""

    events: dict[str, CalendlyEvent] = field(default_factory=dict)
    event_by_slug: dict[tuple[str, str], str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    share_codes: dict[str, str] = field(default_factory=dict)
    # profile slug -> (profile time zone, its event-type uuids in listing order)
    profiles: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    hubspot: dict[str, Calendar] = field(default_factory=dict)
    ghl: dict[str, Calendar] = field(default_factory=dict)
    # booking-page path -> GHL calendar id
    pages: dict[str, str] = field(default_factory=dict)
