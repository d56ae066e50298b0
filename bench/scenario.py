"""One group of scenarios sharing N and L: a seeded database, a sandbox process, a warm-up run, then
for each concurrency R repetitions of a run whose slots all changed followed by one where none did."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from bench.child import RunSample, RunSpec, measure_in_child
from bench.database import BenchServer, Counters, seed
from bench.fakes import FakeConfig, FakeProviders
from bench.http_run import HttpSpec, measure_over_http
from bench.latency import LatencyModel, drawn_ideal_s
from bench.results import RunFigures, ScenarioResult, summarize
from bench.workload import workspaces

WARM_UP_CONCURRENCY = 128  # the warm-up only fills the caches (Calendly uuids); it is not measured
WARM_UP_BUDGET_MS = 600_000  # long enough to reach every workspace, so measured runs start warm


@dataclass(frozen=True)
class GroupSpec:
    workspaces: int
    latency_ms: float
    concurrencies: tuple[int, ...]
    repeat: int
    budget_ms: int
    slots_per_day: int
    checkpoint: bool  # CHECKPOINT before each run: every first page change is then a full-page image
    http: bool
    profile_path: Path | None
    today: date
    latency_model: LatencyModel | None = None  # each request's delay drawn from it (latency_ms is its median)
    cpus: tuple[int, ...] | None = None  # pin the refreshing process to these CPUs
    checkpoint_runs: bool = True  # per repetition, the changed and unchanged runs again right after a CHECKPOINT


@dataclass(frozen=True)
class GroupResult:
    scenarios: list[ScenarioResult]
    warm_up: RunFigures
    http: RunFigures | None
    http_baseline_wall_s: float | None  # the in-process median of the same scenario, for the overhead
    seed_s: float


Say = Callable[[str], None]


def run_group(server: BenchServer, spec: GroupSpec, fakes: FakeProviders, say: Say) -> GroupResult:
    """Seed, warm up, measure; `fakes` must already serve this group's workspaces."""
    name = f"bench_{spec.workspaces}"
    url = server.fresh_database(name)
    seed_s = seed(url, workspaces(spec.workspaces))
    say(f"seeded {spec.workspaces} workspaces in {seed_s:.1f} s")
    measure = _Measurer(server, fakes, url, name, spec)
    warm_up = measure.run(
        "warm-up", max(WARM_UP_CONCURRENCY, *spec.concurrencies), variant=None, budget_ms=WARM_UP_BUDGET_MS
    )
    say(f"warm-up: {warm_up.refreshed} refreshed, {warm_up.failed} failed in {warm_up.wall_s:.1f} s")
    steady = {concurrency: _steady_runs(measure, concurrency, say) for concurrency in spec.concurrencies}
    # WAL with the full-page images production pays after each checkpoint, after every steady-state run:
    # a run soon after a checkpoint pays an image for each page it is the first to touch since.
    for concurrency, (runs, _) in steady.items():
        for _ in range(spec.repeat if spec.checkpoint_runs else 0):
            runs.append(measure.run("changed-ckpt", concurrency, variant=measure.next_variant(), checkpoint=True))
            runs.append(measure.run("unchanged-ckpt", concurrency, variant=None, checkpoint=True))
    scenarios = [_scenario(measure, concurrency, *steady[concurrency]) for concurrency in spec.concurrencies]
    http = baseline = None
    if spec.http:
        concurrency = spec.concurrencies[0]
        http = measure.run("http", concurrency, variant=measure.next_variant())
        baseline = scenarios[0].wall_s.median
        say(f"http: {http.wall_s:.2f} s against {baseline:.2f} s in process")
    if spec.profile_path is not None:
        measure.run("profiled", spec.concurrencies[-1], variant=measure.next_variant(), profile=spec.profile_path)
        say(f"profile written to {spec.profile_path}")
    return GroupResult(scenarios, warm_up, http, baseline, seed_s)


def _steady_runs(measure: _Measurer, concurrency: int, say: Say) -> tuple[list[RunFigures], list[dict[str, Any]]]:
    """R repetitions of a run whose slots all changed and one where none did; and their statements."""
    runs: list[RunFigures] = []
    for repetition in range(1, measure.spec.repeat + 1):
        changed = measure.run("changed", concurrency, variant=measure.next_variant())
        unchanged = measure.run("unchanged", concurrency, variant=None)
        runs += [changed, unchanged]
        say(
            f"C={concurrency} #{repetition}: {changed.wall_s:.2f} s changed, {unchanged.wall_s:.2f} s unchanged, "
            f"{changed.refreshed}+{unchanged.refreshed} refreshed, {changed.failed}+{unchanged.failed} failed"
        )
    return runs, measure.server.statement_breakdown(measure.database)


def _scenario(
    measure: _Measurer, concurrency: int, runs: list[RunFigures], statements: list[dict[str, Any]]
) -> ScenarioResult:
    spec = measure.spec
    _, slots = measure.server.cache_summary(measure.url)
    fields = summarize(
        runs,
        workspaces=spec.workspaces,
        latency_ms=spec.latency_ms,
        concurrency=concurrency,
        budget_ms=spec.budget_ms,
        slots=slots,
        drawn=spec.latency_model is not None,
    )
    return ScenarioResult(
        workspaces=spec.workspaces,
        latency_ms=spec.latency_ms,
        concurrency=concurrency,
        budget_ms=spec.budget_ms,
        repeat=spec.repeat,
        latency_model=spec.latency_model.label if spec.latency_model else "fixed",
        cpus=len(spec.cpus) if spec.cpus else os.cpu_count() or 1,
        runs=runs,
        statements=statements,
        **fields,
    )


class _Measurer:
    """Runs one refresh with the server and sandbox counters read around it."""

    def __init__(self, server: BenchServer, fakes: FakeProviders, url: str, database: str, spec: GroupSpec) -> None:
        self.server, self.fakes, self.url, self.database, self.spec = server, fakes, url, database, spec
        self._variants = itertools.count(1)

    def next_variant(self) -> int:
        return next(self._variants)

    def run(
        self,
        kind: str,
        concurrency: int,
        *,
        variant: int | None,
        profile: Path | None = None,
        budget_ms: int = 0,
        checkpoint: bool = False,
    ) -> RunFigures:
        if variant is not None:
            self.fakes.set_variant(variant)
        self.server.prepare_run(self.url, checkpoint=checkpoint or self.spec.checkpoint)
        self.server.reset_statements()
        self.fakes.take_draws()  # forget the draws of earlier runs
        before, fakes_before = self.server.counters(self.database), self.fakes.stats()
        sample = self._sample(kind, concurrency, profile, budget_ms or self.spec.budget_ms)
        after, fakes_after = self.server.counters(self.database), self.fakes.stats()
        done = int(sample.report.get("refreshed") or 0) + int(sample.report.get("failed") or 0)
        if self.spec.latency_model is not None:
            ideal_s = drawn_ideal_s(self.fakes.take_draws(), concurrency)
        else:
            ideal_s = done * self.spec.latency_ms / 1000 / concurrency
        return _figures(
            kind,
            sample,
            after.minus(before),
            fakes_after.requests - fakes_before.requests,
            fakes_after.cpu_s - fakes_before.cpu_s,
            ideal_s,
        )

    def _sample(self, kind: str, concurrency: int, profile: Path | None, budget_ms: int) -> RunSample:
        spec = self.spec
        if kind == "http":
            return measure_over_http(HttpSpec(self.url, self.fakes.base_url, spec.workspaces, concurrency, budget_ms))
        run_spec = RunSpec(
            self.url,
            self.fakes.base_url,
            spec.workspaces,
            concurrency,
            budget_ms,
            str(profile) if profile else None,
            spec.cpus,
        )
        return measure_in_child(run_spec)


def _figures(
    kind: str, sample: RunSample, delta: Counters, requests: int, sandbox_cpu_s: float, ideal_s: float
) -> RunFigures:
    report = sample.report
    return RunFigures(
        kind=kind,
        wall_s=round(sample.wall_s, 3),
        cpu_s=round(sample.cpu_s, 3),
        peak_rss_mb=round(sample.peak_rss_mb, 1),
        refreshed=int(report.get("refreshed") or 0),
        failed=int(report.get("failed") or 0),
        not_started=int(report.get("notStarted") or 0),
        finished_within_budget=bool(report.get("finishedWithinBudget")),
        db_round_trips=delta.transactions,
        db_statements=delta.statements,
        wal_bytes=delta.wal_bytes,
        wal_fpi=delta.wal_fpi,
        provider_requests=requests,
        sandbox_cpu_s=round(sandbox_cpu_s, 3),
        ideal_s=round(ideal_s, 3),
        cpus=len(sample.cpus) or os.cpu_count() or 1,
    )


def start_fakes(spec: GroupSpec) -> FakeProviders:
    config = FakeConfig(
        spec.workspaces, spec.latency_ms / 1000, spec.slots_per_day, spec.today, latency_model=spec.latency_model
    )
    return FakeProviders(config)  # started by its `with` block
