"""The HTTP/1.1 wire format the sandbox speaks, as pure functions over bytes.

A lean request-head parser (the standard library's http.server parses every header block
with email.parser, which costs more than everything else a cached answer needs), body
framing (Content-Length or chunked, both read and discarded) and the response bytes, built
in one piece so headers and body leave in one write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from sandbox.replies import Reply

MAX_HEAD_BYTES = 65_536  # http.client refuses longer header lines too
MAX_HEADERS = 100  # as http.client
SERVER_NAME = "ProviderSandbox/1.0"
# The methods http.server's handler answered (others got 501 without reaching the providers).
ANSWERED_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


class BadRequest(Exception):
    """A request the sandbox cannot frame: answered with `status`, then the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RequestHead:
    method: str
    target: str
    headers: dict[str, str]  # as sent (names keep their case; a repeated name keeps its last value)
    keep_alive: bool
    content_length: int
    chunked: bool
    expect_continue: bool


def head_end(buffer: bytes | bytearray) -> int | None:
    """Where the head that `buffer` starts with ends (just past its blank line), or None if incomplete."""
    crlf = buffer.find(b"\r\n\r\n")
    bare = buffer.find(b"\n\n")  # http.server accepted bare newlines too
    ends = [end + size for end, size in ((crlf, 4), (bare, 2)) if end >= 0]
    if ends:
        return min(ends)
    if len(buffer) > MAX_HEAD_BYTES:
        raise BadRequest(431, "request header fields too large")
    return None


def parse_head(raw: bytes) -> RequestHead:
    """The request line and headers of one request (`raw` ends with its blank line)."""
    if len(raw) > MAX_HEAD_BYTES:
        raise BadRequest(431, "request header fields too large")
    lines = raw.decode("iso-8859-1").split("\n")
    words = lines[0].rstrip("\r").split()
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise BadRequest(400, f"bad request line {lines[0].rstrip()!r}")
    method, target, version = words
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505, f"unsupported version {version!r}")
    headers: dict[str, str] = {}
    last = ""
    for raw_line in lines[1:]:
        line = raw_line.rstrip("\r")
        if not line:
            continue
        if line[0] in " \t" and last:  # an obsolete folded continuation of the previous header
            headers[last] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest(400, f"bad header line {line!r}")
        headers[name] = value.lstrip(" \t")
        last = name
    if len(headers) > MAX_HEADERS:
        raise BadRequest(431, "too many headers")
    fields = {name.lower(): value for name, value in headers.items()}
    connection = fields.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    chunked = "chunked" in fields.get("transfer-encoding", "").lower()
    length = 0 if chunked else _content_length(fields.get("content-length"))
    # A path starting with "//" is collapsed, as http.server does (it would read as a network path).
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    expect = fields.get("expect", "").lower() == "100-continue" and version == "HTTP/1.1"
    return RequestHead(method, target, headers, keep_alive, length, chunked, expect)


def _content_length(value: str | None) -> int:
    if value is None:
        return 0
    if not value.strip().isdigit():
        raise BadRequest(400, f"bad Content-Length {value!r}")
    return int(value)


def chunked_end(buffer: bytes | bytearray, start: int) -> int | None:
    """Where a chunked body that starts at `start` ends (trailers included), or None if incomplete."""
    at = start
    while True:
        line_end = buffer.find(b"\n", at)
        if line_end < 0:
            return None
        size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BadRequest(400, "bad chunk size") from None
        if size < 0:
            raise BadRequest(400, "bad chunk size")
        at = line_end + 1
        if size == 0:
            return _trailers_end(buffer, at)
        if len(buffer) < at + size + 1:
            return None
        at += size
        # The chunk's data ends with CRLF (or a bare LF).
        if buffer[at : at + 2] == b"\r\n":
            at += 2
        elif buffer[at : at + 1] == b"\n":
            at += 1
        elif len(buffer) < at + 2:
            return None
        else:
            raise BadRequest(400, "chunk data not followed by a line end")


def _trailers_end(buffer: bytes | bytearray, at: int) -> int | None:
    while True:
        line_end = buffer.find(b"\n", at)
        if line_end < 0:
            return None
        blank = not bytes(buffer[at:line_end]).strip()
        at = line_end + 1
        if blank:
            return at


_STATUS_LINES: dict[int, bytes] = {}
_date_cache: tuple[int, bytes] = (0, b"")


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
    return line


def _date_header() -> bytes:
    global _date_cache
    second = int(time.time())
    if _date_cache[0] != second:
        _date_cache = (second, f"Date: {formatdate(second, usegmt=True)}\r\n".encode("latin-1"))
    return _date_cache[1]


def response_bytes(reply: Reply, *, close: bool, head_only: bool = False) -> bytes:
    """Status line, headers and body of `reply` in one piece (no body for a HEAD request)."""
    lines = [
        _status_line(reply.status),
        b"Server: " + SERVER_NAME.encode() + b"\r\n",
        _date_header(),
        b"Content-Type: %s\r\nContent-Length: %d\r\n" % (reply.content_type.encode("latin-1"), len(reply.body)),
    ]
    lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in reply.headers)
    if close:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_only:
        lines.append(reply.body)
    return b"".join(lines)


def error_reply(status: int, message: str) -> Reply:
    """The plain answer to a request the sandbox could not take (bad framing, unknown method)."""
    return Reply(status, f"{status} {message}\n".encode("utf-8", "replace"), "text/plain; charset=utf-8")


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
