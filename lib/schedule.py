"""Which workspaces a run refreshes and in what order: due selection, backoff, agency round-robin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lib.links import js_trim, normalize_calendar_url
from lib.model import DEFAULT_MEETING_DURATION, Candidate, Mode, Source
from lib.outcome import NO_DEFAULT_LINK_ERROR, UNSUPPORTED_DURATION_PREFIX

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    """The run's work: `queue` in refresh order, the candidates held back by a backoff, and (DIRECT_BOOK
    runs) the workspaces without a distinct direct-book calendar, for which nothing is written."""

    queue: tuple[Candidate, ...]
    backoff: tuple[Candidate, ...]
    not_configured: tuple[Candidate, ...] = ()


def plan(candidates: Sequence[Candidate], *, mode: Mode, limit: int, now: datetime, source: Source) -> Schedule:
    """Select (all, or the due ones up to `limit`), set aside backoffs, and interleave by agency."""
    not_configured = [c for c in candidates if source is Source.DIRECT_BOOK and not has_direct_book(c)]
    skipped = {candidate.client_id for candidate in not_configured}
    eligible = [candidate for candidate in candidates if candidate.client_id not in skipped]
    selected = eligible if mode is Mode.ALL else due_candidates(eligible, limit=limit, now=now)
    backoff = [candidate for candidate in selected if in_backoff(candidate, now)]
    held = {candidate.client_id for candidate in backoff}
    ready = [candidate for candidate in selected if candidate.client_id not in held]
    return Schedule(tuple(interleave_by_agency(ready)), tuple(backoff), tuple(not_configured))


def has_direct_book(candidate: Candidate) -> bool:
    """Whether the workspace has a direct-book calendar distinct from its default one (origin §3.2)."""
    config = candidate.config
    if config is None:
        return False  # no settings: GHL without a direct-book calendar id
    if config.booking_provider == "CALENDLY":
        link_a, uri_a = _trimmed(config.calendly_link), _trimmed(config.calendly_uri)
        link_b, uri_b = _trimmed(config.calendly_direct_book_link), _trimmed(config.calendly_direct_book_uri)
        if not link_b and not uri_b:
            return False
        if link_a and link_b and link_a == link_b:
            return False
        return not (uri_a and uri_b and uri_a == uri_b)
    direct = _trimmed(config.ghl_direct_book_calendar_id)
    return bool(direct) and direct != _trimmed(config.ghl_default_calendar_id)


def _trimmed(value: str | None) -> str:
    return js_trim(value)  # origin §3.2 compares values trimmed by JavaScript


def due_candidates(candidates: Sequence[Candidate], *, limit: int, now: datetime) -> list[Candidate]:
    """Missing caches first (oldest workspace first), then stale ones by staleAt ascending, up to `limit`."""
    missing = sorted((c for c in candidates if c.cache is None), key=lambda c: (c.created_at, c.client_id))
    stale = sorted(
        (c for c in candidates if c.cache is not None and (c.cache.stale_at <= now or _backoff_cause_gone(c))),
        key=lambda c: (c.cache.stale_at if c.cache else _EPOCH, c.client_id),
    )
    return (missing + stale)[:limit]


def in_backoff(candidate: Candidate, now: datetime) -> bool:
    """A configuration error backs off while its row is fresh and its cause is still there.

    The origin backed off on the error text alone, so a fixed configuration waited up to 24 h;
    here fixing the link or the meeting length ends the backoff on the next run.
    """
    cache = candidate.cache
    if cache is None or cache.last_error is None or cache.stale_at <= now:
        return False
    return _backoff_error(cache.last_error) and not _backoff_cause_gone(candidate)


def _backoff_error(error: str) -> bool:
    text = error.strip()
    return text == NO_DEFAULT_LINK_ERROR or text.startswith(UNSUPPORTED_DURATION_PREFIX)


def _backoff_cause_gone(candidate: Candidate) -> bool:
    cache = candidate.cache
    if cache is None or cache.last_error is None or not _backoff_error(cache.last_error):
        return False
    link = candidate.link
    if cache.last_error.strip() == NO_DEFAULT_LINK_ERROR:
        return link is not None and bool(normalize_calendar_url(link.url))
    return candidate.meeting_duration == DEFAULT_MEETING_DURATION or link is None or link.id != cache.calendar_link_id


def interleave_by_agency(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Round-robin over agencies (Client.userId, ascending) so no agency starves the others.

    Within an agency: no cache first, then oldest staleAt, then clientId. Workspaces with an
    empty userId come last, as in the origin.
    """
    buckets: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        buckets.setdefault(candidate.user_id, []).append(candidate)
    without_agency = buckets.pop("", [])
    ordered = [sorted(buckets[key], key=_within_agency) for key in sorted(buckets, key=_utf16_key)]
    queue: list[Candidate] = []
    for rank in range(max((len(bucket) for bucket in ordered), default=0)):
        queue.extend(bucket[rank] for bucket in ordered if rank < len(bucket))
    queue.extend(sorted(without_agency, key=_within_agency))
    return queue


def _within_agency(candidate: Candidate) -> tuple[datetime, str]:
    stale_at = candidate.cache.stale_at if candidate.cache else _EPOCH
    return stale_at, candidate.client_id


def _utf16_key(text: str) -> bytes:
    # JavaScript sorts strings by UTF-16 code units; encoding to UTF-16-BE preserves that order.
    return text.encode("utf-16-be", "surrogatepass")
