"""Slot instants: parsing provider timestamps to epoch milliseconds and writing the cache's ISO form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from lib.errors import ProviderResponseError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Instants a calendar can plausibly offer (rejects garbage such as year 0001 or 9999).
_MIN_MS = 946_684_800_000  # 2000-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01


@dataclass(frozen=True)
class Window:
    """The instants a refresh keeps: [start, end] in epoch milliseconds, both inclusive."""

    start: datetime
    end: datetime

    @classmethod
    def ahead(cls, now: datetime, days: int) -> Window:
        return cls(now, now + timedelta(days=days))

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_ms(self.end)


def to_ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, truncated like JavaScript's Date."""
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def parse_instant_ms(text: object) -> int:
    """Epoch ms of an ISO-8601 timestamp that carries an offset; anything else is a ProviderResponseError."""
    if not isinstance(text, str) or len(text) > 64:
        raise ProviderResponseError(f"slot time is not a timestamp string: {_preview(text)}")
    return _parse_cached(text)


# Slots sit on a shared grid (every quarter hour of the next month), so a few thousand distinct
# texts and instants cover every workspace of a run: caching them turns the per-slot parsing and
# formatting, the largest CPU cost of a refresh, into dictionary lookups. Bounded; thread-safe.
_CACHE_SIZE = 1 << 15


@lru_cache(maxsize=_CACHE_SIZE)
def _parse_cached(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ProviderResponseError(f"invalid slot time {_preview(text)}") from exc
    if moment.tzinfo is None:
        raise ProviderResponseError(f"slot time without a UTC offset: {_preview(text)}")
    return checked_ms(to_ms(moment))


def checked_ms(value: object) -> int:
    """An epoch-ms value from a provider, checked to be a plausible instant."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderResponseError(f"slot time is not a number: {_preview(value)}")
    if not _MIN_MS <= value <= _MAX_MS:  # also rejects NaN, for which every comparison is false
        raise ProviderResponseError(f"slot time out of range: {_preview(value)}")
    return int(value)


@lru_cache(maxsize=_CACHE_SIZE)
def iso_from_ms(ms: int) -> str:
    """The cache's exact form, as JavaScript's toISOString writes it: YYYY-MM-DDTHH:MM:SS.sssZ."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def day_chunks(first: date, last: date, max_days: int) -> list[tuple[date, date]]:
    """[first, last] (both inclusive) cut into consecutive runs of at most `max_days` dates.

    Chunks share no date, so a provider that groups its answer by local date cannot return the
    same start from two chunks; `unique_instants` still guards the join.
    """
    if max_days < 1:
        raise ValueError("max_days must be at least 1")
    chunks: list[tuple[date, date]] = []
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=max_days - 1))
        chunks.append((start, end))
        start = end + timedelta(days=1)
    return chunks


def ms_chunks(start_ms: int, end_ms: int, max_span_ms: int) -> list[tuple[int, int]]:
    """[start_ms, end_ms] cut into spans of at most `max_span_ms`, each starting where the last ended.

    The seams are shared on purpose: providers treat both ends as inclusive, so a start exactly
    at a seam comes back from both neighbours (and is joined once), and none can fall between.
    """
    if max_span_ms < 1:
        raise ValueError("max_span_ms must be positive")
    chunks: list[tuple[int, int]] = []
    start = start_ms
    while True:
        end = min(end_ms, start + max_span_ms)
        chunks.append((start, end))
        if end >= end_ms:
            return chunks
        start = end


def unique_instants(instants_ms: Iterable[int]) -> list[int]:
    """The instants sorted, each once: how the answers of several chunks are joined."""
    return sorted(set(instants_ms))


def normalize_slots(instants_ms: Iterable[int], window: Window) -> tuple[str, ...]:
    """The instants inside the window, de-duplicated, sorted, in the cache's ISO form."""
    start, end = window.start_ms, window.end_ms
    kept = sorted({ms for ms in instants_ms if start <= ms <= end})
    return tuple(iso_from_ms(ms) for ms in kept)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
