"""Slot instants: parsing provider timestamps to epoch milliseconds and writing the cache's ISO form."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from operator import lt
from typing import TypeVar

from lib.errors import ProviderResponseError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Instants a calendar can plausibly offer (rejects garbage such as year 0001 or 9999).
_MIN_MS = 946_684_800_000  # 2000-01-01
_MAX_MS = 4_102_444_800_000  # 2100-01-01
_K = TypeVar("_K")
_V = TypeVar("_V")


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
    known = _MS_BY_TEXT.get(text) if isinstance(text, str) else None
    return known if known is not None else _parse_and_remember(text)


def instants_from_texts(texts: Sequence[object]) -> list[int]:
    """`parse_instant_ms` of every item, in order: one dictionary lookup a slot when all are known."""
    try:
        return list(map(_MS_BY_TEXT.__getitem__, texts))  # type: ignore[arg-type]  # unhashable items fall back
    except (KeyError, TypeError):  # a text not seen yet (or not a string): parse each, strictly
        return [parse_instant_ms(text) for text in texts]


def checked_instants(values: Sequence[object]) -> list[int]:
    """`checked_ms` of every item, in order; integers inside the range (the usual answer) pass in one sweep."""
    kinds = set(map(type, values))  # `type`, not isinstance: a bool is an int, and never an instant
    if kinds == {int} and min(values) >= _MIN_MS and max(values) <= _MAX_MS:  # type: ignore[type-var, operator]
        return list(values)  # type: ignore[arg-type]  # every item was just checked to be an int
    return [checked_ms(value) for value in values]


# Slots sit on a shared grid (every quarter hour of the next month), so a few thousand distinct
# texts and instants cover every workspace of a run: remembering them turns the per-slot parsing
# and formatting, the largest CPU cost of a refresh, into dictionary lookups. Plain dicts (a get or
# a set is atomic under the GIL), emptied when full so that odd inputs cannot grow them without end.
# Only texts that parsed are remembered, so a hit is always a valid, checked instant.
_CACHE_SIZE = 1 << 15
_MS_BY_TEXT: dict[str, int] = {}
_ISO_BY_MS: dict[int, str] = {}


def _parse_and_remember(text: object) -> int:
    if not isinstance(text, str) or len(text) > 64:
        raise ProviderResponseError(f"slot time is not a timestamp string: {_preview(text)}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ProviderResponseError(f"invalid slot time {_preview(text)}") from exc
    if moment.tzinfo is None:
        raise ProviderResponseError(f"slot time without a UTC offset: {_preview(text)}")
    ms = checked_ms(to_ms(moment))
    _remember(_MS_BY_TEXT, text, ms)
    return ms


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


def checked_ms(value: object) -> int:
    """An epoch-ms value from a provider, checked to be a plausible instant."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderResponseError(f"slot time is not a number: {_preview(value)}")
    if not _MIN_MS <= value <= _MAX_MS:  # also rejects NaN, for which every comparison is false
        raise ProviderResponseError(f"slot time out of range: {_preview(value)}")
    return int(value)


def iso_from_ms(ms: int) -> str:
    """The cache's exact form, as JavaScript's toISOString writes it: YYYY-MM-DDTHH:MM:SS.sssZ."""
    text = _ISO_BY_MS.get(ms)
    if text is None:
        moment = _EPOCH + timedelta(milliseconds=ms)
        text = f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
        _remember(_ISO_BY_MS, ms, text)
    return text


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
    listed = instants_ms if isinstance(instants_ms, list) else list(instants_ms)
    if all(map(lt, listed, islice(listed, 1, None))):  # already strictly increasing, as providers answer
        return list(listed)
    return sorted(set(listed))


def normalize_slots(instants_ms: Iterable[int], window: Window) -> tuple[str, ...]:
    """The instants inside the window, de-duplicated, sorted, in the cache's ISO form."""
    ordered = unique_instants(instants_ms)
    first = bisect_left(ordered, window.start_ms)
    last = bisect_right(ordered, window.end_ms)
    inside = ordered[first:last]
    try:
        return tuple(map(_ISO_BY_MS.__getitem__, inside))  # a C loop: ~700 lookups a workspace
    except KeyError:  # an instant not formatted yet
        return tuple([iso_from_ms(ms) for ms in inside])


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
