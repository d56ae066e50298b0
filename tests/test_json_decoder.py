"""The provider answers' JSON decoder (lib/jsonfast.loads, issue 12): orjson where it agrees with the
standard library, `json.loads` for everything else, so the function accepts and refuses exactly what
`json.loads` does, with the same values (types included); the standard library alone without the
orjson wheel; and through the real HTTP client, a body either decoder refuses is a clean
"… answered with invalid JSON"."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.parse_cost import sandbox_bodies
from lib import jsonfast
from lib.deadline import Deadline
from lib.errors import ProviderResponseError
from lib.providers.http import HttpClient
from tests.local_http import LocalHttpServer, QuietHandler

ROOT = Path(__file__).resolve().parent.parent
DEEP = 100_000  # beyond any recursion limit: json.loads raises RecursionError

# Texts where orjson and json.loads disagree or nearly do, and ordinary ones, each with what
# json.loads makes of it (None: refused).
ODD_BODIES: list[bytes] = [
    b'{"a": 1, "b": [true, false, null], "c": "x"}',
    b"NaN",
    b"[Infinity, -Infinity, NaN]",
    b"1E400",
    b"-1e400",
    b"[1.7976931348623157e309]",
    b"5e-324",
    b"2.4703282292062328e-324",
    b"0.1000000000000000055511151231257827",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"18446744073709551615",
    b"18446744073709551616",
    b'{"n": 123456789012345678901234567890}',
    b"[-123456789012345678901234567890]",
    b'"1234567890123456789012345"',  # 19 digits in a row inside a string: json.loads decides
    b"-0",
    b"-0.0",
    b"1E2",
    b'"\\ud800"',
    b'"\\udc00\\ud800"',
    b'"\\ud83d\\ude00"',
    '"\ud800"'.encode("utf-8", "surrogatepass"),
    "\ufeff{}".encode(),
    '{"a": "é"}'.encode("utf-16"),
    '{"a": "é"}'.encode("utf-16-le"),
    '{"a": "é"}'.encode("utf-32"),
    b'{"a": 1, "a": 2}',
    b'{"a": {"x": 1}, "b": 0, "a": [2]}',
    b"",
    b"   ",
    b"\xff",
    b'{"a": "\xc3"}',
    b'"\x01"',
    b'"\\u0000"',
    b"[1,]",
    b'{"a":1}x',
    b"\x0c1",
    b" \t\r\n[1] \t\r\n",
    b"[" * 500 + b"]" * 500,
    b"[" * 1023 + b"]" * 1023,
    b"[" * 2000 + b"]" * 2000,
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b"[" * DEEP,
]


def canonical(value: Any) -> list[Any]:
    """`value` as a flat list of typed tokens (1, 1.0 and True differ; -0.0 and NaN compare), built
    without recursion so that values nested 1,000 deep compare too."""
    tokens: list[Any] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            tokens.append(("dict", tuple(item)))
            pending.extend(reversed(item.values()))
        elif isinstance(item, list):
            tokens.append(("list", len(item)))
            pending.extend(reversed(item))
        elif isinstance(item, float):
            tokens.append(("float", "nan" if math.isnan(item) else item.hex()))
        else:
            tokens.append((type(item).__name__, item))
    return tokens


def outcome(decode: Callable[[bytes], Any], body: bytes) -> tuple[str, Any]:
    try:
        return "value", canonical(decode(body))
    except RecursionError:
        return "refused", RecursionError
    except ValueError as exc:
        return "refused", type(exc)


def standard_loads(body: bytes) -> Any:
    """json.loads one call deeper, as jsonfast.loads calls it: near the recursion limit depth counts."""
    return json.loads(body)


def assert_same_as_json(body: bytes) -> None:
    assert outcome(jsonfast.loads, body) == outcome(standard_loads, body), body[:200]


def test_orjson_is_the_decoder() -> None:
    """A requirement: the equivalence tests below compare orjson's path, not json with itself."""
    assert jsonfast.DECODER == "orjson"


@pytest.mark.parametrize("body", ODD_BODIES, ids=range(len(ODD_BODIES)))
def test_odd_bodies_decode_or_fail_as_with_the_standard_library(body: bytes) -> None:
    assert_same_as_json(body)


def nested(depth: int) -> bytes:
    """Objects and arrays nested `depth` levels deep around a 1."""
    objects, arrays = depth // 2, depth - depth // 2
    return b'{"a":' * objects + b"[" * arrays + b"1" + b"]" * arrays + b"}" * objects


def test_nesting_json_loads_cannot_follow_is_refused_as_json_loads_refuses_it() -> None:
    """orjson takes up to 1,024 levels; json.loads raises RecursionError sooner (where exactly depends
    on the stack), and the function refuses exactly where json.loads does."""
    deepest = 900  # json.loads's deepest, found from this frame (a generator expression would add one)
    while outcome(standard_loads, nested(deepest + 1))[0] == "value":
        deepest += 1
    assert deepest < 1024
    for depth in (jsonfast.MAX_FAST_DEPTH, jsonfast.MAX_FAST_DEPTH + 1, deepest - 1, deepest, deepest + 1, 1024, 1025):
        assert_same_as_json(nested(depth))
    assert outcome(jsonfast.loads, nested(deepest + 1)) == ("refused", RecursionError)
    assert outcome(orjson_loads(), nested(deepest + 1))[0] == "value"  # what the check is for


def orjson_loads() -> Callable[[bytes], Any]:
    import orjson  # the raw library, to show the difference the decoder hides

    loads: Callable[[bytes], Any] = orjson.loads
    return loads


def test_the_sandbox_providers_answers_take_the_fast_path() -> None:
    """Provider answers (the bench's, ≈ 670 slots) are decoded by orjson, not handed to json.loads."""
    bodies = sandbox_bodies(datetime.now(UTC), 32)
    assert sorted(bodies) == ["calendly", "ghl", "hubspot"]
    for body in (body for answers in bodies.values() for body in answers):
        assert jsonfast._orjson_decodes_as_json(body), body[:200]
        assert_same_as_json(body)


def test_what_orjson_takes_differently_or_refuses_still_decodes_as_json_does() -> None:
    assert jsonfast.loads(b"18446744073709551616") == 18446744073709551616  # orjson alone: a float
    assert isinstance(jsonfast.loads(b"[-9223372036854775809]")[0], int)
    assert math.isnan(jsonfast.loads(b"NaN"))
    assert jsonfast.loads(b'"\\ud800"') == "\ud800"
    assert jsonfast.loads("\ufeff[1]".encode()) == [1]
    assert jsonfast.loads(b'{"a": 1, "a": 2}') == {"a": 2}  # the last one wins, as in json.loads
    with pytest.raises(RecursionError):
        jsonfast.loads(b"[" * DEEP + b"]" * DEEP)
    with pytest.raises(UnicodeDecodeError):
        jsonfast.loads(b"\xff")


# --- properties -------------------------------------------------------------------------------------

CHARACTERS = st.characters(exclude_categories=())  # surrogates included
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(CHARACTERS, max_size=8)
)
KEYS = st.text(CHARACTERS, max_size=4)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(CHARACTERS, max_size=4), children, max_size=4)
    ),
    max_leaves=25,
)
ENCODINGS = st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
NUMBERS = st.from_regex(r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,4})?", fullmatch=True)
JSONISH = st.text(alphabet='{}[]",:0123456789.eE+-truefalsnNaIiy \\/u\t\n\r\x00\x1fé\ud800', max_size=6)


@settings(max_examples=400, deadline=None, database=None)
@given(VALUES, st.booleans(), st.sampled_from([None, 0, 2]), ENCODINGS)
def test_json_texts_decode_as_with_the_standard_library(
    value: Any, ascii_only: bool, indent: Any, encoding: str
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert_same_as_json(text.encode(encoding, "surrogatepass"))


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(NUMBERS, min_size=1, max_size=4))
@example(["123456789012345678"])
@example(["1234567890123456789"])
@example(["0.30000000000000004441"])
def test_numbers_decode_as_with_the_standard_library(numbers: list[str]) -> None:
    assert_same_as_json(f"[{','.join(numbers)}]".encode())
    assert_same_as_json(numbers[0].encode())


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "é", ""]), SCALARS), max_size=6))
def test_duplicate_keys_keep_the_last_as_with_the_standard_library(pairs: list[tuple[str, Any]]) -> None:
    text = "{" + ",".join(f"{json.dumps(key)}:{json.dumps(item)}" for key, item in pairs) + "}"
    assert_same_as_json(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=600, deadline=None, database=None)
@given(VALUES, st.data())
def test_damaged_json_texts_fail_or_decode_as_with_the_standard_library(value: Any, data: st.DataObject) -> None:
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 3)))
    damaged = text[:start] + data.draw(JSONISH) + text[end:]
    assert_same_as_json(damaged.encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None, database=None)
@given(st.binary(max_size=64))
@example(b"\xef\xbb\xbf")
@example(b"\x00")
def test_arbitrary_bytes_fail_or_decode_as_with_the_standard_library(body: bytes) -> None:
    assert_same_as_json(body)


# --- without orjson ---------------------------------------------------------------------------------

WITHOUT_ORJSON = """
import json, sys
sys.modules["orjson"] = None  # `import orjson` now raises ImportError, as when the wheel is missing
from bench.parse_cost import sandbox_bodies
from lib import jsonfast
assert jsonfast.DECODER == "json", jsonfast.DECODER
assert jsonfast.loads(b'{"a": [1, 2.5, "x", null]}') == {"a": [1, 2.5, "x", None]}
assert jsonfast.loads(b"18446744073709551616") == 18446744073709551616
try:
    jsonfast.loads(b"{")
except ValueError:
    print("refused")
"""


def test_without_the_orjson_wheel_the_standard_library_decodes() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_ORJSON],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused"]


# --- through the HTTP client ------------------------------------------------------------------------


@pytest.fixture
def body_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """Answers GET /<name> with the body registered under that name, as application/json."""
    bodies: dict[str, bytes] = {}

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            body = bodies[self.path.lstrip("/")]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    handler: type[BaseHTTPRequestHandler] = Handler
    server = LocalHttpServer(handler)
    try:
        yield server.base_url, bodies
    finally:
        server.stop()


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe\xfd", b"[" * DEEP + b"]" * DEEP, b"[" * DEEP, b'{"a": 1', b"<html>not json</html>"],
    ids=["empty", "not-utf8", "too-deep", "unclosed-deep", "truncated", "html"],
)
def test_a_body_no_decoder_takes_is_a_clean_invalid_json_error(
    body_server: tuple[str, dict[str, bytes]], body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    base_url, bodies = body_server
    bodies["x"] = body
    with pytest.raises(ProviderResponseError, match=r"^Calendly answered with invalid JSON$"):
        HttpClient().get_json(f"{base_url}/x", deadline=Deadline.after(10), cap_s=5, what="Calendly")


def test_bodies_only_the_standard_library_takes_still_decode_through_the_client(
    body_server: tuple[str, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    base_url, bodies = body_server
    bodies["nan"] = b'{"value": NaN, "big": 18446744073709551616}'
    bodies["bom"] = '\ufeff{"slots": ["2026-12-01T09:00:00Z"]}'.encode()
    client = HttpClient()
    decoded = client.get_json(f"{base_url}/nan", deadline=Deadline.after(10), cap_s=5, what="API")
    assert math.isnan(decoded["value"]) and decoded["big"] == 18446744073709551616
    assert client.get_json(f"{base_url}/bom", deadline=Deadline.after(10), cap_s=5, what="API") == {
        "slots": ["2026-12-01T09:00:00Z"]
    }
