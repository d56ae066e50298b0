"""The function's own view of a workspace, from the function's own code: the one place where the
status view calls into lib/ to learn what a run would read and decide.

Every call into the function's resolution code (lib/store.py's candidate query, lib/plan.py's
per-workspace plan, lib/schedule.py's backoff and direct-book rules) is here, so the status view
reads exactly what a run would decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devtools.status.reader import WorkspaceNow
from lib.db import Database
from lib.model import DEFAULT_MEETING_DURATION, UNSHARDED, Candidate, Source
from lib.plan import SUPPORTED_TYPES, Step, plan_refresh
from lib.schedule import has_direct_book, in_backoff
from lib.store import load_candidates

NO_LINK = "none"  # the provider label of a workspace without a usable default link
OTHER = "other"  # ... of a link of no supported provider


@dataclass(frozen=True)
class Reading:
    """What the function's next run of one source does for a workspace, short of calling anyone."""

    url: str  # the URL it reads ('' without a usable link)
    calendar_type: str  # the type it stores for that URL ('' without a usable link)
    provider: str  # calendly / hubspot / ghl, or NO_PROVIDER when it makes no provider request
    eligible: bool  # DIRECT_BOOK: has a distinct direct-book calendar (DEFAULT: always)
    in_backoff: bool  # skipped: a configuration error whose backoff still runs
    no_request_reason: str | None  # why it calls no provider, when it does not


def load_workspaces(db: Database, source: Source, client_id: str | None = None) -> list[Candidate]:
    """The function's candidates of `source` (every shard): workspaces with a default link, their
    settings and their row of that source; DEFAULT also lists rows whose workspace lost its link.
    With `client_id`, that workspace whatever its state (empty: no such workspace)."""
    return load_candidates(db, source, client_id, UNSHARDED)


def reading(candidate: Candidate, source: Source, now: datetime) -> Reading:
    """What the next run of `source` would do for this workspace: the run's own plan, in words."""
    eligible = source is Source.DEFAULT or has_direct_book(candidate)
    plan = plan_refresh(candidate, source)
    reason = _NO_REQUEST_REASONS.get(plan.step)
    if plan.step is Step.UNSUPPORTED_DURATION:
        reason = f"meeting length {candidate.meeting_duration} min (only 30 is supported)"
    elif plan.step is Step.UNSUPPORTED_LINK:
        reason = f"unsupported calendar link type {plan.calendar_type!r}"
    calendar_type = plan.calendar_type if plan.url else ""
    backoff = eligible and in_backoff(candidate, now)
    return Reading(plan.url, calendar_type, plan.provider, eligible, backoff, reason)


_NO_REQUEST_REASONS = {
    Step.NO_DEFAULT: "no default calendar link (or its URL is blank)",
    Step.MALFORMED_URL: "the link's host or port cannot be read",
}


def provider_label(candidate: Candidate, source: Source) -> str:
    """The provider a workspace belongs to, for grouping: its link's, even when the run makes no request."""
    plan = plan_refresh(candidate, source)
    if not plan.url:
        return NO_LINK
    calendar_type = plan.calendar_type.lower()
    return calendar_type if calendar_type in SUPPORTED_TYPES else OTHER


def workspace_now(candidate: Candidate | None, source: Source) -> WorkspaceNow:
    """What the application's reader compares a row of `source` with (reader.py)."""
    if candidate is None:
        return WorkspaceNow(None, "", DEFAULT_MEETING_DURATION)
    plan = plan_refresh(candidate, source)
    return WorkspaceNow(plan.link_id, plan.url, candidate.meeting_duration)


def has_distinct_direct_book(candidate: Candidate) -> bool:
    """Whether the application reads this workspace's DIRECT_BOOK row for direct-book requests."""
    return has_direct_book(candidate)


def backing_off(candidate: Candidate, now: datetime) -> bool:
    """Whether the next run of the candidate's source skips it for a configuration error's backoff."""
    return in_backoff(candidate, now)
