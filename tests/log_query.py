"""Enough of Cloud Logging to test the monitoring definitions against the function's real log lines.

`cloud_run_entry` turns one line the function wrote (LOG_FORMAT=json) into the LogEntry Cloud Run makes
of it: the special keys (`severity`, `logging.googleapis.com/...`) leave the payload, the rest becomes
`jsonPayload`, and the entry gets the cloud_run_revision resource. `matches` evaluates the subset of the
Logging query language the definitions use (comparisons `= != > >= < <= =~ !~ :`, `:*` for presence,
AND, OR, NOT, parentheses; a comparison on a missing field is false, so NOT of it is true, as in Cloud
Logging). `extract` resolves an EXTRACT(field) extractor. Anything outside that subset is an error, so
a definition cannot silently use something this stand-in does not understand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SEVERITY_ORDER = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
TOKEN = re.compile(
    r"""\s*(?:(?P<open>\()|(?P<close>\))|(?P<op>=~|!~|>=|<=|!=|=|>|<|:)|(?P<string>"(?:[^"\\]|\\.)*")"""
    r"""|(?P<word>[^\s()"=!<>:]+))"""
)
FIELD = re.compile(r"^[A-Za-z@][A-Za-z0-9_@]*(\.[A-Za-z@][A-Za-z0-9_@/]*)*$")
EXTRACTOR = re.compile(r"^EXTRACT\((?P<field>[^)]+)\)$")
MISSING = object()


class QueryError(ValueError):
    """The filter uses something outside the supported subset, or is malformed."""


def cloud_run_entry(line: dict[str, Any], service: str, region: str) -> dict[str, Any]:
    payload = {key: value for key, value in line.items() if key != "severity" and not key.startswith("logging.")}
    return {
        "logName": "projects/demo-project/logs/run.googleapis.com%2Fstdout",
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": service, "location": region}},
        "severity": line.get("severity", "DEFAULT"),
        "jsonPayload": payload,
    }


def resolve(entry: dict[str, Any], field: str) -> Any:
    """The value at a dotted field path, or MISSING."""
    if not FIELD.match(field):
        raise QueryError(f"not a field path: {field!r}")
    value: Any = entry
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def extract(extractor: str, entry: dict[str, Any]) -> Any:
    match = EXTRACTOR.match(extractor)
    if match is None:
        raise QueryError(f"only EXTRACT(field) is supported here: {extractor!r}")
    return resolve(entry, match["field"])


def extractor_field(extractor: str) -> str:
    match = EXTRACTOR.match(extractor)
    if match is None:
        raise QueryError(f"only EXTRACT(field) is supported here: {extractor!r}")
    return match["field"]


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: str

    def test(self, entry: dict[str, Any]) -> bool:
        actual = resolve(entry, self.field)
        if actual is MISSING or actual is None:
            return False
        if self.op == ":":
            return self.value == "*" or self.value.lower() in _text(actual).lower()
        if self.op in ("=~", "!~"):
            return (re.search(self.value, _text(actual)) is not None) == (self.op == "=~")
        if self.op in ("=", "!="):
            return (_text(actual) == self.value) == (self.op == "=")
        left, right = _ordered(self.field, actual, self.value)
        return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[self.op]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ordered(field: str, actual: Any, value: str) -> tuple[float, float]:
    if field == "severity":
        return float(SEVERITY_ORDER.index(str(actual))), float(SEVERITY_ORDER.index(value))
    try:
        return float(actual), float(value)
    except (TypeError, ValueError) as exc:
        raise QueryError(f"{field}: cannot order {actual!r} and {value!r}") from exc


Node = tuple[str, Any]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = self._tokenize(text)
        self.position = 0

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise QueryError(f"cannot read the filter at {text[position:]!r}")
            kind = match.lastgroup
            assert kind is not None
            tokens.append((kind, match[kind]))
            position = match.end()
        return tokens

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise QueryError("the filter ends too early")
        self.position += 1
        return token

    def parse(self) -> Node:
        node = self.parse_or()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()}")
        return node

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.peek() == ("word", "OR"):
            self.take()
            parts.append(self.parse_and())
        return ("or", parts) if len(parts) > 1 else parts[0]

    def parse_and(self) -> Node:
        parts = [self.parse_not()]
        while (token := self.peek()) is not None and token not in (("word", "OR"), ("close", ")")):
            if token == ("word", "AND"):
                self.take()
            parts.append(self.parse_not())
        return ("and", parts) if len(parts) > 1 else parts[0]

    def parse_not(self) -> Node:
        if self.peek() == ("word", "NOT"):
            self.take()
            return ("not", self.parse_not())
        if self.peek() == ("open", "("):
            self.take()
            node = self.parse_or()
            if self.take() != ("close", ")"):
                raise QueryError("unbalanced parentheses")
            return node
        kind, field = self.take()
        if kind != "word":
            raise QueryError(f"expected a field, got {field!r}")
        op_kind, op = self.take()
        if op_kind != "op":
            raise QueryError(f"expected an operator after {field}, got {op!r}")
        value_kind, value = self.take()
        if value_kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif value_kind != "word":
            raise QueryError(f"expected a value after {field}{op}, got {value!r}")
        resolve({}, field)  # validates the path
        return ("cmp", Comparison(field, op, value))


def parse(text: str) -> Node:
    return _Parser(text).parse()


def _evaluate(node: Node, entry: dict[str, Any]) -> bool:
    kind, body = node
    if kind == "cmp":
        result: bool = body.test(entry)
        return result
    if kind == "not":
        return not _evaluate(body, entry)
    results = (_evaluate(part, entry) for part in body)
    return all(results) if kind == "and" else any(results)


def matches(text: str, entry: dict[str, Any]) -> bool:
    return _evaluate(parse(text), entry)


def fields(text: str) -> list[str]:
    """Every field path a filter compares."""
    found: list[str] = []

    def walk(node: Node) -> None:
        kind, body = node
        if kind == "cmp":
            found.append(body.field)
        elif kind == "not":
            walk(body)
        else:
            for part in body:
                walk(part)

    walk(parse(text))
    return found
