"""One monotonic deadline per run, passed down to every HTTP timeout and checked before new work."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """A point on the monotonic clock; `remaining()` never goes below zero."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def earlier_by(self, seconds: float) -> Deadline:
        """The same deadline moved `seconds` earlier (a stop margin, a reserve for writing)."""
        return Deadline(self.at - seconds)
