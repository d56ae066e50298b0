"""The worker pool: keeps `concurrency` refreshes in flight (each provider within its cap), starts
none after the stop margin, and hands each outcome back to the calling (lock-holding) thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from queue import Empty, SimpleQueue

from lib.deadline import Deadline
from lib.model import Candidate
from lib.outcome import RefreshOutcome
from lib.throttle import Backlog, Cooldown, ProviderGate

log = logging.getLogger(__name__)

# How often the main thread wakes up to flush writes even when no refresh completes.
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class PoolResult:
    not_started: int  # includes the candidates held back by a provider cool-down
    # Refreshes still running at the deadline (their threads end on their own HTTP timeouts).
    overran: tuple[Candidate, ...]
    cooldowns: tuple[Cooldown, ...] = ()


@dataclass(frozen=True)
class PoolLimits:
    """How much runs at once, and until when new refreshes may start."""

    concurrency: int
    provider_cap: int
    stop_starting: Deadline
    deadline: Deadline


def run_pool(
    queue: Iterable[Candidate],
    refresh: Callable[[Candidate, datetime], RefreshOutcome],
    *,
    provider_of: Callable[[Candidate], str],
    limits: PoolLimits,
    clock: Callable[[], datetime],
    on_outcome: Callable[[RefreshOutcome], None],
    on_idle: Callable[[], None],
) -> PoolResult:
    """Refresh the queue; `on_outcome` and `on_idle` run on this thread (the one allowed to write),
    and an exception they raise (the lock's connection died) ends the pool at once."""
    backlog = Backlog(queue, provider_of)
    gate = ProviderGate(limits.provider_cap, backlog)
    running: dict[Future[RefreshOutcome], tuple[str, Candidate]] = {}
    # Each refresh announces its end here, so this thread waits on one queue, not on every future
    # (concurrent.futures.wait installs and removes a waiter on each of them per call).
    finished: SimpleQueue[Future[RefreshOutcome]] = SimpleQueue()
    executor = ThreadPoolExecutor(max_workers=max(1, limits.concurrency), thread_name_prefix="refresh")
    try:
        while True:
            while len(running) < limits.concurrency and not limits.stop_starting.expired():
                taken = backlog.take(gate.may_start)
                if taken is None:
                    break
                provider, candidate = taken
                gate.started(provider)
                future = executor.submit(refresh, candidate, clock())
                running[future] = taken
                future.add_done_callback(finished.put)
            if not running or limits.deadline.expired():
                break
            timeout = min(POLL_INTERVAL_S, limits.deadline.remaining())
            _collect(_finished_within(finished, timeout), running, gate, on_outcome)
            on_idle()
        # Refreshes that finished while this thread was busy writing are outcomes like any other:
        # only the ones still running at the deadline overran it.
        _collect([future for future in running if future.done()], running, gate, on_outcome)
    finally:
        # Never wait for a straggler: its HTTP timeout is bounded by the deadline, so it ends soon.
        executor.shutdown(wait=False, cancel_futures=True)
    overran = tuple(candidate for _provider, candidate in running.values())
    return PoolResult(len(backlog) + gate.held_back, overran, tuple(gate.cooldowns))


def _finished_within(finished: SimpleQueue[Future[RefreshOutcome]], timeout: float) -> list[Future[RefreshOutcome]]:
    """The refreshes that ended: waits up to `timeout` for the first, then takes every other one queued."""
    try:
        done = [finished.get(timeout=max(0.0, timeout))]
    except Empty:
        return []
    while True:
        try:
            done.append(finished.get_nowait())
        except Empty:
            return done


def _collect(
    done: Iterable[Future[RefreshOutcome]],
    running: dict[Future[RefreshOutcome], tuple[str, Candidate]],
    gate: ProviderGate,
    on_outcome: Callable[[RefreshOutcome], None],
) -> None:
    for future in done:
        provider, _candidate = running.pop(future)
        outcome = future.result()
        gate.finished(provider, outcome)
        on_outcome(outcome)
