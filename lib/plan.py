"""What one workspace's refresh will do, decided once before the run starts: the URL to read, its
calendar type and provider, or the configuration outcome it leads to (origin §3.3). The throttle,
the refresh and the deadline path all read this one immutable plan, so they cannot disagree."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from lib.links import CalendarType, calendar_type_for, detect_calendar_type, normalize_calendar_url
from lib.model import DEFAULT_MEETING_DURATION, Candidate, Source

# The provider of a plan that makes no request (a configuration outcome): never throttled.
NO_PROVIDER = ""
SUPPORTED_TYPES = frozenset({CalendarType.CALENDLY.value, CalendarType.HUBSPOT.value, CalendarType.GHL.value})


class Step(StrEnum):
    """The branch of the origin's outcome tree a workspace takes."""

    FETCH = "fetch"  # ask the provider (d), (e), (f)
    NO_DEFAULT = "noDefault"  # (a) no default link, (b) a blank one
    UNSUPPORTED_DURATION = "unsupportedDuration"  # (c)
    UNSUPPORTED_LINK = "unsupportedLink"  # (g)
    MALFORMED_URL = "malformedUrl"  # a supported type whose host or port cannot be read: a failure


@dataclass(frozen=True)
class WorkspacePlan:
    """One workspace's refresh, decided: `url` is the resolved, normalised URL ('' without one),
    `calendar_type` what the row's calendarType gets, `provider` whom a FETCH asks (else NO_PROVIDER)."""

    candidate: Candidate
    source: Source
    step: Step
    url: str
    calendar_type: str
    provider: str = NO_PROVIDER

    @property
    def client_id(self) -> str:
        return self.candidate.client_id

    @property
    def link_id(self) -> str | None:
        return self.candidate.link.id if self.candidate.link else None

    @property
    def row_describes_link(self) -> bool:
        """Whether the stored row is about the link this plan reads (same link id and normalised URL), as
        the application's reader judges it: only then are its provider ids and, on a failure, its slots kept."""
        cache = self.candidate.cache
        if cache is None or self.link_id is None:
            return False
        return cache.calendar_link_id == self.link_id and normalize_calendar_url(cache.calendar_url) == self.url


def plan_refresh(candidate: Candidate, source: Source) -> WorkspacePlan:
    """The plan of `candidate`'s refresh for rows of `source`; pure, no I/O."""
    link = candidate.link
    if link is None:
        return WorkspacePlan(candidate, source, Step.NO_DEFAULT, "", CalendarType.UNKNOWN.value)
    url = resolve_availability_url(candidate, source)
    if not url:
        return WorkspacePlan(candidate, source, Step.NO_DEFAULT, "", CalendarType.UNKNOWN.value)
    if candidate.meeting_duration != DEFAULT_MEETING_DURATION:
        # Origin (c): the type is detected from the URL, not taken from the link.
        return WorkspacePlan(candidate, source, Step.UNSUPPORTED_DURATION, url, detect_calendar_type(url).value)
    calendar_type = calendar_type_for(link.type, url)
    if calendar_type.lower() not in SUPPORTED_TYPES:
        # Origin (g): the row keeps the link's own type text, whatever it is.
        return WorkspacePlan(candidate, source, Step.UNSUPPORTED_LINK, url, calendar_type)
    calendar_type = calendar_type.lower()
    if not _well_formed(url):
        return WorkspacePlan(candidate, source, Step.MALFORMED_URL, url, calendar_type)
    return WorkspacePlan(candidate, source, Step.FETCH, url, calendar_type, provider=calendar_type)


def resolve_availability_url(candidate: Candidate, source: Source) -> str:
    """The URL availability is read from (origin §3.3 step 5): the link, or for a CALENDLY workspace
    the event type configured in its settings (the direct-book one first for DIRECT_BOOK rows)."""
    base = normalize_calendar_url(candidate.link.url if candidate.link else None)
    config = candidate.config
    if not base or config is None or config.booking_provider != "CALENDLY":
        return base
    choices = [config.calendly_link, config.calendly_uri]
    if source is Source.DIRECT_BOOK:
        choices = [config.calendly_direct_book_link, config.calendly_direct_book_uri, *choices]
    for choice in choices:
        normalized = normalize_calendar_url(choice)
        if normalized:
            return normalized
    return base


# http(s), a host of letters, digits, dots and dashes, no port: the host can be read, as urlsplit
# would find (nearly every link; urlsplit judges the rest, at ~20 µs a link before the first request).
_PLAIN_HOST_URL = re.compile(r"https?://[a-z0-9.-]+(?:[/?#]|$)", re.IGNORECASE | re.ASCII)


def _well_formed(url: str) -> bool:
    """Whether the URL's host and port can be read (a typed link like `https://[::1/x` cannot)."""
    return _PLAIN_HOST_URL.match(url) is not None or _host_readable(url)


def _host_readable(url: str) -> bool:
    """`_well_formed` without the fast path: what urlsplit reads of the host and port."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return bool(parts.hostname)
