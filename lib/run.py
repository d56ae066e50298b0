"""One run end to end: connect, lock, select, refresh on the pool, write in batches, measure, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from lib.config import Settings
from lib.db import CONNECTION_LOST, STATEMENT_TIMEOUT, UNREACHABLE, Database, connect
from lib.deadline import Deadline
from lib.errors import DatabaseError, LockLostError
from lib.lock import advisory_lock, lock_key
from lib.logs import log_event
from lib.model import Candidate, Metrics
from lib.options import RunOptions
from lib.outcome import Outcome, RefreshOutcome
from lib.plan import plan_refresh
from lib.pool import PoolLimits, run_pool
from lib.providers.http import HttpClient
from lib.refresh import RefreshContext, refresh_workspace, unfinished_refresh
from lib.report import Report, SkipReason, Tally, skipped
from lib.schedule import plan
from lib.store import load_candidates, read_metrics, write_outcomes
from lib.throttle import Cooldown, automatic_provider_cap

log = logging.getLogger(__name__)

# No workspace is started in the last STOP_MARGIN_S of the budget.
STOP_MARGIN_S = 7.5
# HTTP calls end this long before the deadline, leaving time to write and measure.
WRITE_RESERVE_S = 1.0
# Writes are batched: a batch is flushed at this size or after this long.
BATCH_SIZE = 500
BATCH_MAX_AGE_S = 1.0
MAX_WARNINGS_PER_RUN = 20
# With no write for this long, a cheap statement checks that the lock's connection is alive.
HEARTBEAT_INTERVAL_S = 2.0
HEARTBEAT_SQL = "SELECT 1"
LOCK_LOST = "Lock lost"
SESSION_ENDED_KINDS = frozenset({UNREACHABLE, CONNECTION_LOST})
LOCK_LOST_DETAIL = "the database connection holding the run's lock failed mid-run; nothing more was written"
OVERRAN_ERROR = "Refresh did not finish before the run's deadline"
# Every statement of a run ends by the deadline plus this (statement and socket timeouts, lib/db.py),
# so the answer comes by the budget plus about a second even when the database stalls at the end.
STATEMENT_GRACE_S = 0.5

Clock = Callable[[], datetime]
_T = TypeVar("_T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunResult:
    body: dict[str, Any]
    report: Report | None  # None when the run was skipped


def run(
    settings: Settings,
    options: RunOptions,
    *,
    invocation_id: str,
    http: HttpClient,
    clock: Clock = utc_now,
    tick: datetime | None = None,
    started: float | None = None,
) -> RunResult:
    """Refresh the caches; raises DatabaseError when the database fails (the caller answers 500).

    `tick` is the Cloud Scheduler schedule time of this call, when it says; a skipped run echoes it.
    There is no duplicate-tick detection beyond the lock (README, "Duplicate ticks"): a second delivery
    while the run is under way is skipped as locked, and one after it simply refreshes again.
    `started` is when the request arrived (monotonic clock): the budget counts from there.
    """
    if started is None:
        started = time.monotonic()
    deadline = Deadline(started + options.time_budget_ms / 1000)
    assert settings.database is not None
    if settings.database.behind_transaction_pooler:
        log_event(
            log,
            logging.WARNING,
            "transaction_pooler",
            detail="the database URL points at a transaction pooler (pgbouncer=true or port 6543); session "
            "advisory locks are not reliable there: use a direct connection (DIRECT_URL)",
        )
    key = lock_key(settings.lock_key, options.source, options.shard)
    cutoff = Deadline(deadline.at + STATEMENT_GRACE_S)
    with connect(settings.database, timeout_s=settings.db_connect_timeout_s, cutoff=cutoff) as db:
        return _run_locked(db, key, settings, options, _RunContext(invocation_id, http, clock, deadline, started), tick)


def _run_locked(
    db: Database, key: int, settings: Settings, options: RunOptions, run: _RunContext, tick: datetime | None
) -> RunResult:
    with advisory_lock(db, key) as acquired:
        if not acquired:
            return RunResult(skipped(run.invocation_id, run.clock(), SkipReason.LOCKED, tick), None)
        candidates = load_candidates(db, options.source, options.client_id, options.shard)
        report = _locked_run(db, settings, options, candidates, run)
    return RunResult(report.as_dict(), report)


@dataclass(frozen=True)
class _RunContext:
    invocation_id: str
    http: HttpClient
    clock: Clock
    deadline: Deadline
    started: float


def _locked_run(
    db: Database, settings: Settings, options: RunOptions, candidates: Sequence[Candidate], run: _RunContext
) -> Report:
    schedule = plan(candidates, mode=options.mode, limit=options.limit, now=run.clock(), source=options.source)
    options = options.with_concurrency(len(schedule.queue))
    assert options.concurrency is not None
    context = _refresh_context(settings, run)
    # One plan per workspace (its URL, type and provider), read by the throttle, the refresh and the deadline path.
    plans = {candidate.client_id: plan_refresh(candidate, options.source) for candidate in schedule.queue}
    tally = Tally()
    writer = _BatchWriter(db, options)

    def collect(outcome: RefreshOutcome) -> None:
        tally.add(outcome)
        writer.add(outcome)
        if outcome.outcome is Outcome.FAILED and tally.counts[Outcome.FAILED] <= MAX_WARNINGS_PER_RUN:
            log_event(log, logging.WARNING, "workspace_failed", clientId=outcome.client_id, error=outcome.error)

    limits = PoolLimits(
        concurrency=options.concurrency,
        provider_cap=settings.provider_concurrency or automatic_provider_cap(options.concurrency),
        stop_starting=run.deadline.earlier_by(STOP_MARGIN_S),
        deadline=run.deadline,
    )
    pool = run_pool(
        schedule.queue,
        lambda candidate, now: refresh_workspace(plans[candidate.client_id], context, now),
        provider_of=lambda candidate: plans[candidate.client_id].provider,
        limits=limits,
        clock=run.clock,
        on_outcome=collect,
        on_idle=writer.on_idle,
    )
    for candidate in pool.overran:
        collect(unfinished_refresh(plans[candidate.client_id], context, run.clock(), OVERRAN_ERROR))
    writer.flush()
    _log_what_warnings_left_out(tally, pool.cooldowns)
    within_budget = pool.not_started == 0 and not pool.overran and not writer.unwritten and not run.deadline.expired()
    finished_at = run.clock()
    return Report(
        invocation_id=run.invocation_id,
        options=options,
        checked=len(schedule.queue) + len(schedule.backoff) + len(schedule.not_configured),
        tally=tally,
        skipped_backoff=len(schedule.backoff),
        skipped_not_configured=len(schedule.not_configured),
        not_started=pool.not_started,
        cooldowns=pool.cooldowns,
        finished_within_budget=within_budget,
        metrics=_metrics_or_none(db, options, finished_at),
        duration_ms=int((time.monotonic() - run.started) * 1000),
        finished_at=finished_at,
    )


def _metrics_or_none(db: Database, options: RunOptions, now: datetime) -> Metrics | None:
    """The metrics, or None with a warning when the query fails: the refreshes are written by now,
    and a report without metrics is worth more than a 500."""
    try:
        return read_metrics(db, options.source, now, options.shard)
    except DatabaseError as exc:
        log_event(log, logging.WARNING, "metrics_unavailable", error=exc.kind, detail="the report has metrics: null")
        return None


def _refresh_context(settings: Settings, run: _RunContext) -> RefreshContext:
    return RefreshContext(
        http=run.http,
        deadline=run.deadline.earlier_by(WRITE_RESERVE_S),
        lookahead_days=settings.lookahead_days,
        cache_ttl=timedelta(milliseconds=settings.cache_ttl_ms),
        calendly_base_url=settings.calendly_base_url,
        hubspot_base_url=settings.hubspot_base_url,
        ghl_base_url=settings.ghl_base_url,
        allow_private_network=settings.allow_private_network,
    )


def _log_what_warnings_left_out(tally: Tally, cooldowns: Sequence[Cooldown]) -> None:
    """The failures beyond the per-run bound of warnings, counted, and each provider cool-down."""
    unlogged = tally.counts[Outcome.FAILED] - MAX_WARNINGS_PER_RUN
    if unlogged > 0:
        log_event(log, logging.WARNING, "workspace_failures_not_logged", count=unlogged, detail="see the report")
    for cooldown in cooldowns:
        log_event(log, logging.WARNING, "provider_cooldown", **cooldown.as_report())


class _BatchWriter:
    """Collects outcomes and writes them in multi-row statements on the lock's connection.

    The lock lives and dies with that connection, and every write goes through it, so once the
    server ends the session no write can land. A failed write or heartbeat raises LockLostError,
    which ends the run at once (the pool stops starting work and the caller answers 500).
    """

    def __init__(self, db: Database, options: RunOptions) -> None:
        self._db = db
        self._source = options.source
        self._pending: list[RefreshOutcome] = []
        self._oldest = 0.0
        self._last_contact = time.monotonic()
        self.unwritten = 0  # outcomes whose rows a timed-out write left unwritten

    def add(self, outcome: RefreshOutcome) -> None:
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append(outcome)
        if len(self._pending) >= BATCH_SIZE:
            self.flush()

    def on_idle(self) -> None:
        """Flush a batch that waited long enough; otherwise check now and then that the lock is held."""
        now = time.monotonic()
        if self._pending and now - self._oldest >= BATCH_MAX_AGE_S:
            self.flush()
        elif now - self._last_contact >= HEARTBEAT_INTERVAL_S:
            try:
                self._guarded(lambda: self._db.run(HEARTBEAT_SQL))
            except DatabaseError as exc:
                if exc.kind != STATEMENT_TIMEOUT:
                    raise
                # The run's time is up (or the server is too slow to answer SELECT 1 in it): the
                # writes that follow, bounded the same way, say what they can do.

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            written = self._guarded(lambda: write_outcomes(self._db, self._source, batch))
        except DatabaseError as exc:
            if exc.kind != STATEMENT_TIMEOUT:
                raise
            # The run's time is up (lib/db.py bounds every statement): the next tick writes these rows.
            self.unwritten += len(batch)
            log_event(log, logging.WARNING, "rows_not_written", reason=exc.kind, count=len(batch))
            return
        missing = sorted({outcome.client_id for outcome in batch} - written)
        if missing:
            log_event(
                log,
                logging.WARNING,
                "rows_skipped",
                reason="workspace deleted during the run (or the row was refused by a constraint)",
                count=len(missing),
                clientIds=missing[:MAX_WARNINGS_PER_RUN],
            )

    def _guarded(self, statement: Callable[[], _T]) -> _T:
        try:
            result = statement()
        except DatabaseError as exc:
            if exc.kind not in SESSION_ENDED_KINDS:
                raise  # the statement failed but the session, and so the lock, is intact
            raise LockLostError(LOCK_LOST, f"{LOCK_LOST_DETAIL} ({exc.kind})") from exc
        self._last_contact = time.monotonic()
        return result
