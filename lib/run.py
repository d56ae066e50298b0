"""One run end to end: connect, lock, select, refresh on the pool, write in batches, measure, report."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lib.config import Settings
from lib.db import Database, connect
from lib.deadline import Deadline
from lib.lock import advisory_lock, lock_key
from lib.logs import log_event
from lib.options import RunOptions
from lib.outcome import Outcome, RefreshOutcome
from lib.pool import run_pool
from lib.providers.http import HttpClient
from lib.refresh import RefreshContext, refresh_workspace, unfinished_refresh
from lib.report import Report, Tally, skipped_locked
from lib.schedule import plan
from lib.store import load_candidates, read_metrics, write_outcomes

log = logging.getLogger(__name__)

# No workspace is started in the last STOP_MARGIN_S of the budget.
STOP_MARGIN_S = 7.5
# HTTP calls end this long before the deadline, leaving time to write and measure.
WRITE_RESERVE_S = 1.0
# Writes are batched: a batch is flushed at this size or after this long.
BATCH_SIZE = 500
BATCH_MAX_AGE_S = 1.0
MAX_WARNINGS_PER_RUN = 20
OVERRAN_ERROR = "Refresh did not finish before the run's deadline"

Clock = Callable[[], datetime]


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
) -> RunResult:
    """Refresh the caches; raises DatabaseError when the database fails (the caller answers 500)."""
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
    with (
        connect(settings.database, timeout_s=settings.db_connect_timeout_s) as db,
        advisory_lock(db, lock_key(settings.lock_key, options.source)) as acquired,
    ):
        if not acquired:
            return RunResult(skipped_locked(invocation_id, clock()), None)
        report = _locked_run(db, settings, options, invocation_id, http, clock, deadline, started)
    return RunResult(report.as_dict(), report)


def _locked_run(
    db: Database,
    settings: Settings,
    options: RunOptions,
    invocation_id: str,
    http: HttpClient,
    clock: Clock,
    deadline: Deadline,
    started: float,
) -> Report:
    candidates = load_candidates(db, options.source, options.client_id)
    schedule = plan(candidates, mode=options.mode, limit=options.limit, now=clock(), source=options.source)
    options = options.with_concurrency(len(schedule.queue))
    assert options.concurrency is not None
    context = RefreshContext(
        http=http,
        deadline=deadline.earlier_by(WRITE_RESERVE_S),
        source=options.source,
        lookahead_days=settings.lookahead_days,
        cache_ttl=timedelta(milliseconds=settings.cache_ttl_ms),
        calendly_base_url=settings.calendly_base_url,
        hubspot_base_url=settings.hubspot_base_url,
        ghl_base_url=settings.ghl_base_url,
        allow_private_network=settings.allow_private_network,
    )
    tally = Tally()
    writer = _BatchWriter(db, options)

    def collect(outcome: RefreshOutcome) -> None:
        tally.add(outcome)
        writer.add(outcome)
        if outcome.outcome is Outcome.FAILED and tally.counts[Outcome.FAILED] <= MAX_WARNINGS_PER_RUN:
            log_event(log, logging.WARNING, "workspace_failed", clientId=outcome.client_id, error=outcome.error)

    pool = run_pool(
        schedule.queue,
        lambda candidate, now: refresh_workspace(candidate, context, now),
        concurrency=options.concurrency,
        stop_starting=deadline.earlier_by(STOP_MARGIN_S),
        deadline=deadline,
        clock=clock,
        on_outcome=collect,
        on_idle=writer.flush_if_due,
    )
    for candidate in pool.overran:
        collect(unfinished_refresh(candidate, context, clock(), OVERRAN_ERROR))
    writer.flush()
    within_budget = pool.not_started == 0 and not pool.overran and not deadline.expired()
    finished_at = clock()
    return Report(
        invocation_id=invocation_id,
        options=options,
        checked=len(schedule.queue) + len(schedule.backoff) + len(schedule.not_configured),
        tally=tally,
        skipped_backoff=len(schedule.backoff),
        skipped_not_configured=len(schedule.not_configured),
        not_started=pool.not_started,
        finished_within_budget=within_budget,
        metrics=read_metrics(db, options.source, finished_at),
        duration_ms=int((time.monotonic() - started) * 1000),
        finished_at=finished_at,
    )


class _BatchWriter:
    """Collects outcomes and writes them in multi-row statements on the lock's connection."""

    def __init__(self, db: Database, options: RunOptions) -> None:
        self._db = db
        self._source = options.source
        self._pending: list[RefreshOutcome] = []
        self._oldest = 0.0

    def add(self, outcome: RefreshOutcome) -> None:
        if not self._pending:
            self._oldest = time.monotonic()
        self._pending.append(outcome)
        if len(self._pending) >= BATCH_SIZE:
            self.flush()

    def flush_if_due(self) -> None:
        if self._pending and time.monotonic() - self._oldest >= BATCH_MAX_AGE_S:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        written = write_outcomes(self._db, self._source, batch)
        missing = len({outcome.client_id for outcome in batch} - written)
        if missing:
            log_event(log, logging.INFO, "rows_skipped", reason="workspace deleted during the run", count=missing)
