"""A lean HTTP/1.1 client for the providers' API calls on direct connections (issue 12).

Each refresh asks a provider one or two GETs, and at thousands of workspaces a minute the client's
own work was the largest CPU cost of a run after parsing: urllib3 parses the URL twice, http.client
reads the status line and headers through the `email` package, and each layer wraps the socket
again (≈ 0.6 ms of CPU a request here, against ≈ 0.1 for this module; bench/README.md). This module
sends the request as one write on a kept-alive socket and reads the answer with httptools (the
llhttp parser, in C, that uvicorn uses): framing (Content-Length, chunked, end of stream), 1xx
answers and keep-alive are its decisions, not ours.

It serves only what it can serve exactly as urllib3 would (`plain_target`): http(s) URLs with a
plain host name, no proxy (lib/providers/pools.py decides). Timeouts, the body's size and time caps
(lib/providers/body.py) and the certificate check (the CA bundle requests uses, SNI and host name)
are the same as on the urllib3 path.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import httptools
from urllib3 import HTTPHeaderDict

from lib.providers.body import CHUNK_BYTES, Answer, BodyLimit

# An answer's status line and headers: http.client allows 100 lines of 64 KiB; this is ample.
MAX_HEADER_BYTES = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
# What this module sends exactly as urllib3 would: a lower-case host name (no IPv6 literal, no
# trailing or doubled dot), an optional port without leading zeros, a path that needs no quoting and
# no dot segments, and a query as urlencode writes it. Anything else takes the urllib3 path. (Stricter
# than pools.py's _PLAIN_URL, which only decides whether requests' URL preparation can be skipped.)
_PLAIN_TARGET = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9-]|\.(?!\.))*[a-z0-9])(?::([1-9][0-9]{0,4}))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*(?:\?(?:[A-Za-z0-9\-._~+=&*]|%[0-9A-F]{2})*)?)"
)
_MAX_PORT = 65535
# Content-Encoding values decoded (what requests asks for: "gzip, deflate"); others are passed as
# they came, as urllib3 passes an encoding it does not know.
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class MalformedAnswer(ConnectionError):
    """The server's bytes are not an HTTP/1.1 answer (or it closed before finishing one)."""


class UndecodableBody(ValueError):
    """The body does not inflate as its Content-Encoding says (urllib3's DecodeError, worded alike)."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        return self.host if self.port == _DEFAULT_PORTS[self.scheme] else f"{self.host}:{self.port}"


def plain_target(url: str) -> tuple[Origin, str] | None:
    """The origin and request target of `url` when this module can send it unchanged, else None."""
    match = _PLAIN_TARGET.fullmatch(url)
    if match is None or "/." in match.group(4):
        return None
    scheme, host, port_text, target = match.groups()
    port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
    if port > _MAX_PORT:
        return None
    return Origin(scheme, host, port), target


@dataclass
class _Connection:
    sock: socket.socket
    reused: bool = False

    def dropped(self) -> bool:
        """True when the idle socket has something to read: the server closed it (or sent junk)."""
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        with contextlib.suppress(OSError):  # closing a broken socket may fail; it is gone either way
            self.sock.close()


class WirePools:
    """Kept-alive connections per origin, shared by every thread (LIFO: the warmest socket first)."""

    def __init__(self, tls: ssl.SSLContext, *, per_origin: int) -> None:
        self._tls = tls
        self._per_origin = per_origin
        self._idle: dict[Origin, list[_Connection]] = {}
        self._lock = threading.Lock()

    def get(
        self,
        origin: Origin,
        target: str,
        headers: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        limit: BodyLimit,
    ) -> Answer:
        """GET `target` from `origin`. A kept-alive socket the server closed meanwhile is replaced by a
        fresh one once; every other failure is raised (OSError, TimeoutError, MalformedAnswer,
        UnicodeError for a header that is not Latin-1, ProviderError from the body's limits)."""
        lines = [f"GET {target} HTTP/1.1", f"Host: {origin.host_header}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # http.client's encoding of headers
        connection = self._take(origin)
        if connection is not None:
            try:
                return self._exchange(origin, connection, request, read_timeout, limit)
            except _StaleConnection:
                pass  # closed by the server while idle: nothing was answered, ask on a new socket
        connection = self._connect(origin, connect_timeout)
        try:
            return self._exchange(origin, connection, request, read_timeout, limit)
        except _StaleConnection as exc:
            raise MalformedAnswer("the server closed the connection without answering") from exc

    def _exchange(
        self, origin: Origin, connection: _Connection, request: bytes, read_timeout: float, limit: BodyLimit
    ) -> Answer:
        try:
            connection.sock.settimeout(read_timeout)
            connection.sock.sendall(request)
            reader = _AnswerReader(limit)
            answer, keep = reader.read(connection.sock)
        except (ConnectionResetError, BrokenPipeError, _NothingReceived) as exc:
            connection.close()
            if connection.reused:
                raise _StaleConnection from exc
            if isinstance(exc, _NothingReceived):
                raise MalformedAnswer("the server closed the connection without answering") from exc
            raise
        except BaseException:
            connection.close()
            raise
        if keep:
            self._give(origin, connection)
        else:
            connection.close()
        return answer

    def _take(self, origin: Origin) -> _Connection | None:
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                connection = idle.pop() if idle else None
            if connection is None or not connection.dropped():
                return connection
            connection.close()

    def _give(self, origin: Origin, connection: _Connection) -> None:
        connection.reused = True
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self._per_origin:
                idle.append(connection)
                return
        connection.close()

    def _connect(self, origin: Origin, timeout: float) -> _Connection:
        sock = socket.create_connection((origin.host, origin.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the request is one write
            if origin.scheme == "https":
                sock = self._tls.wrap_socket(sock, server_hostname=origin.host)  # handshake under `timeout`
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


_THREAD_BUFFERS = threading.local()


def _read_buffer() -> tuple[bytearray, memoryview]:
    """This thread's receive buffer, kept for the thread's life rather than a fresh 64 KiB per answer."""
    buffer: tuple[bytearray, memoryview] | None = getattr(_THREAD_BUFFERS, "buffer", None)
    if buffer is None:
        data = bytearray(CHUNK_BYTES)
        buffer = _THREAD_BUFFERS.buffer = (data, memoryview(data))
    return buffer


class _StaleConnection(Exception):
    """A kept-alive socket failed before any byte of the answer: safe to ask again on a new one."""


class _NothingReceived(ConnectionError):
    """The server closed the connection before sending a byte."""


@dataclass
class _AnswerReader:
    """httptools' callbacks for one answer: they only collect; checks run between feeds."""

    limit: BodyLimit
    headers: HTTPHeaderDict = field(default_factory=HTTPHeaderDict)
    status: int = 0
    headers_done: bool = False
    complete: bool = False
    keep_alive: bool = False
    pieces: list[bytes] = field(default_factory=list)
    decoded: list[bytes] = field(default_factory=list)
    decoded_size: int = 0
    decoder: _Decoder | None = None
    parser: httptools.HttpResponseParser | None = None

    def read(self, sock: socket.socket) -> tuple[Answer, bool]:
        """Read one answer from `sock`; returns it and whether the connection may be kept."""
        self.parser = httptools.HttpResponseParser(self)
        try:
            self._read_into(self.parser, sock)
        finally:
            # The parser holds this reader (its callbacks) and this reader the parser: without breaking
            # the cycle every answer's buffers wait for the cyclic collector (tens of MB at 128 threads).
            self.parser = None
        return Answer(self.status, self.headers, b"".join(self.decoded)), self.keep_alive

    def _read_into(self, parser: httptools.HttpResponseParser, sock: socket.socket) -> None:
        buffer, view = _read_buffer()
        received = 0
        while not self._finished():
            count = sock.recv_into(buffer)
            if not count:
                self._end_of_stream(received)
                break
            received += count
            if not self.headers_done and received > MAX_HEADER_BYTES:
                raise MalformedAnswer("the answer's headers are too long")
            # Every piece, headers included: a server dripping its status line or headers a byte at a
            # time, each within the read timeout, must not hold the worker past the answer's time.
            self.limit.check_progress(self.decoded_size)
            try:
                parser.feed_data(view[:count])
            except httptools.HttpParserError as exc:
                if not self._finished():  # junk after a whole answer only costs the connection
                    raise MalformedAnswer(f"not an HTTP/1.1 answer ({exc})") from exc
                self.keep_alive = False
            self._take_pieces()

    def _finished(self) -> bool:
        # A method, not the attribute, so that type checkers do not assume `complete` stays what the loop
        # saw: the parser's callbacks set it during feed_data.
        return self.complete

    def _end_of_stream(self, received: int) -> None:
        if received == 0:
            raise _NothingReceived("the server closed the connection without answering")
        framed = "Content-Length" in self.headers or "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if not self.headers_done or framed:
            raise MalformedAnswer("the connection closed before the answer was complete")
        # No length given: the body ends where the connection does (never kept).
        self.complete, self.keep_alive = True, False
        self._take_pieces(final=True)

    def _take_pieces(self, *, final: bool = False) -> None:
        """Decode what the parser handed over, within the body's size and time limits."""
        if self.decoder is None:
            if not self.headers_done:
                return
            self.limit.check_declared(self.headers)
            self.decoder = _Decoder(self.headers.get("Content-Encoding", ""), self.limit)
        pieces, self.pieces = self.pieces, []
        for piece in pieces:
            self._keep(self.decoder.feed(piece, self._room()))
        if final or self.complete:
            self._keep(self.decoder.flush(self._room()))
        self.limit.check_progress(self.decoded_size)

    def _room(self) -> int:
        return self.limit.max_bytes - self.decoded_size

    def _keep(self, data: bytes) -> None:
        if data:
            self.decoded_size += len(data)
            self.limit.check_progress(self.decoded_size)
            self.decoded.append(data)

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.headers = HTTPHeaderDict()
        self.headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        if self.parser is not None:  # always set before the first feed
            self.status = self.parser.get_status_code()
        self.headers_done = not 100 <= self.status < 200  # an interim answer: the real one follows

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done and not self.complete:
            self.complete = True
            self.keep_alive = self.parser is not None and self.parser.should_keep_alive()
        elif self.complete:
            self.keep_alive = False  # a second answer to one request: do not trust the connection


class _Decoder:
    """Content-Encoding undone as the body arrives, never inflating past the cap (a bomb stops early)."""

    def __init__(self, encoding: str, limit: BodyLimit) -> None:
        codings = [part.strip().lower() for part in encoding.split(",") if part.strip()]
        codings = [coding for coding in codings if coding != "identity"]
        self._limit = limit
        known = all(coding in ("gzip", "x-gzip", "deflate") for coding in codings)
        # Applied in reverse: the coding named last was applied last. An unknown one: passed as it came.
        self._stages = [_Inflater(coding) for coding in reversed(codings)] if known else []

    def feed(self, data: bytes, room: int) -> bytes:
        """`data` decoded; more than `room` bytes of output (at any stage) is over the body's cap."""
        for stage in self._stages:
            data = stage.feed(data, room, self._limit)
        return data

    def flush(self, room: int) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.feed(data, room, self._limit) + stage.flush()
        return data


class _Inflater:
    """One gzip or deflate layer (deflate with or without the zlib wrapper; gzip members in a row)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._gzip = coding != "deflate"
        self._inflater: zlib._Decompress | None = None
        self._start = b""

    def feed(self, data: bytes, room: int, limit: BodyLimit) -> bytes:
        """`data` inflated; more than `room` bytes of output is over the body's cap."""
        try:
            return self._inflate(data, room, limit)
        except zlib.error as exc:
            raise UndecodableBody(
                f"Received response with content-encoding: {self._coding}, but failed to decode it."
            ) from exc

    def _inflate(self, data: bytes, room: int, limit: BodyLimit) -> bytes:
        if self._inflater is None:
            self._start += data
            if len(self._start) < 2:
                return b""
            data, self._start = self._start, b""
            self._inflater = zlib.decompressobj(_GZIP_WBITS if self._gzip else _deflate_wbits(data))
        # In steps of CHUNK_BYTES, so that a bomb is stopped one step past the room left, never
        # inflated whole (nor held twice by zlib's output buffer).
        pieces: list[bytes] = []
        size = 0
        while data:
            piece = self._inflater.decompress(data, CHUNK_BYTES)
            size += len(piece)
            if size > room:
                limit.over_cap()
            pieces.append(piece)
            data = self._inflater.unconsumed_tail
            if not data and self._gzip and self._inflater.eof and self._inflater.unused_data:
                data = self._inflater.unused_data  # another gzip member follows
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
        return b"".join(pieces)

    def flush(self) -> bytes:
        if self._inflater is None:
            return self._start  # fewer than two bytes: nothing to inflate (urllib3 passes them on too)
        return self._inflater.flush()


def _deflate_wbits(start: bytes) -> int:
    # "deflate" is zlib-wrapped by the standard, raw by some servers: the header's check tells them apart.
    wrapped = start[0] & 0x0F == 8 and (start[0] << 8 | start[1]) % 31 == 0
    return zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
