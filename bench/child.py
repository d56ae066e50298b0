"""One refresh, in a freshly spawned process so its CPU time and peak RSS belong to that run alone."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

# Report fields the benchmark keeps (the rest of the report is about cache health, not speed).
REPORT_FIELDS = ("refreshed", "failed", "emptySlots", "notStarted", "finishedWithinBudget", "durationMs", "checked")


@dataclass(frozen=True)
class RunSpec:
    database_url: str
    sandbox_url: str
    workspaces: int
    concurrency: int
    budget_ms: int
    profile_path: str | None = None  # write cProfile stats of the run here
    cpus: tuple[int, ...] | None = None  # pin the refreshing process to these CPUs (one: the deployed 1 vCPU)


@dataclass(frozen=True)
class RunSample:
    wall_s: float  # run() alone, not the interpreter start or the imports
    cpu_s: float  # the process's user + system CPU time (all threads) during run(), as the kernel counts it
    peak_rss_mb: float  # ru_maxrss of the process at the end: imports included, as on a real instance
    report: dict[str, Any]
    cpus: tuple[int, ...] = ()  # the CPUs the process was allowed to run on


def measure_in_child(spec: RunSpec) -> RunSample:
    """Spawn a fresh interpreter, run the refresh there, bring back its measurements."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(run_once, spec).result()


def run_once(spec: RunSpec) -> RunSample:
    """The child's side: the real `lib.run.run` with mode=all over every seeded workspace."""
    if spec.cpus:
        pin_process(spec.cpus)
    import logging
    import os
    import resource
    import time
    import uuid

    from lib.config import Settings
    from lib.model import Mode
    from lib.options import RunOptions
    from lib.providers.http import HttpClient
    from lib.run import run

    logging.basicConfig(level=logging.ERROR)  # failures are counted in the report, not printed
    settings = Settings.from_env(
        {
            "DATABASE_URL": spec.database_url,
            "CALENDLY_BASE_URL": spec.sandbox_url,
            "HUBSPOT_BASE_URL": spec.sandbox_url,
            "GHL_BASE_URL": spec.sandbox_url,
            "ALLOW_PRIVATE_NETWORK": "true",
            "LOG_LEVEL": "ERROR",
        }
    )
    options = RunOptions(
        mode=Mode.ALL, limit=spec.workspaces, time_budget_ms=spec.budget_ms, concurrency=spec.concurrency
    )
    http = HttpClient()
    profiles = _ThreadProfiles() if spec.profile_path else None
    cpu_before, wall_before = _cpu_s(resource), time.perf_counter()
    if profiles is not None:
        profiles.start()
    result = run(settings, options, invocation_id=str(uuid.uuid4()), http=http)
    if profiles is not None and spec.profile_path:
        profiles.stop_and_dump(spec.profile_path)
    wall, cpu = time.perf_counter() - wall_before, _cpu_s(resource) - cpu_before
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    report = {name: result.body.get(name) for name in REPORT_FIELDS}
    return RunSample(wall, cpu, peak_kib / 1024, report, tuple(sorted(os.sched_getaffinity(0))))


def _cpu_s(resource: Any) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def pin_process(cpus: tuple[int, ...]) -> None:
    """Every thread of this process (and so every thread it starts later) on `cpus` only."""
    import os

    for task in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(task), cpus)


def one_cpu() -> tuple[int, ...]:
    """The CPU a one-core run is pinned to: the last this process may use."""
    import os

    return (max(os.sched_getaffinity(0)),)


class _ThreadProfiles:
    """cProfile of every thread (the refresh work runs on the pool's threads, which cProfile alone misses),
    timed by each thread's own CPU clock so that threads waiting on the network cost nothing."""

    def __init__(self) -> None:
        import cProfile
        import threading
        import time

        self._new: Callable[[], cProfile.Profile] = lambda: cProfile.Profile(time.thread_time)
        self._threading = threading
        self._lock = threading.Lock()
        self._profiles = [self._new()]

    def start(self) -> None:
        self._threading.setprofile(self._enable_in_thread)
        self._profiles[0].enable()

    def _enable_in_thread(self, *_: object) -> None:
        profile = self._new()
        with self._lock:
            self._profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread's life

    def stop_and_dump(self, path: str) -> None:
        import pstats

        self._threading.setprofile(None)
        self._profiles[0].disable()
        with self._lock:
            profiles = list(self._profiles)
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)
