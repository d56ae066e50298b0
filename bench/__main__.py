"""`python -m bench`: measure how far one instance of the refresh goes (issue 5's scenarios by default).

Starts an embedded PostgreSQL and the provider sandbox (in its own process, with a set latency),
seeds N workspaces, and runs the real `lib.run.run` in fresh child processes; prints a table and
writes JSON plus a PNG of throughput against concurrency. See bench/README.md for every column.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.child import one_cpu
from bench.database import BenchServer
from bench.latency import LatencyModel
from bench.probes import measure_cold_start, probe_sandbox
from bench.profiling import top_entries
from bench.results import ScenarioResult, table, write_json
from bench.scenario import GroupResult, GroupSpec, run_group, start_fakes
from bench.workload import MAX_SLOTS_PER_DAY, workspaces

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"
# Issue 5's targets: (workspaces, latency ms, concurrencies).
DEFAULT_SCENARIOS = ((2_000, 200.0, (32,)), (5_000, 200.0, (32,)), (10_000, 200.0, (64,)))
QUICK_SCENARIO = (300, 50.0, (8, 32))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--workspaces", type=int, help="workspaces to seed (default: issue 5's set)")
    parser.add_argument("--latency-ms", type=float, help="provider latency per request (default 200; quick 50)")
    parser.add_argument("-c", "--concurrency", type=_int_list, help="one or more, e.g. 8,16,32,64 (a sweep)")
    parser.add_argument("--slots-per-day", type=int, default=32, help="15-minute starts a weekday (default 32: 9-17)")
    parser.add_argument("--repeat", type=int, help="repetitions, the median is reported (default 3; quick 1)")
    parser.add_argument("--budget-ms", type=int, default=55_000, help="the run's time budget (default 55000)")
    parser.add_argument("--quick", action="store_true", help="CI-sized: N=300, L=50 ms, C=8,32, one repetition")
    parser.add_argument(
        "--http",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run once through functions-framework (default on)",
    )
    parser.add_argument(
        "--checkpoint",
        action="store_true",
        help="CHECKPOINT before each run, so WAL includes full-page images (worst case)",
    )
    parser.add_argument(
        "--checkpoint-runs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per repetition, the changed and unchanged runs again right after a CHECKPOINT (WAL only; default on)",
    )
    parser.add_argument(
        "--realistic-latency",
        action="store_true",
        help="draw each request's latency: lognormal (median = --latency-ms, p99 1.5 s) plus 1%% at 5 s",
    )
    parser.add_argument(
        "--one-core", action="store_true", help="pin the refreshing process to one CPU (the deployed 1 vCPU)"
    )
    parser.add_argument("--profile", action="store_true", help="profile one extra run with cProfile")
    parser.add_argument("--probe-seconds", type=float, help="sandbox capacity probe length (default 5; quick 2; 0 off)")
    parser.add_argument("--cold-start-samples", type=int, help="fresh interpreters for the cold start (default 5)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON path; the PNG goes beside it")
    args = parser.parse_args(argv)
    if not 1 <= args.slots_per_day <= MAX_SLOTS_PER_DAY:
        parser.error(f"--slots-per-day must be within 1..{MAX_SLOTS_PER_DAY}")
    return args


def _int_list(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.replace(" ", ",").split(",") if part)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency must be positive integers, e.g. 8,32")
    return values


def build_groups(args: argparse.Namespace, today: Any) -> list[GroupSpec]:
    quick = args.quick
    base: tuple[tuple[int, float, tuple[int, ...]], ...]
    if args.workspaces is None and args.concurrency is None and args.latency_ms is None:
        base = (QUICK_SCENARIO,) if quick else DEFAULT_SCENARIOS
    else:
        default_n, default_l, default_c = QUICK_SCENARIO if quick else (2_000, 200.0, (32,))
        base = ((args.workspaces or default_n, args.latency_ms or default_l, args.concurrency or default_c),)
    repeat = args.repeat or (1 if quick else 3)
    profile_path = args.output.with_suffix(".prof") if args.profile else None
    cpus = one_cpu() if args.one_core else None
    groups = [
        GroupSpec(
            n,
            latency,
            tuple(cs),
            repeat,
            args.budget_ms,
            args.slots_per_day,
            args.checkpoint,
            http=False,
            profile_path=None,
            today=today,
            latency_model=LatencyModel(median_s=latency / 1000) if args.realistic_latency else None,
            cpus=cpus,
            checkpoint_runs=args.checkpoint_runs,
        )
        for n, latency, cs in base
    ]
    # HTTP once (on the first, smallest group); the profile on the last (largest) one.
    groups[0] = replace(groups[0], http=args.http)
    groups[-1] = replace(groups[-1], profile_path=profile_path)
    return groups


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.command = "python -m bench " + shlex.join(argv)
    args.load_at_start = os.getloadavg()  # other work on the machine makes every figure noisier
    args.output.parent.mkdir(parents=True, exist_ok=True)  # the profile is written there before the JSON
    started = datetime.now(UTC)
    groups = build_groups(args, started.date())
    say = _printer()
    say(f"{len(groups)} group(s); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    cold = measure_cold_start(args.cold_start_samples or (3 if args.quick else 5))
    say(
        f"cold start: {cold.importtime_total_ms:.0f} ms of imports (-X importtime), "
        f"{cold.import_wall_ms:.0f} ms wall for `python -c 'import main'`; until the first request can be "
        f"answered (framework + main + the first request's imports) {cold.first_request.importtime_total_ms:.0f} ms "
        f"of imports, {cold.first_request.wall_ms:.0f} ms wall, with Google Cloud's logging "
        f"{cold.first_request_google_cloud.importtime_total_ms:.0f} ms, "
        f"{cold.first_request_google_cloud.wall_ms:.0f} ms wall (medians of {cold.samples})"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="availability-cron-bench-"))
    results: list[GroupResult] = []
    probe = None
    try:
        with BenchServer(data_dir / "postgres") as server:
            for index, group in enumerate(groups):
                say(f"== N={group.workspaces} L={group.latency_ms:g} ms C={list(group.concurrencies)}")
                with start_fakes(group) as fakes:
                    probe_seconds = args.probe_seconds if args.probe_seconds is not None else 2 if args.quick else 5
                    # The probe judges the sandbox against C/L: meaningless when every delay is drawn.
                    if index == 0 and probe_seconds and group.latency_model is None:
                        probe = _probe(fakes, group, args, say)
                    results.append(run_group(server, group, fakes, say))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return _finish(args, started, groups, results, probe, cold, say)


def _probe(fakes: Any, group: GroupSpec, args: argparse.Namespace, say: Any) -> Any:
    seconds = args.probe_seconds if args.probe_seconds is not None else (2 if args.quick else 5)
    concurrency = max(max(g.concurrencies) for g in [group])
    probe = probe_sandbox(
        fakes.base_url,
        workspaces(group.workspaces),
        concurrency=concurrency,
        latency_ms=group.latency_ms,
        seconds=seconds,
        cpu_reader=lambda: fakes.stats().cpu_s,
    )
    say(
        f"sandbox probe: {probe.requests_per_s:.0f} req/s at C={concurrency} = {probe.capacity_ratio:.0%} of the "
        f"ideal C/L, overhead p50 {probe.overhead_p50_ms:.1f} ms p95 {probe.overhead_p95_ms:.1f} ms, "
        f"sandbox CPU {probe.sandbox_cpu_share:.2f} core"
    )
    return probe


def _finish(
    args: argparse.Namespace,
    started: datetime,
    groups: list[GroupSpec],
    results: list[GroupResult],
    probe: Any,
    cold: Any,
    say: Any,
) -> int:
    scenarios: list[ScenarioResult] = [s for group in results for s in group.scenarios]
    print()
    print(table(scenarios))
    http_note = None
    for group in results:
        if group.http is not None and group.http_baseline_wall_s:
            http_note = {
                "run": group.http,
                "in_process_median_wall_s": group.http_baseline_wall_s,
                "overhead_s": round(group.http.wall_s - group.http_baseline_wall_s, 3),
            }
            print(
                f"\nHTTP (functions-framework, N={group.scenarios[0].workspaces}): {group.http.wall_s:.2f} s, "
                f"in process {group.http_baseline_wall_s:.2f} s, overhead {http_note['overhead_s']:+.2f} s; "
                f"worker peak RSS {group.http.peak_rss_mb:.0f} MB"
            )
    print(
        f"cold start: {cold.importtime_total_ms:.0f} ms imports, {cold.import_wall_ms:.0f} ms wall (import main); "
        f"first request {cold.first_request.importtime_total_ms:.0f} ms imports, {cold.first_request.wall_ms:.0f} ms "
        f"wall; on Google Cloud {cold.first_request_google_cloud.importtime_total_ms:.0f} ms imports, "
        f"{cold.first_request_google_cloud.wall_ms:.0f} ms wall"
    )
    document: dict[str, Any] = {
        "command": args.command,
        "code": _code_version(),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": args.load_at_start,
            "load_at_end": os.getloadavg(),
        },
        "groups": [asdict(g) | {"profile_path": str(g.profile_path) if g.profile_path else None} for g in groups],
        "scenarios": scenarios,
        "warm_up": [group.warm_up for group in results],
        "http": http_note,
        "sandbox_probe": probe,
        "cold_start": cold,
    }
    if args.profile and groups[-1].profile_path is not None:
        document["profile"] = top_entries(groups[-1].profile_path)
        _print_profile(document["profile"])
    if scenarios:
        from bench.plot import plot_throughput

        document["plot"] = str(plot_throughput(scenarios, args.output.with_suffix(".png")))
    write_json(args.output, document)
    print(f"\nwrote {args.output}" + (f" and {document['plot']}" if "plot" in document else ""))
    return 0


def _code_version() -> str:
    """The commit measured, and whether lib/ or main.py had uncommitted changes (they are measured too)."""
    import subprocess

    def git(*words: str) -> str:
        result = subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True, check=False)
        return result.stdout.strip()

    dirty = git("status", "--porcelain", "--", "lib", "main.py")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes in lib/" if dirty else "")


def _print_profile(profile: dict[str, Any]) -> None:
    print("\nprofile, own time by group (idle waits left out):")
    for group in profile["groups"]:
        print(f"  {group['own_s']:8.2f} s {group['share']:6.1%}  {group['group']}")
    for order in ("cumulative", "tottime"):
        print(f"\nprofile, top by {order}:")
        for entry in profile[order]:
            print(f"  {entry['cumulative_s']:8.2f} {entry['tottime_s']:8.2f} {entry['calls']:>9}  {entry['function']}")


def _printer() -> Any:
    origin = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - origin:7.1f}s] {message}", flush=True)

    return say


if __name__ == "__main__":
    sys.exit(main())
