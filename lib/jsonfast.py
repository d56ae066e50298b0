"""The cache row's JSON, written fast: the row's ~700 slot texts are joined in one go instead of
passing every item through the encoder (issue 12). Standard library only: orjson was measured
(bench/README.md) but is not a requirement, because importing it in the function process broke
google-cloud-logging's first log line in one test, for a reason not yet understood."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def dumps(value: Any) -> str:
    """Compact JSON text (no spaces); non-ASCII characters are written as themselves, not escaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def object_with_strings(value: dict[str, Any], key: str, texts: Sequence[str], *, head: str | None = None) -> str:
    """`dumps(value | {key: list(texts)})`, with the array written by one join when its strings need no
    escaping (the cache's ISO timestamps never do): a 700-slot list then costs a join and three scans
    instead of an encoder pass over every item. `head`, when given, is `dumps(value)` already written."""
    if key in value:
        raise ValueError(f"{key!r} is already a key of the object")
    joined = '","'.join(texts)
    plain = joined.isascii() and joined.isprintable() and "\\" not in joined
    if not plain or joined.count('"') != 2 * max(0, len(texts) - 1):  # quotes beyond the separators'
        return dumps({**value, key: list(texts)})  # some string needs escaping: let the encoder do it
    array = f'["{joined}"]' if texts else "[]"
    head = dumps(value) if head is None else head
    return f"{head[:-1]}{',' if len(head) > 2 else ''}{dumps(key)}:{array}}}"
