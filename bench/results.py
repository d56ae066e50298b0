"""Result values of the benchmark (frozen dataclasses), their medians, the printed table and the JSON."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Spread:
    """Median of the repetitions, with the extremes, so noise is visible."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(float("nan"), float("nan"), float("nan"))
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class RunFigures:
    """One measured run; every database figure is read from the server, every request count from the sandbox."""

    # "changed" (every slot differs from the last run), "unchanged", the same two right after a CHECKPOINT
    # ("changed-ckpt", "unchanged-ckpt": WAL only), "http", "warm-up" or "profiled"
    kind: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    refreshed: int
    failed: int
    not_started: int
    finished_within_budget: bool
    db_round_trips: int
    db_statements: int
    wal_bytes: int
    wal_fpi: int
    provider_requests: int
    sandbox_cpu_s: float
    ideal_s: float  # the network ideal of this run: done·L/C, or from the drawn latencies (bench/latency.py)
    cpus: int  # CPUs the refreshing process could use

    @property
    def done(self) -> int:
        return self.refreshed + self.failed

    @property
    def per(self) -> int:
        """The divisor of every per-workspace figure: the workspaces this run wrote, not the N seeded, so a
        run cut short by its budget is not flattered."""
        return max(1, self.done)


@dataclass(frozen=True)
class ScenarioResult:
    workspaces: int
    latency_ms: float
    concurrency: int
    budget_ms: int
    repeat: int
    latency_model: str  # "fixed", or the lognormal's description
    cpus: int  # CPUs the refreshing process was pinned to (the machine's count when not pinned)
    slots_per_workspace: float  # measured in the cache rows after the runs
    network_ideal_s: float  # N·L/C (with drawn latencies: the median over the runs of their drawn ideal)
    wall_s: Spread
    wall_unchanged_s: Spread
    workspaces_per_s: Spread
    efficiency: Spread  # ideal / wall: (done·L/C) / wall, or the drawn latencies' ideal / wall
    request_efficiency: Spread  # (provider requests·L/C) / wall: HubSpot needs two requests a workspace
    cpu_ms_per_workspace: Spread
    db_round_trips_per_workspace: Spread
    db_statements_per_workspace: Spread
    wal_bytes_per_workspace_changed: Spread
    wal_bytes_per_workspace_unchanged: Spread
    wal_fpi_per_workspace_changed: Spread
    wal_fpi_per_workspace_unchanged: Spread
    wal_bytes_per_workspace_changed_ckpt: Spread  # the same runs right after a CHECKPOINT: full-page images
    wal_bytes_per_workspace_unchanged_ckpt: Spread
    peak_rss_mb: Spread
    provider_requests_per_workspace: Spread
    sandbox_cpu_share: Spread  # sandbox CPU seconds per wall second (1.0 = a whole core)
    finished_within_budget: bool  # in every measured in-process run
    refreshed_min: int
    failed_max: int
    runs: list[RunFigures]
    statements: list[dict[str, Any]]  # pg_stat_statements of the last measured run


def summarize(
    runs: Sequence[RunFigures],
    *,
    workspaces: int,
    latency_ms: float,
    concurrency: int,
    budget_ms: int,
    slots: float,
    drawn: bool = False,
) -> dict[str, Any]:
    """The Spread fields of a ScenarioResult from its measured runs ("changed" ones lead, as the harder case).
    `drawn`: the sandbox drew each request's latency, and each run carries its own ideal."""
    changed = [run for run in runs if run.kind == "changed"]
    unchanged = [run for run in runs if run.kind == "unchanged"]
    changed_ckpt = [run for run in runs if run.kind == "changed-ckpt"]
    unchanged_ckpt = [run for run in runs if run.kind == "unchanged-ckpt"]
    latency_s = latency_ms / 1000

    def spread(rows: Sequence[RunFigures], value: Any) -> Spread:
        return Spread.of([float(value(run)) for run in rows])

    return {
        "slots_per_workspace": round(slots, 1),
        "network_ideal_s": round(
            statistics.median([r.ideal_s for r in changed])
            if drawn and changed
            else workspaces * latency_s / concurrency,
            3,
        ),
        "wall_s": spread(changed, lambda r: r.wall_s),
        "wall_unchanged_s": spread(unchanged, lambda r: r.wall_s),
        "workspaces_per_s": spread(changed, lambda r: r.done / r.wall_s),
        "efficiency": spread(changed, lambda r: r.ideal_s / r.wall_s),
        # With drawn latencies a request has no fixed L: the figure would mean nothing.
        "request_efficiency": spread(
            [] if drawn else changed, lambda r: r.provider_requests * latency_s / concurrency / r.wall_s
        ),
        "cpu_ms_per_workspace": spread(changed, lambda r: r.cpu_s * 1000 / r.per),
        "db_round_trips_per_workspace": spread(changed, lambda r: r.db_round_trips / r.per),
        "db_statements_per_workspace": spread(changed, lambda r: r.db_statements / r.per),
        "wal_bytes_per_workspace_changed": spread(changed, lambda r: r.wal_bytes / r.per),
        "wal_bytes_per_workspace_unchanged": spread(unchanged, lambda r: r.wal_bytes / r.per),
        "wal_fpi_per_workspace_changed": spread(changed, lambda r: r.wal_fpi / r.per),
        "wal_fpi_per_workspace_unchanged": spread(unchanged, lambda r: r.wal_fpi / r.per),
        "wal_bytes_per_workspace_changed_ckpt": spread(changed_ckpt, lambda r: r.wal_bytes / r.per),
        "wal_bytes_per_workspace_unchanged_ckpt": spread(unchanged_ckpt, lambda r: r.wal_bytes / r.per),
        "peak_rss_mb": spread(changed, lambda r: r.peak_rss_mb),
        "provider_requests_per_workspace": spread(changed, lambda r: r.provider_requests / r.per),
        "sandbox_cpu_share": spread(changed, lambda r: r.sandbox_cpu_s / r.wall_s),
        "finished_within_budget": all(run.finished_within_budget for run in runs),
        "refreshed_min": min((run.refreshed for run in runs), default=0),
        "failed_max": max((run.failed for run in runs), default=0),
    }


_COLUMNS = (
    ("N", 6),
    ("L ms", 6),
    ("C", 4),
    ("cores", 5),
    ("wall s (min-max)", 18),
    ("ws/s", 6),
    ("eff", 5),
    ("req-eff", 7),
    ("CPU ms/ws", 9),
    ("RT/ws", 7),
    ("stmt/ws", 7),
    ("WAL B/ws chg", 12),
    ("WAL B/ws same", 13),
    ("ckpt chg", 8),
    ("ckpt same", 9),
    ("RSS MB", 6),
    ("req/ws", 6),
    ("sbx CPU", 7),
    ("budget", 6),
    ("ok/failed", 11),
)


def table(results: Sequence[ScenarioResult]) -> str:
    """A fixed-width table of the medians, one line a scenario."""
    header = "  ".join(name.rjust(width) for name, width in _COLUMNS)
    lines = [header, "-" * len(header)]
    for r in results:
        cells = (
            f"{r.workspaces}",
            f"{r.latency_ms:g}" if r.latency_model == "fixed" else f"ln{r.latency_ms:g}",
            f"{r.concurrency}",
            f"{r.cpus}",
            f"{r.wall_s.median:.2f} ({r.wall_s.min:.1f}-{r.wall_s.max:.1f})",
            f"{r.workspaces_per_s.median:.1f}",
            f"{r.efficiency.median:.2f}",
            "-" if math.isnan(r.request_efficiency.median) else f"{r.request_efficiency.median:.2f}",
            f"{r.cpu_ms_per_workspace.median:.2f}",
            f"{r.db_round_trips_per_workspace.median:.4f}",
            f"{r.db_statements_per_workspace.median:.4f}",
            f"{r.wal_bytes_per_workspace_changed.median:.0f}",
            f"{r.wal_bytes_per_workspace_unchanged.median:.0f}",
            _whole(r.wal_bytes_per_workspace_changed_ckpt.median),
            _whole(r.wal_bytes_per_workspace_unchanged_ckpt.median),
            f"{r.peak_rss_mb.median:.0f}",
            f"{r.provider_requests_per_workspace.median:.2f}",
            f"{r.sandbox_cpu_share.median:.2f}",
            "yes" if r.finished_within_budget else "NO",
            f"{r.refreshed_min}/{r.failed_max}",
        )
        lines.append("  ".join(cell.rjust(width) for cell, (_, width) in zip(cells, _COLUMNS, strict=True)))
    return "\n".join(lines)


def _whole(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(document), indent=2, allow_nan=False) + "\n")


def _plain(value: Any) -> Any:
    """Dataclasses as dicts, tuples as lists, NaN (a figure with no sample) as null."""
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (date, Path)):
        return str(value)
    return value
