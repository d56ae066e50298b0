"""The whole table at a glance: per source and provider, how many workspaces, how many rows the
application's reader takes as fresh, how long the others have been stale, how many are erroring
or in backoff; the failures grouped; the oldest successful refreshes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devtools.status import function_view
from devtools.status.failures import normalize_error
from devtools.status.queries import CacheRow
from devtools.status.reader import reader_verdict
from lib.model import Candidate, Source

# How long a stale row has been stale (now - staleAt). With the default one-minute TTL and a run
# every minute, a row is routinely stale for a few seconds before the next run: the first bucket.
STALE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("<2m", timedelta(minutes=2)),
    ("2-15m", timedelta(minutes=15)),
    ("15m-1h", timedelta(hours=1)),
    ("1-24h", timedelta(hours=24)),
    (">=24h", None),
)
TOP_FAILURES = 10
TOP_OLDEST = 10
ALL = "all"


def stale_bucket(stale_for: timedelta) -> str:
    for label, bound in STALE_BUCKETS:
        if bound is None or stale_for < bound:
            return label
    raise AssertionError("the last bucket has no bound")


def age_minutes(now: datetime, moment: datetime) -> float:
    return (now - moment).total_seconds() / 60


@dataclass
class ProviderLine:
    """Counts of one source and provider, accumulated row by row (hence not frozen).

    fresh + sum(stale) + changed + without_row = workspaces.
    """

    source: Source
    provider: str
    workspaces: int = 0
    without_row: int = 0
    fresh: int = 0
    stale: dict[str, int] = field(default_factory=lambda: dict.fromkeys((label for label, _ in STALE_BUCKETS), 0))
    changed: int = 0  # staleAt still ahead, but the link or settings changed since the row was written
    erroring: int = 0
    in_backoff: int = 0
    # now - rangeStart of each row: how old its slots are (rangeStart moves on every write except a
    # provider failure, which keeps the previous slots).
    ages_minutes: list[float] = field(default_factory=list)

    def add(self, other: ProviderLine) -> None:
        self.workspaces += other.workspaces
        self.without_row += other.without_row
        self.fresh += other.fresh
        for label, count in other.stale.items():
            self.stale[label] += count
        self.changed += other.changed
        self.erroring += other.erroring
        self.in_backoff += other.in_backoff
        self.ages_minutes += other.ages_minutes

    def as_dict(self) -> dict[str, Any]:
        ages = sorted(self.ages_minutes)
        return {
            "provider": self.provider,
            "workspaces": self.workspaces,
            "withoutRow": self.without_row,
            "fresh": self.fresh,
            "stale": dict(self.stale),
            "changed": self.changed,
            "erroring": self.erroring,
            "inBackoff": self.in_backoff,
            "cacheAgeMinutes": {
                "median": round(ages[len(ages) // 2], 1) if ages else None,
                "max": round(ages[-1], 1) if ages else None,
            },
        }


@dataclass(frozen=True)
class SourceSummary:
    source: Source
    lines: tuple[ProviderLine, ...]  # one per provider, by provider name
    total: ProviderLine
    unused_rows: int  # DIRECT_BOOK rows of workspaces without a distinct direct-book calendar

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "providers": [line.as_dict() for line in self.lines],
            "total": self.total.as_dict(),
            "unusedRows": self.unused_rows,
        }


@dataclass(frozen=True)
class FailureGroup:
    source: Source
    reason: str  # the normalised lastError
    count: int
    example_client_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "reason": self.reason,
            "count": self.count,
            "exampleClientId": self.example_client_id,
        }


@dataclass(frozen=True)
class SuccessfulRow:
    source: Source
    client_id: str
    provider: str
    range_start: datetime
    age_minutes: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "clientId": self.client_id,
            "provider": self.provider,
            "rangeStart": self.range_start.isoformat(),
            "ageMinutes": round(self.age_minutes, 1),
        }


@dataclass(frozen=True)
class Overview:
    now: datetime
    sources: tuple[SourceSummary, ...]
    failures: tuple[FailureGroup, ...]  # most common first
    oldest_successful: tuple[SuccessfulRow, ...]  # lastError null, oldest rangeStart first

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "sources": [summary.as_dict() for summary in self.sources],
            "failureReasons": [group.as_dict() for group in self.failures],
            "oldestSuccessful": [row.as_dict() for row in self.oldest_successful],
        }


def build_overview(
    candidates: Mapping[Source, Sequence[Candidate]], rows: Sequence[CacheRow], now: datetime
) -> Overview:
    """Everything the overview shows, from the function's candidates of each source and the rows."""
    known: dict[str, Candidate] = {}  # link and settings do not depend on the source
    for source_candidates in candidates.values():
        known.update((candidate.client_id, candidate) for candidate in source_candidates)
    summaries = []
    successful: list[SuccessfulRow] = []
    for source in Source:
        source_rows = {row.client_id: row for row in rows if row.source is source}
        summary, source_successful = _summarize(source, candidates.get(source, ()), source_rows, known, now)
        summaries.append(summary)
        successful += source_successful
    successful.sort(key=lambda row: (row.range_start, row.client_id, row.source.value))
    return Overview(now, tuple(summaries), _group_failures(rows), tuple(successful[:TOP_OLDEST]))


def _summarize(
    source: Source,
    visited: Iterable[Candidate],
    rows: dict[str, CacheRow],
    known: dict[str, Candidate],
    now: datetime,
) -> tuple[SourceSummary, list[SuccessfulRow]]:
    visited_by_id = {candidate.client_id: candidate for candidate in visited}
    lines: dict[str, ProviderLine] = {}
    successful = []
    unused = 0
    for client_id in sorted(set(visited_by_id) | set(rows)):
        candidate = visited_by_id.get(client_id) or known.get(client_id)
        row = rows.get(client_id)
        if (
            source is Source.DIRECT_BOOK
            and candidate is not None
            and not function_view.has_distinct_direct_book(candidate)
        ):
            unused += row is not None
            continue
        if candidate is not None:
            provider = function_view.provider_label(candidate, source)
        else:  # a row of a workspace no run visits any more (no default link): its stored type
            provider = (row.calendar_type if row else "") or function_view.NO_LINK
        line = lines.setdefault(provider, ProviderLine(source, provider))
        line.workspaces += 1
        # Only a workspace this source's run visits can be held back by a backoff.
        in_run = visited_by_id.get(client_id)
        line.in_backoff += in_run is not None and function_view.backing_off(in_run, now)
        if row is None:
            line.without_row += 1
            continue
        _count_row(line, row, candidate, now)
        if row.last_error is None:
            successful.append(SuccessfulRow(source, client_id, line.provider, row.range_start, line.ages_minutes[-1]))
    ordered = tuple(lines[name] for name in sorted(lines))
    total = ProviderLine(source, ALL)
    for line in ordered:
        total.add(line)
    return SourceSummary(source, ordered, total, unused), successful


def _count_row(line: ProviderLine, row: CacheRow, candidate: Candidate | None, now: datetime) -> None:
    verdict = reader_verdict(row.stored(), function_view.workspace_now(candidate, row.source), now)
    if verdict.fresh:
        line.fresh += 1
    elif row.stale_at <= now:
        line.stale[stale_bucket(now - row.stale_at)] += 1
    else:
        line.changed += 1
    line.erroring += row.last_error is not None
    line.ages_minutes.append(age_minutes(now, row.range_start))


def _group_failures(rows: Sequence[CacheRow]) -> tuple[FailureGroup, ...]:
    groups: dict[tuple[Source, str], list[str]] = defaultdict(list)
    for row in rows:
        if row.last_error is not None:
            groups[(row.source, normalize_error(row.last_error))].append(row.client_id)
    found = [FailureGroup(source, reason, len(clients), min(clients)) for (source, reason), clients in groups.items()]
    found.sort(key=lambda group: (-group.count, group.source.value, group.reason))
    return tuple(found)
