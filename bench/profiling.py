"""The top entries of a cProfile dump, by cumulative and by own (self) time, as plain dicts; and the
own time grouped by what the code does (parsing, HTTP, JSON, database), as shares of the whole."""

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
        "groups": own_time_by_group(raw),
    }


# Idle waits: pool threads blocked on their queue or a lock are closed on the main thread's clock
# when the profile is collected (an artefact of per-thread profiling, not work).
_IDLE = ("<method 'get' of '_queue.SimpleQueue' objects>", "<method 'acquire' of '_thread.lock' objects>")
_GROUPS = (
    ("JSON", ("json/", "jsonfast", "orjson")),
    (
        "slot parsing",
        (
            "lib/slots.py",
            "lib/providers/calendly.py",
            "lib/providers/hubspot.py",
            "lib/providers/ghl.py",
            "lib/providers/base.py",
        ),
    ),
    (
        "HTTP client",
        (
            "requests/",
            "urllib3/",
            "http/client",
            "urllib/parse",
            "socket",
            "email/",
            "typing.py",
            "_collections_abc",
            "ssl",
            "lib/providers/http.py",
            "recv_into",
            "sendall",
        ),
    ),
    ("database and rows", ("pg8000", "lib/store.py", "lib/db.py")),
    ("built-in calls", ("~",)),
)


def own_time_by_group(raw: dict[Any, Any]) -> list[dict[str, Any]]:
    """Own time per group (the first whose marker is in the file or function name), idle waits left out.
    Built-in calls (isinstance, dict.get...) are their own group: cProfile does not charge them to callers."""
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, tottime, _, _) in raw.items():
        if function in _IDLE:
            continue
        where = f"{filename} {function}"
        group = next((name for name, marks in _GROUPS if any(mark in where for mark in marks)), "other")
        totals[group] = totals.get(group, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    return [
        {"group": name, "own_s": round(value, 2), "share": round(value / whole, 3)}
        for name, value in sorted(totals.items(), key=lambda item: item[1], reverse=True)
    ]


def _name(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({function})"
