"""The worker pool: keeps `concurrency` refreshes in flight (each provider within its cap), starts
none after the stop margin, and hands each outcome back to the calling (lock-holding) thread.

Each worker takes its next workspace itself as soon as it is free, so the refreshes in flight do
not wait for the calling thread, which may be busy writing a batch to the database (at a tick of
thousands of workspaces those writes took a tenth of the run's wall time away from the workers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from queue import Empty, SimpleQueue

from lib.deadline import Deadline
from lib.model import Candidate
from lib.outcome import RefreshOutcome
from lib.throttle import Backlog, Cooldown, ProviderGate

# How often the main thread wakes up to flush writes even when no refresh completes.
POLL_INTERVAL_S = 0.5
# How often a worker with nothing it may start (every waiting provider at its cap) looks again.
RECHECK_S = 0.25


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


@dataclass(frozen=True)
class _Finished:
    outcome: RefreshOutcome | None
    error: BaseException | None = None


class _Dispatch:
    """The backlog and the provider gate, shared by the workers under one lock; what is in flight;
    and the closing of the pool, after which no outcome is handed over (it is an overrun)."""

    def __init__(self, backlog: Backlog, gate: ProviderGate, limits: PoolLimits) -> None:
        self.backlog, self.gate, self._limits = backlog, gate, limits
        self.in_flight: dict[int, tuple[str, Candidate]] = {}
        self.workers_left = limits.concurrency
        self.finished: SimpleQueue[_Finished] = SimpleQueue()
        self._closed = False
        self._changed = threading.Condition()

    def take(self) -> tuple[str, Candidate] | None:
        """The next workspace for the calling worker; None when it has nothing more to do."""
        with self._changed:
            while not self._closed and not self._limits.stop_starting.expired():
                taken = self.backlog.take(self.gate.may_start)
                if taken is not None:
                    self.gate.started(taken[0])
                    self.in_flight[threading.get_ident()] = taken
                    return taken
                if not len(self.backlog) or not self.in_flight:
                    break  # nothing left, or nothing that could ever start (every provider left is resting)
                self._changed.wait(min(RECHECK_S, self._limits.stop_starting.remaining()))
            self.workers_left -= 1
            return None

    def hand_over(self, provider: str, finished: _Finished) -> None:
        with self._changed:
            self.in_flight.pop(threading.get_ident(), None)
            if self._closed:
                return  # reported as an overrun by close()
            if finished.outcome is not None:
                self.gate.finished(provider, finished.outcome)
            self.finished.put(finished)
            self._changed.notify_all()

    def worker_failed(self, error: BaseException) -> None:
        """A worker's own machinery failed (not a refresh): the calling thread raises it."""
        with self._changed:
            self.workers_left -= 1
            self.finished.put(_Finished(None, error))

    def idle(self) -> bool:
        with self._changed:
            return self.workers_left == 0

    def not_started(self) -> tuple[int, tuple[Cooldown, ...]]:
        """What never started (waiting, or held back by a cool-down), and the cool-downs."""
        with self._changed:
            return len(self.backlog) + self.gate.held_back, tuple(self.gate.cooldowns)

    def close(self) -> tuple[Candidate, ...]:
        """Stop: no refresh starts or is handed over from now; returns the ones still running."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            return tuple(candidate for _provider, candidate in self.in_flight.values())


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
    dispatch = _Dispatch(backlog, ProviderGate(limits.provider_cap, backlog), limits)
    workers = max(1, limits.concurrency)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh")
    overran: tuple[Candidate, ...] = ()
    try:
        for _ in range(workers):
            executor.submit(_work, dispatch, refresh, clock)
        while not limits.deadline.expired():
            # Read before the queue: a worker queues its last outcome before it leaves.
            everyone_done = dispatch.idle()
            timeout = 0.0 if everyone_done else min(POLL_INTERVAL_S, limits.deadline.remaining())
            _deliver(_finished_within(dispatch.finished, timeout), on_outcome)
            on_idle()
            if everyone_done and dispatch.finished.empty():
                break
    finally:
        # Never wait for a straggler: its HTTP timeout is bounded by the deadline, so it ends soon.
        overran = dispatch.close()
        executor.shutdown(wait=False, cancel_futures=True)
    # Refreshes that finished while this thread was busy writing are outcomes like any other:
    # only the ones still running at the deadline overran it.
    _deliver(_finished_within(dispatch.finished, 0.0), on_outcome)
    not_started, cooldowns = dispatch.not_started()
    return PoolResult(not_started, overran, cooldowns)


def _work(
    dispatch: _Dispatch, refresh: Callable[[Candidate, datetime], RefreshOutcome], clock: Callable[[], datetime]
) -> None:
    """One worker: take a workspace, refresh it, hand the outcome over, until nothing is left."""
    try:
        while (taken := dispatch.take()) is not None:
            provider, candidate = taken
            try:
                finished = _Finished(refresh(candidate, clock()))
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread, which raises it
                finished = _Finished(None, exc)
            dispatch.hand_over(provider, finished)
    except BaseException as exc:  # noqa: BLE001 - the pool machinery failed: the calling thread raises it (else it waits for the deadline)
        dispatch.worker_failed(exc)


def _finished_within(finished: SimpleQueue[_Finished], timeout: float) -> list[_Finished]:
    """The refreshes that ended: waits up to `timeout` for the first, then takes every other one queued."""
    try:
        done = [finished.get(timeout=timeout) if timeout > 0 else finished.get_nowait()]
    except Empty:
        return []
    while True:
        try:
            done.append(finished.get_nowait())
        except Empty:
            return done


def _deliver(done: list[_Finished], on_outcome: Callable[[RefreshOutcome], None]) -> None:
    for finished in done:
        if finished.error is not None:
            raise finished.error
        if finished.outcome is not None:
            on_outcome(finished.outcome)
