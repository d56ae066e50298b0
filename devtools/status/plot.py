"""`--plot FILE.png`: the distribution of cache ages (now - rangeStart) per provider, one panel per
source: each row's age as a dot on its provider's line, over a box of the quartiles. matplotlib is
imported here only, when a plot is asked for, so the text view needs none of it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from devtools.status.overview import Overview, SourceSummary

SMALLEST_AGE_MIN = 0.1  # log axis: ages below 6 s are drawn at 6 s
# Ticks in the units people think in.
TICKS_MIN = ((0.1, "6 s"), (1, "1 min"), (10, "10 min"), (60, "1 h"), (600, "10 h"), (1440, "1 d"), (10080, "7 d"))
JITTER = 0.18


def write_plot(overview: Overview, path: Path) -> int:
    """Write the PNG; returns how many rows it shows."""
    import matplotlib  # noqa: PLC0415 - lazy on purpose: the text view must work without matplotlib

    matplotlib.use("Agg")  # files only, never a window
    from matplotlib import pyplot  # noqa: PLC0415 - after choosing the backend

    panels = [summary for summary in overview.sources if summary.total.ages_minutes] or list(overview.sources[:1])
    figure, axes = pyplot.subplots(len(panels), 1, figsize=(9, 3.6 * len(panels)), squeeze=False)
    shown = 0
    for axis, summary in zip(axes[:, 0], panels, strict=True):
        shown += _panel(axis, summary, overview)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    pyplot.close(figure)
    return shown


def _panel(axis: Any, summary: SourceSummary, overview: Overview) -> int:
    ages_of = {
        line.provider: [max(age, SMALLEST_AGE_MIN) for age in line.ages_minutes]
        for line in summary.lines
        if line.ages_minutes
    }
    axis.set_title(f"{summary.source.value}: cache ages at {overview.now:%Y-%m-%d %H:%M} UTC")
    if not ages_of:
        axis.text(0.5, 0.5, "no cache rows", transform=axis.transAxes, ha="center")
        axis.set_axis_off()
        return 0
    providers = sorted(ages_of)
    jitter = random.Random(0)  # the same picture for the same data  # noqa: S311 - not security
    for position, provider in enumerate(providers, start=1):
        ages = ages_of[provider]
        spread = [position + jitter.uniform(-JITTER, JITTER) for _ in ages]
        axis.scatter(ages, spread, s=12, alpha=0.6, zorder=3)
    axis.boxplot([ages_of[provider] for provider in providers], orientation="horizontal", widths=0.6, showfliers=False)
    axis.set_yticks(range(1, len(providers) + 1), [f"{name} ({len(ages_of[name])})" for name in providers])
    axis.set_xscale("log")
    largest = max(max(ages) for ages in ages_of.values())
    ticks = [(value, label) for value, label in TICKS_MIN if value <= largest * 10]
    axis.set_xticks([value for value, _ in ticks], [label for _, label in ticks])
    axis.set_xlim(SMALLEST_AGE_MIN * 0.8, max(largest * 2, 10))
    axis.set_xlabel("time since the provider's last answer (now - rangeStart), log scale")
    axis.grid(axis="x", alpha=0.3)
    return sum(len(ages) for ages in ages_of.values())
