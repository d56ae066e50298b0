"""The bench's sandbox probe alone (no PostgreSQL, no refresher): medians of repeated probes per concurrency.

    .venv/bin/python -m bench.sandbox_probe -c 32,64 --repeat 3            # as `python -m bench` probes
    .venv/bin/python -m bench.sandbox_probe -c 32,64 --repeat 3 --warm     # every body already cached

Each probe gets a fresh sandbox process, as the bench's does (its first requests render their bodies);
with `--warm` one sandbox per concurrency first answers every probe URL once, so the probes measure
only the per-request cost. Besides `bench.probes.ProbeResult`, it prints the sandbox's CPU per request
(user + system, from the kernel) and the probe client's own (this process: requests' threads).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import requests

from bench.fakes import FakeConfig, FakeProviders

# The probe's own URLs (a private helper of bench.probes, shared rather than copied).
from bench.probes import _availability_url as availability_url
from bench.probes import probe_sandbox
from bench.workload import workspaces


@dataclass(frozen=True)
class ProbeFigures:
    requests_per_s: float
    capacity_ratio: float
    overhead_p50_ms: float
    overhead_p95_ms: float
    sandbox_cpu_ms_per_request: float
    client_cpu_ms_per_request: float


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def probe_once(fakes: FakeProviders, n: int, concurrency: int, latency_ms: float, seconds: float) -> ProbeFigures:
    client_before = _cpu_s()
    result = probe_sandbox(
        fakes.base_url,
        workspaces(n),
        concurrency=concurrency,
        latency_ms=latency_ms,
        seconds=seconds,
        cpu_reader=lambda: fakes.stats().cpu_s,
    )
    client_s = _cpu_s() - client_before
    done = max(result.requests, 1)
    return ProbeFigures(
        result.requests_per_s,
        result.capacity_ratio,
        result.overhead_p50_ms,
        result.overhead_p95_ms,
        result.sandbox_cpu_share * result.seconds / done * 1000,
        client_s / done * 1000,
    )


def warm(fakes: FakeProviders, n: int) -> None:
    """Ask for every probe URL once, so the sandbox's payload cache holds every body the probe asks for."""
    now = datetime.now(UTC)
    urls = [availability_url(fakes.base_url, workspace, now) for workspace in workspaces(n)]
    with requests.Session() as session, ThreadPoolExecutor(64) as pool:
        for response in pool.map(lambda url: session.get(url, timeout=30), urls):
            response.raise_for_status()


def _line(label: str, figures: ProbeFigures) -> str:
    return (
        f"{label}: {figures.requests_per_s:.1f} req/s = {figures.capacity_ratio:.3f} of C/L, overhead beyond L "
        f"p50 {figures.overhead_p50_ms:.1f} ms p95 {figures.overhead_p95_ms:.1f} ms, sandbox "
        f"{figures.sandbox_cpu_ms_per_request:.2f} ms CPU/request "
        f"(probe client {figures.client_cpu_ms_per_request:.2f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_probe", description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--workspaces", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("-c", "--concurrency", default="32,64", help="one value or a list (32,64)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each probe")
    parser.add_argument("--warm", action="store_true", help="fill the payload cache before probing")
    args = parser.parse_args(argv)
    if args.workspaces < 1 or args.latency_ms <= 0 or args.repeat < 1 or args.seconds <= 0:
        parser.error("workspaces, latency, repeat and seconds must be positive")
    config = FakeConfig(args.workspaces, args.latency_ms / 1000, 32, datetime.now(UTC).date())
    print(f"N={args.workspaces} L={args.latency_ms:g} ms, load {os.getloadavg()[0]:.2f}", flush=True)
    for concurrency in (int(c) for c in args.concurrency.split(",")):
        runs: list[ProbeFigures] = []
        if args.warm:
            with FakeProviders(config) as fakes:
                warm(fakes, args.workspaces)
                for _ in range(args.repeat):
                    runs.append(probe_once(fakes, args.workspaces, concurrency, args.latency_ms, args.seconds))
                    print(_line(f"  C={concurrency}", runs[-1]), flush=True)
        else:
            for _ in range(args.repeat):
                with FakeProviders(config) as fakes:
                    runs.append(probe_once(fakes, args.workspaces, concurrency, args.latency_ms, args.seconds))
                print(_line(f"  C={concurrency}", runs[-1]), flush=True)
        median = ProbeFigures(
            *(statistics.median(getattr(run, field.name) for run in runs) for field in fields(ProbeFigures))
        )
        print(_line(f"median of {len(runs)}, C={concurrency}", median) + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
