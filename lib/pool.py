"""The worker pool: keeps `concurrency` refreshes in flight, starts none after the stop margin, and
hands each outcome back to the calling (lock-holding) thread as it completes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime

from lib.deadline import Deadline
from lib.model import Candidate
from lib.outcome import RefreshOutcome

log = logging.getLogger(__name__)

# How often the main thread wakes up to flush writes even when no refresh completes.
POLL_INTERVAL_S = 0.5


@dataclass(frozen=True)
class PoolResult:
    not_started: int
    # Refreshes still running at the deadline (their threads end on their own HTTP timeouts).
    overran: tuple[Candidate, ...]


def run_pool(
    queue: Iterable[Candidate],
    refresh: Callable[[Candidate, datetime], RefreshOutcome],
    *,
    concurrency: int,
    stop_starting: Deadline,
    deadline: Deadline,
    clock: Callable[[], datetime],
    on_outcome: Callable[[RefreshOutcome], None],
    on_idle: Callable[[], None],
) -> PoolResult:
    """Refresh the queue; `on_outcome` and `on_idle` run on this thread (the one allowed to write)."""
    items: Iterator[Candidate] = iter(queue)
    running: dict[Future[RefreshOutcome], Candidate] = {}
    not_started = 0
    executor = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="refresh")
    try:
        exhausted = False
        while True:
            while not exhausted and len(running) < concurrency and not stop_starting.expired():
                candidate = next(items, None)
                if candidate is None:
                    exhausted = True
                    break
                running[executor.submit(refresh, candidate, clock())] = candidate
            if not running:
                break
            if deadline.expired():
                break
            done, _ = wait(running, timeout=min(POLL_INTERVAL_S, deadline.remaining()), return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                on_outcome(future.result())
            on_idle()
        if not exhausted:
            not_started = sum(1 for _ in items)
    finally:
        # Never wait for a straggler: its HTTP timeout is bounded by the deadline, so it ends soon.
        executor.shutdown(wait=False, cancel_futures=True)
    return PoolResult(not_started, tuple(running.values()))
