"""Request options: the query string (and a POST JSON object body) parsed into RunOptions, or a 400."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lib.config import CONCURRENCY_RANGE, LIMIT_RANGE, TIME_BUDGET_RANGE_MS, Settings
from lib.errors import InvalidParameter
from lib.model import UNSHARDED, Mode, Shard, Source
from lib.numbers import clamp, parse_base10_int

MAX_CLIENT_ID_LENGTH = 200
MAX_SHARDS = 64
MAX_SCHEDULE_TIME_LENGTH = 64

_SOURCE_NAMES = {"default": Source.DEFAULT, "directBook": Source.DIRECT_BOOK}


@dataclass(frozen=True)
class RunOptions:
    """The effective options of one run (echoed in the report)."""

    mode: Mode = Mode.ALL
    limit: int = 100
    time_budget_ms: int = 55_000
    concurrency: int | None = None  # None: chosen from the number of workspaces
    client_id: str | None = None
    source: Source = Source.DEFAULT
    shard: Shard = UNSHARDED

    def with_concurrency(self, workspaces: int) -> RunOptions:
        """Fix an automatic concurrency now that the number of workspaces is known."""
        if self.concurrency is not None:
            return self
        automatic = min(workspaces, max(8, math.ceil(workspaces / 10)))
        return RunOptions(
            self.mode,
            self.limit,
            self.time_budget_ms,
            clamp(automatic, *CONCURRENCY_RANGE),
            self.client_id,
            self.source,
            self.shard,
        )

    def as_report(self) -> dict[str, Any]:
        echoed: dict[str, Any] = {
            "mode": self.mode.value,
            "limit": self.limit,
            "timeBudgetMs": self.time_budget_ms,
            "concurrency": self.concurrency,
            "source": "directBook" if self.source is Source.DIRECT_BOOK else "default",
        }
        if self.client_id is not None:
            echoed["clientId"] = self.client_id
        if self.shard != UNSHARDED:
            echoed.update(self.shard.as_report())
        return echoed


def parse_options(query: Mapping[str, str], body: bytes, content_type: str, settings: Settings) -> RunOptions:
    """Merge the JSON body (if it is an object) under the query string and validate every value."""
    values: dict[str, Any] = dict(_body_values(body, content_type))
    values.update({key: query[key] for key in query})
    return RunOptions(
        mode=_mode(values),
        limit=_integer(values, "limit", settings.limit, LIMIT_RANGE),
        time_budget_ms=_integer(values, "timeBudgetMs", settings.time_budget_ms, TIME_BUDGET_RANGE_MS),
        concurrency=_optional_integer(values, "concurrency", CONCURRENCY_RANGE) or settings.concurrency,
        client_id=_client_id(values),
        source=_source(values),
        shard=_shard(values),
    )


def schedule_time(header: str | None) -> datetime | None:
    """Cloud Scheduler's `X-CloudScheduler-ScheduleTime` (RFC 3339) as a UTC instant; None when
    absent or unreadable (the header only enables duplicate detection, so it never fails a call)."""
    if not header or len(header) > MAX_SCHEDULE_TIME_LENGTH:
        return None
    try:
        parsed = datetime.fromisoformat(header.strip())
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _body_values(body: bytes, content_type: str) -> Mapping[str, Any]:
    """A JSON object body's keys; other bodies (Cloud Scheduler may send any) are ignored unless declared JSON."""
    if not body.strip():
        return {}
    declared_json = "json" in content_type.lower()
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError) as exc:
        if declared_json:
            raise InvalidParameter("body", "is not valid JSON") from exc
        return {}
    if isinstance(decoded, dict):
        return decoded
    if declared_json:
        raise InvalidParameter("body", "must be a JSON object")
    return {}


def _mode(values: Mapping[str, Any]) -> Mode:
    raw = values.get("mode")
    if raw is None:
        return Mode.ALL
    if isinstance(raw, str) and raw in (Mode.ALL.value, Mode.DUE.value):
        return Mode(raw)
    raise InvalidParameter("mode", "must be 'all' or 'due'")


def _source(values: Mapping[str, Any]) -> Source:
    raw = values.get("source")
    if raw is None:
        return Source.DEFAULT
    if isinstance(raw, str) and raw in _SOURCE_NAMES:
        return _SOURCE_NAMES[raw]
    raise InvalidParameter("source", "must be 'default' or 'directBook'")


def _shard(values: Mapping[str, Any]) -> Shard:
    """`shards` is clamped like every integer; `shard` is never clamped: one outside [0, shards), or
    one without `shards`, is a 400, since clamping it would silently run another shard's workspaces."""
    count = _optional_integer(values, "shards", (1, MAX_SHARDS))
    index = _exact_integer(values, "shard")
    if count is None:
        if index is not None:
            raise InvalidParameter("shard", "needs 'shards' (the number of shards)")
        return UNSHARDED
    index = 0 if index is None else index
    if not 0 <= index < count:
        raise InvalidParameter("shard", f"must be at least 0 and less than shards ({count})")
    return Shard(index, count)


def _client_id(values: Mapping[str, Any]) -> str | None:
    raw = values.get("clientId")
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidParameter("clientId", "must be a non-empty workspace id")
    if len(raw) > MAX_CLIENT_ID_LENGTH or "\x00" in raw or not _encodable(raw):
        raise InvalidParameter("clientId", f"must be at most {MAX_CLIENT_ID_LENGTH} characters of valid text, no NUL")
    return raw.strip()


def _encodable(text: str) -> bool:
    """False for text with lone surrogates (a JSON body may carry them; PostgreSQL cannot store them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer(values: Mapping[str, Any], name: str, default: int, bounds: tuple[int, int]) -> int:
    value = _optional_integer(values, name, bounds)
    return default if value is None else value


def _optional_integer(values: Mapping[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    value = _exact_integer(values, name)
    return None if value is None else clamp(value, *bounds)


def _exact_integer(values: Mapping[str, Any], name: str) -> int | None:
    """The integer given for `name`, unclamped (None when absent); a 400 when it is not one."""
    raw = values.get(name)
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    parsed = parse_base10_int(raw) if isinstance(raw, str) else None
    if parsed is None:
        raise InvalidParameter(name, "must be a base-10 integer")
    return parsed
