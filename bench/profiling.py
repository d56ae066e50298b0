"""The top entries of a cProfile dump, by cumulative and by own (self) time, as plain dicts."""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any


def top_entries(path: Path, count: int = 15) -> dict[str, list[dict[str, Any]]]:
    """Both orderings; function names are shortened to the path below the project or site-packages."""
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats keeps its table untyped
    rows = [
        {
            "function": _name(key),
            "calls": calls,
            "tottime_s": round(tottime, 3),
            "cumulative_s": round(cumulative, 3),
        }
        for key, (_, calls, tottime, cumulative, _) in raw.items()
    ]
    return {
        "cumulative": sorted(rows, key=lambda row: row["cumulative_s"], reverse=True)[:count],
        "tottime": sorted(rows, key=lambda row: row["tottime_s"], reverse=True)[:count],
    }


def _name(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({function})"
