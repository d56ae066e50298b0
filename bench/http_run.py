"""The same refresh once through HTTP: the real `functions-framework` command (gunicorn) and a POST with
the bearer secret, as Cloud Scheduler sends it, to show what the HTTP layer adds."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.child import REPORT_FIELDS, RunSample
from devtools.local_run import SCHEDULER_HEADERS, start_function, wait_until_serving
from devtools.pgserver import free_port

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class HttpSpec:
    database_url: str
    sandbox_url: str
    workspaces: int
    concurrency: int
    budget_ms: int


def measure_over_http(spec: HttpSpec) -> RunSample:
    """Start the function, POST once, and read the serving process tree's CPU time and peak RSS."""
    secret = secrets.token_urlsafe(24)  # never printed
    port = free_port()
    process = start_function(port, spec.database_url, secret, spec.sandbox_url, output=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}/"
        wait_until_serving(endpoint)
        body = {"mode": "all", "limit": 500, "concurrency": spec.concurrency, "timeBudgetMs": spec.budget_ms}
        cpu_before = _tree_cpu_s(process.pid)
        started = time.perf_counter()
        response = requests.post(
            endpoint,
            headers={**SCHEDULER_HEADERS, "Authorization": f"Bearer {secret}"},
            data=json.dumps(body),
            timeout=spec.budget_ms / 1000 + 120,
        )
        wall = time.perf_counter() - started
        cpu = _tree_cpu_s(process.pid) - cpu_before
        peak_mb = max(_peak_rss_kib(pid) for pid in _tree(process.pid)) / 1024
        report: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"the function answered {response.status_code}: {report.get('error')}")
        return RunSample(wall, cpu, peak_mb, {name: report.get(name) for name in REPORT_FIELDS})
    finally:
        process.terminate()
        process.wait(timeout=15)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (gunicorn's arbiter and its worker)."""
    found = [pid]
    for tid_dir in Path(f"/proc/{pid}/task").glob("*"):
        children = (tid_dir / "children").read_text().split() if (tid_dir / "children").exists() else []
        for child in children:
            found.extend(_tree(int(child)))
    return found


def _tree_cpu_s(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        # Fields after the command name: utime and stime are the 14th and 15th of the whole line.
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
