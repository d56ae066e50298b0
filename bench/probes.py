"""Two checks beside the runs: that the fake providers can keep up (a load probe that needs no
refresher), and the function's cold start: `import main`, and every import paid before the first request
can be answered (`python -X importtime`)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.workload import Provider, Workspace

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProbeResult:
    concurrency: int
    latency_ms: float
    seconds: float
    requests: int
    requests_per_s: float
    ideal_per_s: float  # concurrency / latency: what a server with no processing time would give
    capacity_ratio: float
    overhead_p50_ms: float  # answer time beyond the configured latency
    overhead_p95_ms: float
    sandbox_cpu_share: float  # sandbox CPU seconds per wall second during the probe (1.0 = one core)


def _availability_url(base: str, workspace: Workspace, now: datetime) -> str:
    """The request a refresh spends its time on, for this workspace's provider."""
    if workspace.provider is Provider.CALENDLY:
        end = (now + timedelta(days=30)).date()
        return (
            f"{base}/api/booking/event_types/{workspace.key}/calendar/range?timezone=America%2FNew_York"
            f"&diagnostics=false&range_start={now.date()}&range_end={end}"
        )
    if workspace.provider is Provider.HUBSPOT:
        return f"{base}/meetings-public/v3/book/availability-page?slug={workspace.key}&monthOffset=1&timezone=UTC"
    start = int(now.timestamp() * 1000)
    return (
        f"{base}/calendars/{workspace.key}/free-slots?startDate={start}&endDate={start + 30 * 86_400_000}&timezone=UTC"
    )


def probe_sandbox(
    base_url: str,
    specs: list[Workspace],
    *,
    concurrency: int,
    latency_ms: float,
    seconds: float,
    cpu_reader: Callable[[], float],
) -> ProbeResult:
    """`concurrency` threads fetch availability pages round-robin over the workspaces for `seconds`."""
    now = datetime.now(UTC)
    urls = [_availability_url(base_url, workspace, now) for workspace in specs]
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(10**9))
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        with requests.Session() as session:
            mine: list[float] = []
            while time.monotonic() < stop_at:
                url = urls[next(counter) % len(urls)]
                started = time.perf_counter()
                response = session.get(url, timeout=30)
                response.raise_for_status()
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

    cpu_before, started = cpu_reader(), time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu_share = (cpu_reader() - cpu_before) / elapsed
    overheads = sorted(max(0.0, value * 1000 - latency_ms) for value in latencies)
    ideal = concurrency / (latency_ms / 1000) if latency_ms else float("nan")
    rate = len(latencies) / elapsed
    return ProbeResult(
        concurrency,
        latency_ms,
        round(elapsed, 2),
        len(latencies),
        round(rate, 1),
        round(ideal, 1),
        round(rate / ideal, 3) if latency_ms else float("nan"),
        round(statistics.median(overheads), 2) if overheads else 0.0,
        round(overheads[int(0.95 * (len(overheads) - 1))], 2) if overheads else 0.0,
        round(cpu_share, 3),
    )


# What the `functions-framework` command imports before it listens (its CLI, flask, gunicorn), then main
# loaded the way the command loads it, then what the first request imports before it can be answered:
# the logging set-up it starts with and main.load_request_path() (authentication and the run).
FIRST_REQUEST_CODE = (
    "import os, sys, functions_framework, functions_framework._cli, functions_framework._http.gunicorn\n"
    "functions_framework.create_app(target='availability_cron', source='main.py')\n"
    "main = sys.modules['main']\n"
    "main.configure_logging(*main.logging_from_env(os.environ))\n"
    "main.load_request_path()\n"
)
# Logs as everywhere but Google Cloud; on Google Cloud as there (Cloud Logging's structured handler; the
# project is given so no metadata server is asked).
TEXT_LOGS = {"LOG_FORMAT": "text"}
GOOGLE_CLOUD_LOGS = {"LOG_FORMAT": "json", "GOOGLE_CLOUD_PROJECT": "bench-project"}


@dataclass(frozen=True)
class ImportCost:
    """One program's imports in fresh interpreters: medians over the samples."""

    importtime_total_ms: float  # sum of the cumulative times of the top-level imports (-X importtime)
    wall_ms: float  # wall time of the program, interpreter start included
    slowest_imports: list[tuple[str, float]]  # top-level modules by cumulative ms (the median sample)


@dataclass(frozen=True)
class ColdStart:
    importtime_total_ms: float  # `import main`: sum of the cumulative times of the top-level imports
    import_wall_ms: float  # wall time of `python -c "import main"`, interpreter start included
    samples: int
    slowest_imports: list[tuple[str, float]]  # top-level modules by cumulative ms (median sample)
    # Until the first request can be answered (FIRST_REQUEST_CODE): what `import main` leaves to the
    # framework, which imports flask before it loads main, and to the first request.
    first_request: ImportCost
    first_request_google_cloud: ImportCost  # the same with the logging Google Cloud gets


def measure_cold_start(samples: int = 5) -> ColdStart:
    """Median over `samples` fresh interpreters of each measure."""
    import_main = measure_imports("import main", samples)
    return ColdStart(
        import_main.importtime_total_ms,
        import_main.wall_ms,
        samples,
        import_main.slowest_imports,
        measure_imports(FIRST_REQUEST_CODE, samples, TEXT_LOGS),
        measure_imports(FIRST_REQUEST_CODE, samples, GOOGLE_CLOUD_LOGS),
    )


def measure_imports(code: str, samples: int, env: dict[str, str] | None = None) -> ImportCost:
    """`python -X importtime -c code` and the wall time of `python -c code`, each in `samples` fresh
    interpreters in the checkout, with `env` added to this process's environment."""
    environment = {**os.environ, **(env or {})}
    totals: list[float] = []
    tops: list[dict[str, float]] = []
    walls: list[float] = []
    for _ in range(samples):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        top = _top_level_imports(result.stderr)
        tops.append(top)
        totals.append(sum(top.values()))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, check=True)
        walls.append((time.perf_counter() - started) * 1000)
    median_total = statistics.median(totals)
    typical = tops[totals.index(min(totals, key=lambda total: abs(total - median_total)))]
    slowest = sorted(typical.items(), key=lambda item: item[1], reverse=True)[:6]
    return ImportCost(round(median_total, 1), round(statistics.median(walls), 1), slowest)


def _top_level_imports(stderr: str) -> dict[str, float]:
    """Cumulative ms of each top-level import: lines whose module name is not indented."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith("  ") or not cumulative.strip().isdigit():  # nested import, or the header
            continue
        found[name.strip()] = found.get(name.strip(), 0.0) + int(cumulative) / 1000
    return found
