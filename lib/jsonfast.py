"""JSON with orjson when it is installed (three times faster on provider bodies), the standard library
otherwise; both ways accept and refuse the same texts, and write text PostgreSQL reads alike.

orjson refuses a few texts the standard library takes (NaN, 1E400, lone surrogates, UTF-16 or a
byte-order mark): those are handed to the standard library, so nothing a provider sends that
decoded before fails now. One difference stays: an integer beyond 64 bits becomes a float; every
number the refresh reads is range-checked, so such a value is refused either way.

orjson is not in requirements.txt: with it imported when `main` loads, the functions-framework
worker's first log line failed inside google-cloud-logging ("cannot access submodule 'logging_v2'
of module 'google.cloud'", tests/test_faults_secrets.py, the invalid-port case), for a reason not
yet understood. It is therefore imported on first use only, and only where it is installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from functools import cache
from types import ModuleType
from typing import Any


@cache
def _orjson() -> ModuleType | None:
    try:
        # Optional and imported late on purpose (see the docstring); by name, so type checking needs no stubs.
        return importlib.import_module("orjson")
    except ImportError:  # the standard library does the same, slower
        return None


def loads(data: bytes | str) -> Any:
    """The value of one JSON text; ValueError (json.JSONDecodeError) when it is not JSON."""
    fast = _orjson()
    if fast is not None:
        try:
            return fast.loads(data)
        except fast.JSONDecodeError:
            pass  # let the standard library decide: it accepts a few more forms (see the docstring)
    return json.loads(data)


def dumps(value: Any) -> str:
    """Compact JSON text (no spaces); non-ASCII characters are written as themselves, not escaped."""
    fast = _orjson()
    if fast is not None:
        try:
            return str(fast.dumps(value).decode("utf-8"))
        except TypeError:
            pass  # e.g. a non-string key or an integer beyond 64 bits, which the standard library writes
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def object_with_strings(value: dict[str, Any], key: str, texts: Sequence[str]) -> str:
    """`dumps(value | {key: list(texts)})`, with the array written by one join when its strings need no
    escaping (the cache's ISO timestamps never do): a 700-slot list then costs a join and three scans
    instead of an encoder pass over every item."""
    if key in value:
        raise ValueError(f"{key!r} is already a key of the object")
    joined = '","'.join(texts)
    plain = joined.isascii() and joined.isprintable() and "\\" not in joined
    if not plain or joined.count('"') != 2 * max(0, len(texts) - 1):  # quotes beyond the separators'
        return dumps({**value, key: list(texts)})  # some string needs escaping: let the encoder do it
    array = f'["{joined}"]' if texts else "[]"
    head = dumps(value)
    return f"{head[:-1]}{',' if len(head) > 2 else ''}{dumps(key)}:{array}}}"
