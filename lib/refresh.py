"""One workspace's refresh, run on a worker thread: carry out its plan (lib/plan.py), asking the
provider when the plan says so, and describe the cache row to write. HTTP and parsing only; the
database is the main thread's business."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lib.deadline import Deadline
from lib.errors import ProviderError
from lib.links import CalendarType, extract_event_type_uuid
from lib.model import DEFAULT_MEETING_DURATION, Source
from lib.outcome import (
    NO_DEFAULT_BACKOFF,
    NO_DEFAULT_LINK_ERROR,
    UNSUPPORTED_DURATION_BACKOFF,
    Outcome,
    RefreshOutcome,
    unsupported_duration_error,
)
from lib.plan import Step, WorkspacePlan
from lib.providers import calendly, ghl, hubspot
from lib.providers.base import FetchContext, ProviderResult
from lib.providers.http import HttpClient
from lib.slots import Window, normalize_slots
from lib.throttle import provider_silent, provider_trouble

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class RefreshContext:
    """What every refresh of a run shares."""

    http: HttpClient
    deadline: Deadline
    lookahead_days: int
    cache_ttl: timedelta
    calendly_base_url: str
    hubspot_base_url: str
    ghl_base_url: str
    allow_private_network: bool = False


def refresh_workspace(plan: WorkspacePlan, ctx: RefreshContext, now: datetime) -> RefreshOutcome:
    """The outcome of carrying out `plan`; never raises for a provider's misbehaviour."""
    window = Window.ahead(now, ctx.lookahead_days)
    row = _RowFactory(plan, now, window.end, ctx.cache_ttl)
    if plan.step is Step.NO_DEFAULT:
        # The row carries the workspace's meeting length, not the origin's 30: the application's reader
        # refreshes inline, on every read, a row whose length differs from the settings (origin §3.5).
        return row.config_error(
            Outcome.NO_DEFAULT,
            NO_DEFAULT_LINK_ERROR,
            NO_DEFAULT_BACKOFF,
            slot_duration=plan.candidate.meeting_duration,
        )
    if plan.step is Step.UNSUPPORTED_DURATION:
        duration = plan.candidate.meeting_duration
        return row.config_error(
            Outcome.UNSUPPORTED_DURATION,
            unsupported_duration_error(duration),
            UNSUPPORTED_DURATION_BACKOFF,
            slot_duration=duration,
            meta=_known_calendly_meta(plan),
        )
    if plan.step is Step.UNSUPPORTED_LINK:
        # The origin's outcome (g): the row describes the unusable link, with no slots, retried every run.
        return row.unsupported_link(
            _clip(f"Unsupported calendar link. Supported: Calendly, HubSpot, or GoHighLevel. URL: {plan.url}")
        )
    if plan.step is Step.MALFORMED_URL:
        return row.provider_failure(_clip(f"Invalid calendar link URL: {plan.url}"))
    try:
        result = _fetch(plan, ctx, window)
    except ProviderError as exc:
        return row.provider_failure(_clip(str(exc)), trouble=provider_trouble(exc), silent=provider_silent(exc))
    except Exception as exc:  # noqa: BLE001 - one workspace's bug must not fail the run; reported as its error
        return row.provider_failure(_clip(f"Unexpected error: {type(exc).__name__}: {exc}"))
    return row.refreshed(normalize_slots(result.instants_ms, window), result.meta)


def unfinished_refresh(plan: WorkspacePlan, ctx: RefreshContext, now: datetime, error: str) -> RefreshOutcome:
    """A refresh still running at the deadline: a provider failure that keeps the previous slots,
    describing (on a first insert) the link the plan read, as every other outcome does."""
    row = _RowFactory(plan, now, now + timedelta(days=ctx.lookahead_days), ctx.cache_ttl)
    return row.provider_failure(error, silent=True)


def _fetch(plan: WorkspacePlan, ctx: RefreshContext, window: Window) -> ProviderResult:
    url = plan.url
    cached = _reusable_meta(plan)
    if plan.provider == CalendarType.CALENDLY:
        fetch = FetchContext(ctx.http, window, ctx.deadline, ctx.calendly_base_url)
        return calendly.fetch_slots(
            fetch,
            url,
            event_type_uuid=_known_calendly_uuid(plan),
            timezone=_text(cached.get("calendlyAvailabilityTimezone")),
        )
    if plan.provider == CalendarType.HUBSPOT:
        return hubspot.fetch_slots(FetchContext(ctx.http, window, ctx.deadline, ctx.hubspot_base_url), url)
    if plan.provider == CalendarType.GHL:
        hints = [_text(cached.get("ghlCalendarId")), _desired_ghl_calendar(plan)]
        return ghl.fetch_slots(
            FetchContext(ctx.http, window, ctx.deadline, ctx.ghl_base_url, ctx.allow_private_network),
            url,
            calendar_id_hints=[hint for hint in hints if hint],
        )
    raise AssertionError(f"no provider for {plan.provider!r}")  # plan_refresh only plans FETCH for these


def _known_calendly_uuid(plan: WorkspacePlan) -> str | None:
    """The Calendly event type known without a request (origin §3.3 d): the one configured in the
    settings for the plan's source, else the row's cached one, else the one the URL names."""
    config = plan.candidate.config
    configured_uri = None
    if config is not None:
        direct = plan.source is Source.DIRECT_BOOK
        configured_uri = config.calendly_direct_book_uri if direct else config.calendly_uri
    cached = _text(_reusable_meta(plan).get("calendlyEventTypeUuid"))
    return extract_event_type_uuid(configured_uri) or cached or extract_event_type_uuid(plan.url)


def _known_calendly_meta(plan: WorkspacePlan) -> dict[str, Any]:
    """The provider ids of a configuration row for a Calendly link: the application's reader refreshes
    a Calendly row without `calendlyEventTypeUuid` inline on every read (origin §3.5 metaMissing),
    so the uuid is kept whenever it is known without asking Calendly."""
    uuid = _known_calendly_uuid(plan) if plan.calendar_type == CalendarType.CALENDLY else None
    if uuid is None:
        return {}
    timezone = _text(_reusable_meta(plan).get("calendlyAvailabilityTimezone"))
    return {"calendlyEventTypeUuid": uuid, "calendlyAvailabilityTimezone": timezone}


def _desired_ghl_calendar(plan: WorkspacePlan) -> str | None:
    config = plan.candidate.config
    if config is None:
        return None
    direct = plan.source is Source.DIRECT_BOOK
    desired = config.ghl_direct_book_calendar_id if direct else config.ghl_default_calendar_id
    return (desired or "").strip() or None


def _reusable_meta(plan: WorkspacePlan) -> dict[str, Any]:
    """Cached provider ids, only while the row still describes the same link and URL."""
    cache = plan.candidate.cache
    if cache is None or not plan.row_describes_link or not isinstance(cache.provider_meta, dict):
        return {}
    return cache.provider_meta


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_LENGTH else message[: MAX_ERROR_LENGTH - 3] + "..."


@dataclass(frozen=True)
class _RowFactory:
    """Builds the RefreshOutcome of each branch with the plan's link, type and URL and the shared times."""

    plan: WorkspacePlan
    now: datetime
    range_end: datetime
    ttl: timedelta

    def config_error(
        self,
        outcome: Outcome,
        error: str,
        backoff: timedelta,
        *,
        slot_duration: int = DEFAULT_MEETING_DURATION,
        meta: dict[str, Any] | None = None,
    ) -> RefreshOutcome:
        return self._outcome(outcome, error, meta=meta or {}, stale_after=backoff, duration=slot_duration)

    def provider_failure(self, error: str, *, trouble: str | None = None, silent: bool = False) -> RefreshOutcome:
        """A failure keeps the row's previous (future) slots and ids, unless the row is about another link
        (the owner replaced or edited it): that calendar's times must not be offered, so the row is
        rewritten for the current link with no slots (contract §4)."""
        if self.plan.candidate.cache is not None and not self.plan.row_describes_link:
            meta = _known_calendly_meta(self.plan)
            return self._outcome(Outcome.FAILED, error, meta=meta, trouble=trouble, silent=silent)
        return self._outcome(Outcome.FAILED, error, meta=None, keeps_previous=True, trouble=trouble, silent=silent)

    def unsupported_link(self, error: str) -> RefreshOutcome:
        return self._outcome(Outcome.FAILED, error, meta={})

    def refreshed(self, slots: tuple[str, ...], meta: dict[str, Any]) -> RefreshOutcome:
        return self._outcome(Outcome.REFRESHED, None, slots=slots, meta=meta)

    def _outcome(
        self,
        outcome: Outcome,
        error: str | None,
        *,
        meta: dict[str, Any] | None,  # None: a failure, whose row keeps its stored provider ids
        stale_after: timedelta | None = None,
        duration: int = DEFAULT_MEETING_DURATION,
        slots: tuple[str, ...] = (),
        keeps_previous: bool = False,
        trouble: str | None = None,
        silent: bool = False,
    ) -> RefreshOutcome:
        return RefreshOutcome(
            client_id=self.plan.client_id,
            outcome=outcome,
            fetched_at=self.now,
            stale_at=self.now + (self.ttl if stale_after is None else stale_after),
            range_end=self.range_end,
            error=error,
            calendar_link_id=self.plan.link_id,
            calendar_type=self.plan.calendar_type,
            calendar_url=self.plan.url,
            slot_duration_minutes=duration,
            slots=slots,
            provider_meta=meta,
            keeps_previous_slots=keeps_previous,
            provider_trouble=trouble,
            provider_silent=silent,
        )
