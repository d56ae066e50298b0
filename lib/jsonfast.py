"""JSON fast: provider answers decoded with orjson, the cache row's JSON written by joining its ~700
slot texts in one go (issue 12).

`loads` accepts and refuses exactly what `json.loads` does, with the same values and types. orjson
refuses a few texts the standard library takes (NaN and Infinity, 1E400, lone surrogates, a byte-order
mark, UTF-16 or UTF-32): those go to `json.loads`. Two kinds of text orjson would take differently
never reach it, as one pass over the body tells: an integer beyond 64 bits (orjson makes it a float),
which needs 19 digits in a row, and nesting deeper than `json.loads` can follow (it raises
RecursionError near 1,000 levels, less the caller's stack; orjson goes to 1,024), so anything nested
more than MAX_FAST_DEPTH levels is decoded by `json.loads`. Without the orjson wheel the standard
library does it all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_orjson: ModuleType | None
try:
    import orjson as _orjson
except ImportError:  # a requirement, but the function stays whole without it: only slower
    _orjson = None

DECODER = "orjson" if _orjson is not None else "json"
# Deeper than this, json.loads decides (its RecursionError depends on the stack, not on the text alone).
MAX_FAST_DEPTH = 100
# One translation serves both checks: digits become "0", brackets "(" and ")", anything else " ".
_SHAPE = bytes(
    ord("0") if char in "0123456789" else ord("(") if char in "[{" else ord(")") if char in "]}" else ord(" ")
    for char in map(chr, range(256))
)
# The characters a JSON string holds as they are (printable ASCII but the quote and the backslash).
_PLAIN_ITEM_BYTES = bytes(code for code in range(0x20, 0x7F) if code not in b'"\\')
# Every integer beyond 64 bits (below -9223372036854775808 or above 18446744073709551615) has 19 digits.
_NINETEEN_DIGITS = b"0" * 19


def loads(body: bytes) -> Any:
    """The value of one JSON text, exactly as `json.loads(body)` gives it; ValueError (or RecursionError,
    for nesting deeper than Python's recursion allows) exactly when `json.loads` raises one."""
    if _orjson is not None and _orjson_decodes_as_json(body):
        try:
            return _orjson.loads(body)
        except (_orjson.JSONDecodeError, RecursionError):
            pass  # the standard library decides: it takes a few more forms (see the docstring)
    return json.loads(body)


def _orjson_decodes_as_json(body: bytes) -> bool:
    """False when `body` may hold an integer beyond 64 bits or nest deeper than MAX_FAST_DEPTH."""
    shape = body.translate(_SHAPE)
    if _NINETEEN_DIGITS in shape:
        return False
    brackets = shape.translate(None, b" 0")
    # Each round removes the innermost pairs, so a text n levels deep is empty after n rounds. Brackets
    # that do not pair (inside strings, or not JSON) stop it early: json.loads decides those.
    for _ in range(MAX_FAST_DEPTH):
        if not brackets:
            return True
        peeled = brackets.replace(b"()", b"")
        if len(peeled) == len(brackets):
            return False
        brackets = peeled
    return not brackets


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
    # Left once the characters an item may hold as they are are taken out: the separators' quotes, and
    # anything else only if some string needs escaping (a quote, a backslash, a control character).
    rest = joined.encode("ascii").translate(None, _PLAIN_ITEM_BYTES) if joined.isascii() else None
    if rest is None or rest != b'"' * (2 * max(0, len(texts) - 1)):
        return dumps({**value, key: list(texts)})  # some string needs escaping: let the encoder do it
    array = f'["{joined}"]' if texts else "[]"
    head = dumps(value) if head is None else head
    return f"{head[:-1]}{',' if len(head) > 2 else ''}{dumps(key)}:{array}}}"
