"""`--plot FILE.png`: the distribution of cache ages (now - rangeStart) per provider, one panel per
source. matplotlib is imported here only, when a plot is asked for, so the text view needs none of it."""

from __future__ import annotations

import math
from pathlib import Path

from devtools.status.overview import Overview

SMALLEST_AGE_MIN = 0.1  # log axis: ages below 6 s are drawn at 6 s


def write_plot(overview: Overview, path: Path) -> int:
    """Write the PNG; returns how many rows it shows."""
    import matplotlib  # noqa: PLC0415 - lazy on purpose: the text view must work without matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from matplotlib import pyplot  # noqa: PLC0415 - after choosing the backend

    panels = [summary for summary in overview.sources if summary.total.ages_minutes] or list(overview.sources[:1])
    figure, axes = pyplot.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
    shown = 0
    for axis, summary in zip(axes[:, 0], panels, strict=True):
        ages_of = {line.provider: [max(age, SMALLEST_AGE_MIN) for age in line.ages_minutes] for line in summary.lines}
        ages_of = {provider: ages for provider, ages in ages_of.items() if ages}
        largest = max((max(ages) for ages in ages_of.values()), default=1.0)
        edges = _log_edges(SMALLEST_AGE_MIN, max(largest, 1.0) * 1.5)
        for provider, ages in sorted(ages_of.items()):
            axis.hist(ages, bins=edges, histtype="step", linewidth=1.8, label=f"{provider} ({len(ages)})")
            shown += len(ages)
        axis.set_xscale("log")
        axis.set_xlabel("cache age: minutes since the provider's last answer (now - rangeStart)")
        axis.set_ylabel("rows")
        axis.set_title(f"{summary.source.value} at {overview.now:%Y-%m-%d %H:%M} UTC")
        if ages_of:
            axis.legend(title="provider (rows)")
        else:
            axis.text(0.5, 0.5, "no cache rows", transform=axis.transAxes, ha="center")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    pyplot.close(figure)
    return shown


def _log_edges(low: float, high: float, per_decade: int = 8) -> list[float]:
    count = max(2, math.ceil(math.log10(high / low) * per_decade) + 1)
    step = math.log10(high / low) / (count - 1)
    return [low * 10 ** (step * index) for index in range(count)]
