"""A small PNG of throughput against concurrency, one line per (workspaces, latency) group."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.results import ScenarioResult


def plot_throughput(results: Sequence[ScenarioResult], path: Path) -> Path:
    """Median workspaces/s with min-max bars, and the network ideal C/L for comparison."""
    import matplotlib

    matplotlib.use("Agg")  # no display here; must precede pyplot
    import matplotlib.pyplot as plt

    groups: dict[tuple[int, float], list[ScenarioResult]] = {}
    for result in results:
        groups.setdefault((result.workspaces, result.latency_ms), []).append(result)
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ideal_drawn: set[float] = set()
    for (workspaces, latency_ms), unordered in sorted(groups.items()):
        members = sorted(unordered, key=lambda r: r.concurrency)
        xs = [r.concurrency for r in members]
        ys = [r.workspaces_per_s.median for r in members]
        low = [r.workspaces_per_s.median - r.workspaces_per_s.min for r in members]
        high = [r.workspaces_per_s.max - r.workspaces_per_s.median for r in members]
        label = f"N={workspaces}, L={latency_ms:g} ms"
        line = axes.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=label)
        if latency_ms not in ideal_drawn:
            ideal_drawn.add(latency_ms)
            every_c = sorted({r.concurrency for r in results if r.latency_ms == latency_ms})
            ideal = [c / (latency_ms / 1000) for c in every_c]
            label = f"network ideal C/L, L={latency_ms:g} ms"
            axes.plot(every_c, ideal, "--x", color=line[0].get_color(), alpha=0.5, label=label)
    axes.set_xlabel("concurrency C")
    axes.set_ylabel("workspaces per second")
    axes.set_title("availability-cron refresh throughput (median)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
