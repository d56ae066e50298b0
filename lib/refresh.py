"""One workspace's refresh, run on a worker thread: decide what the link needs, ask its provider, and
describe the cache row to write. HTTP and parsing only; the database is the main thread's business."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from lib.deadline import Deadline
from lib.errors import ProviderError
from lib.links import (
    CalendarType,
    calendar_type_for,
    detect_calendar_type,
    extract_event_type_uuid,
    normalize_calendar_url,
)
from lib.model import DEFAULT_MEETING_DURATION, CachedState, Candidate
from lib.options import Source
from lib.outcome import (
    NO_DEFAULT_BACKOFF,
    NO_DEFAULT_LINK_ERROR,
    UNSUPPORTED_DURATION_BACKOFF,
    Outcome,
    RefreshOutcome,
    unsupported_duration_error,
)
from lib.providers import calendly, ghl, hubspot
from lib.providers.base import FetchContext, ProviderResult
from lib.providers.http import HttpClient
from lib.slots import Window, normalize_slots
from lib.throttle import NO_PROVIDER, provider_trouble

MAX_ERROR_LENGTH = 500
SUPPORTED_TYPES = frozenset({CalendarType.CALENDLY.value, CalendarType.HUBSPOT.value, CalendarType.GHL.value})


@dataclass(frozen=True)
class RefreshContext:
    """What every refresh of a run shares."""

    http: HttpClient
    deadline: Deadline
    source: Source
    lookahead_days: int
    cache_ttl: timedelta
    calendly_base_url: str
    hubspot_base_url: str
    ghl_base_url: str
    allow_private_network: bool = False


def resolve_availability_url(candidate: Candidate, source: Source) -> str:
    """The URL availability is read from: the link, or the Calendly event type configured in settings."""
    assert candidate.link is not None
    base = normalize_calendar_url(candidate.link.url)
    config = candidate.config
    if not base or config is None or config.booking_provider != "CALENDLY":
        return base
    if source is Source.DIRECT_BOOK:
        choices = [config.calendly_direct_book_link, config.calendly_direct_book_uri]
    else:
        choices = []
    choices += [config.calendly_link, config.calendly_uri]
    for choice in choices:
        normalized = normalize_calendar_url(choice)
        if normalized:
            return normalized
    return base


def provider_key(candidate: Candidate, source: Source) -> str:
    """The provider a refresh of this workspace will call (`calendly`, `hubspot`, `ghl`), or
    NO_PROVIDER when the refresh makes no request (no link, unsupported length or link)."""
    if candidate.link is None or candidate.meeting_duration != DEFAULT_MEETING_DURATION:
        return NO_PROVIDER
    url = resolve_availability_url(candidate, source)
    calendar_type = calendar_type_for(candidate.link.type, url).lower() if url else ""
    return calendar_type if calendar_type in SUPPORTED_TYPES else NO_PROVIDER


def refresh_workspace(candidate: Candidate, ctx: RefreshContext, now: datetime) -> RefreshOutcome:
    """The outcome of refreshing one workspace; never raises for a provider's misbehaviour."""
    link = candidate.link
    window = Window.ahead(now, ctx.lookahead_days)
    row = _RowFactory(candidate.client_id, now, window.end, ctx.cache_ttl, candidate.cache)
    if link is None:
        return row.config_error(Outcome.NO_DEFAULT, NO_DEFAULT_LINK_ERROR, NO_DEFAULT_BACKOFF, None, "unknown", "")
    url = resolve_availability_url(candidate, ctx.source)
    if not url:
        return row.config_error(Outcome.NO_DEFAULT, NO_DEFAULT_LINK_ERROR, NO_DEFAULT_BACKOFF, link.id, "unknown", "")
    duration = candidate.meeting_duration
    if duration != DEFAULT_MEETING_DURATION:
        detected = detect_calendar_type(url).value
        return row.config_error(
            Outcome.UNSUPPORTED_DURATION,
            unsupported_duration_error(duration),
            UNSUPPORTED_DURATION_BACKOFF,
            link.id,
            detected,
            url,
            slot_duration=duration,
        )
    calendar_type = calendar_type_for(link.type, url)
    if calendar_type.lower() not in SUPPORTED_TYPES:
        # The origin's outcome (g): the row describes the unusable link, with no slots, retried every run.
        message = f"Unsupported calendar link. Supported: Calendly, HubSpot, or GoHighLevel. URL: {url}"
        return row.unsupported_link(link.id, calendar_type, url, _clip(message))
    calendar_type = calendar_type.lower()
    if not _well_formed(url):
        return row.provider_failure(link.id, calendar_type, url, _clip(f"Invalid calendar link URL: {url}"))
    try:
        result = _fetch(candidate, ctx, url, calendar_type, window)
    except ProviderError as exc:
        return row.provider_failure(link.id, calendar_type, url, _clip(str(exc)), provider_trouble(exc))
    except Exception as exc:  # noqa: BLE001 - one workspace's bug must not fail the run; reported as its error
        return row.provider_failure(
            link.id, calendar_type, url, _clip(f"Unexpected error: {type(exc).__name__}: {exc}")
        )
    return row.refreshed(link.id, calendar_type, url, normalize_slots(result.instants_ms, window), result.meta)


def unfinished_refresh(candidate: Candidate, ctx: RefreshContext, now: datetime, error: str) -> RefreshOutcome:
    """A refresh still running at the deadline: a provider failure that keeps the previous slots."""
    row = _RowFactory(
        candidate.client_id, now, now + timedelta(days=ctx.lookahead_days), ctx.cache_ttl, candidate.cache
    )
    link = candidate.link
    # The URL refresh_workspace read (the Calendly settings link may replace the link's own URL), so
    # that a row of this very link is recognised as such and keeps its slots.
    url = resolve_availability_url(candidate, ctx.source) if link else ""
    calendar_type = calendar_type_for(link.type, url).lower() if link else "unknown"
    return row.provider_failure(link.id if link else None, calendar_type, url, error)


def _fetch(candidate: Candidate, ctx: RefreshContext, url: str, calendar_type: str, window: Window) -> ProviderResult:
    cached = _reusable_meta(candidate, url)
    if calendar_type == CalendarType.CALENDLY:
        config = candidate.config
        configured_uri = None
        if config is not None:
            direct = ctx.source is Source.DIRECT_BOOK
            configured_uri = config.calendly_direct_book_uri if direct else config.calendly_uri
        uuid = extract_event_type_uuid(configured_uri) or _text(cached.get("calendlyEventTypeUuid"))
        fetch = FetchContext(ctx.http, window, ctx.deadline, ctx.calendly_base_url)
        return calendly.fetch_slots(
            fetch,
            url,
            event_type_uuid=uuid or extract_event_type_uuid(url),
            timezone=_text(cached.get("calendlyAvailabilityTimezone")),
        )
    if calendar_type == CalendarType.HUBSPOT:
        return hubspot.fetch_slots(FetchContext(ctx.http, window, ctx.deadline, ctx.hubspot_base_url), url)
    if calendar_type == CalendarType.GHL:
        hints = [_text(cached.get("ghlCalendarId")), _desired_ghl_calendar(candidate, ctx.source)]
        return ghl.fetch_slots(
            FetchContext(ctx.http, window, ctx.deadline, ctx.ghl_base_url, ctx.allow_private_network),
            url,
            calendar_id_hints=[hint for hint in hints if hint],
        )
    raise AssertionError(f"no provider for {calendar_type}")  # refresh_workspace checked SUPPORTED_TYPES


def _desired_ghl_calendar(candidate: Candidate, source: Source) -> str | None:
    config = candidate.config
    if config is None:
        return None
    desired = config.ghl_direct_book_calendar_id if source is Source.DIRECT_BOOK else config.ghl_default_calendar_id
    return (desired or "").strip() or None


def _reusable_meta(candidate: Candidate, url: str) -> dict[str, Any]:
    """Cached provider ids, only while the row still describes the same link and URL."""
    cache, link = candidate.cache, candidate.link
    if cache is None or link is None or not isinstance(cache.provider_meta, dict):
        return {}
    if not _describes(cache, link.id, url):
        return {}
    return cache.provider_meta


def _describes(cache: CachedState | None, link_id: str | None, url: str) -> bool:
    """Whether the stored row belongs to this link and URL (the owner has not replaced the link)."""
    return cache is not None and cache.calendar_link_id == link_id and normalize_calendar_url(cache.calendar_url) == url


def _well_formed(url: str) -> bool:
    """Whether the URL's host and port can be read (a typed link like `https://[::1/x` cannot)."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return bool(parts.hostname)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_LENGTH else message[: MAX_ERROR_LENGTH - 3] + "..."


@dataclass(frozen=True)
class _RowFactory:
    """Builds the RefreshOutcome of each branch with the shared times filled in."""

    client_id: str
    now: datetime
    range_end: datetime
    ttl: timedelta
    cached: CachedState | None  # the stored row, if any

    def config_error(
        self,
        outcome: Outcome,
        error: str,
        backoff: timedelta,
        link_id: str | None,
        calendar_type: str,
        url: str,
        *,
        slot_duration: int = DEFAULT_MEETING_DURATION,
    ) -> RefreshOutcome:
        return self._outcome(
            outcome, error, link_id, calendar_type, url, meta={}, stale_after=backoff, duration=slot_duration
        )

    def provider_failure(
        self, link_id: str | None, calendar_type: str, url: str, error: str, trouble: str | None = None
    ) -> RefreshOutcome:
        # A row of another link (changed or removed since it was written) keeps nothing: offering the
        # old calendar's times after its owner replaced it would be wrong (contract §4). The failure is
        # then written as a complete row: this link, no slots, no provider ids.
        keeps = _describes(self.cached, link_id, url)
        return self._outcome(
            Outcome.FAILED, error, link_id, calendar_type, url, meta=None, keeps_previous=keeps, trouble=trouble
        )

    def unsupported_link(self, link_id: str, calendar_type: str, url: str, error: str) -> RefreshOutcome:
        return self._outcome(Outcome.FAILED, error, link_id, calendar_type, url, meta={})

    def refreshed(
        self, link_id: str, calendar_type: str, url: str, slots: tuple[str, ...], meta: dict[str, Any]
    ) -> RefreshOutcome:
        return self._outcome(Outcome.REFRESHED, None, link_id, calendar_type, url, slots=slots, meta=meta)

    def _outcome(
        self,
        outcome: Outcome,
        error: str | None,
        link_id: str | None,
        calendar_type: str,
        url: str,
        *,
        meta: dict[str, Any] | None,  # None: a failure, whose row keeps its stored provider ids
        stale_after: timedelta | None = None,
        duration: int = DEFAULT_MEETING_DURATION,
        slots: tuple[str, ...] = (),
        keeps_previous: bool = False,
        trouble: str | None = None,
    ) -> RefreshOutcome:
        return RefreshOutcome(
            self.client_id,
            outcome,
            self.now,
            self.now + (self.ttl if stale_after is None else stale_after),
            self.range_end,
            error,
            link_id,
            calendar_type,
            url,
            duration,
            slots,
            meta,
            keeps_previous_slots=keeps_previous,
            provider_trouble=trouble,
        )
