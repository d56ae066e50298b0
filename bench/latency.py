"""Realistic provider latency (issue 12): each request's delay drawn from a lognormal with a given
median and 99th percentile, plus a small share of very slow answers; and the network ideal of a run
computed from the delays actually drawn."""

from __future__ import annotations

import math
import random
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Z_99 = 2.326347874040841  # the standard normal's 99th percentile


@dataclass(frozen=True)
class LatencyModel:
    """Lognormal delays (median, p99) with `slow_share` of the requests taking `slow_s` instead."""

    median_s: float = 0.2
    p99_s: float = 1.5
    slow_share: float = 0.01
    slow_s: float = 5.0

    @property
    def sigma(self) -> float:
        return math.log(self.p99_s / self.median_s) / Z_99

    def draw(self, rng: random.Random) -> float:
        if rng.random() < self.slow_share:
            return self.slow_s
        return rng.lognormvariate(math.log(self.median_s), self.sigma)

    @property
    def label(self) -> str:
        median, slow = f"{self.median_s * 1000:g} ms", f"{self.slow_share:.0%} at {self.slow_s:g} s"
        return f"lognormal median {median}, p99 {self.p99_s:g} s, {slow}"


class DrawRecorder:
    """The sandbox's sampler: draws a delay for each request and remembers it by calendar key, so the
    bench can compute the ideal of the run from the delays the refresher actually met."""

    def __init__(self, model: LatencyModel, seed: int = 12) -> None:
        self.model = model
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._draws: defaultdict[str, list[float]] = defaultdict(list)

    def __call__(self, key: str | None) -> float:
        with self._lock:
            delay = self.model.draw(self._rng)
            self._draws[key or ""].append(delay)
        return delay

    def take(self) -> dict[str, list[float]]:
        """The draws since the last call, by key (and forget them)."""
        with self._lock:
            draws, self._draws = dict(self._draws), defaultdict(list)
        return draws


def drawn_ideal_s(draws: Mapping[str, Sequence[float]], concurrency: int) -> float:
    """The shortest wall time C perfect workers could take for these delays, the network alone.

    A workspace's requests are taken to run side by side (its time is its longest delay): at steady
    state it makes one request, or HubSpot's two months at once. The ideal is then the larger of the
    total work over C and the single longest workspace. A workspace whose requests really ran one
    after another (a Calendly link resolved afresh) makes this ideal too low, the efficiency too
    low: the error is on the modest side.
    """
    per_workspace = [max(delays) for delays in draws.values() if delays]
    if not per_workspace:
        return 0.0
    longest = max(per_workspace)
    return max(sum(per_workspace) / concurrency, longest)
