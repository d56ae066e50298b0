"""The HTTP/1.1 plumbing: one asyncio event loop, on its own thread, serving every connection.

It knows nothing of providers: each request goes to one callable that says how long to wait
and what to send (`sandbox.dispatch.Answer`). Delays are timers on the loop, not sleeping
threads, so a thousand requests waiting out their latency cost no thread wake-ups, and an
answer leaves in one write. Requests on one connection are answered in order (pipelining
works); a stop closes every connection, hung ones included, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable

from sandbox.dispatch import Answer
from sandbox.http11 import (
    ANSWERED_METHODS,
    CONTINUE,
    BadRequest,
    RequestHead,
    chunked_end,
    error_reply,
    head_end,
    parse_head,
    response_bytes,
)
from sandbox.replies import Reply

# (method, path with query, request headers) -> how to answer.
RequestHandler = Callable[[str, str, dict[str, str]], Answer]

_BACKLOG = 256  # benchmarks open many connections at once
_READ_PAUSE_BYTES = 1 << 20  # stop reading a connection whose unanswered input grows past this


class SandboxServer:
    """Serve `answer` on `address` from a background thread until `stop()`."""

    def __init__(self, address: tuple[str, int], answer: RequestHandler) -> None:
        self.answer = answer
        self.connections: set[_Connection] = set()
        # Bound here, in the caller's thread, so a taken port fails `start()` itself.
        self._socket = socket.create_server(address, backlog=_BACKLOG)
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="provider-sandbox", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close every connection (hung and waiting ones too) and end the loop thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._shut_down)
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._loop.close()
        self._socket.close()

    def _run(self) -> None:
        try:
            create = self._loop.create_server(lambda: _Connection(self), sock=self._socket, backlog=_BACKLOG)
            self._server = self._loop.run_until_complete(create)
        finally:
            self._ready.set()  # `start()` returns either way; without a server, the loop is not run
        self._loop.run_forever()

    def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        # Runs after the closes' own callbacks, which close the sockets.
        self._loop.call_soon(self._loop.stop)


class _Connection(asyncio.Protocol):
    """One client connection: parse a request, wait as told, answer, then the next one."""

    def __init__(self, server: SandboxServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: asyncio.TimerHandle | None = None
        self._busy = False  # a request is being waited out (or hung): later input waits its turn
        self._eof = False
        self._paused = False
        self._continued = False  # "100 Continue" already sent for the request being read

    # --- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._busy:
            if len(self._buffer) > _READ_PAUSE_BYTES and not self._paused and self._transport is not None:
                self._transport.pause_reading()
                self._paused = True
            return
        self._serve_next()

    def eof_received(self) -> bool:
        # Keep the socket open for writing: an answer may still be due for what was already sent.
        self._eof = True
        if not self._busy:
            self._serve_next()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
        self._waiting = None
        self._transport = None
        self._server.connections.discard(self)

    def close(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if transport.get_write_buffer_size():
            transport.abort()  # a client that does not read would keep a plain close waiting
        else:
            transport.close()

    # --- requests -------------------------------------------------------------------

    def _serve_next(self) -> None:
        """Answer every complete request in the buffer that needs no waiting; arm a timer for the first that does."""
        while self._open and not self._busy:
            try:
                taken = self._take_request()
            except BadRequest as exc:
                self._send(error_reply(exc.status, str(exc)), close=True)
                return
            if taken is None:
                if self._eof:
                    self.close()
                return
            head = taken
            if head.method not in ANSWERED_METHODS:
                reply = error_reply(501, f"unsupported method {head.method!r}")
                self._send(reply, close=not head.keep_alive, head_only=head.method == "HEAD")
                continue
            try:
                answer = self._server.answer(head.method, head.target, head.headers)
            # A bug in a provider stand-in: drop the connection, as http.server's handler did.
            except Exception:  # noqa: BLE001 - any error means "no answer", never a dead loop
                self.close()
                return
            if answer.hang:
                self._busy = True  # until the client leaves or the sandbox stops
                return
            if answer.delay_s > 0:
                self._busy = True
                loop = asyncio.get_running_loop()
                self._waiting = loop.call_later(answer.delay_s, self._answer_later, head, answer)
                return
            self._answer_now(head, answer)

    def _take_request(self) -> RequestHead | None:
        """The next complete request's head, its body consumed; None until all of it has arrived."""
        buffer = self._buffer
        while buffer[:2] == b"\r\n" or buffer[:1] == b"\n":  # stray line ends between requests
            del buffer[: 2 if buffer[:1] == b"\r" else 1]
        end = head_end(buffer)
        if end is None:
            return None
        head = parse_head(bytes(buffer[:end]))
        if head.chunked:
            body_end = chunked_end(buffer, end)
        else:
            body_end = end + head.content_length if len(buffer) >= end + head.content_length else None
        if body_end is None:
            if head.expect_continue and not self._continued and self._transport is not None:
                self._transport.write(CONTINUE)
                self._continued = True
            return None
        self._continued = False
        del buffer[:body_end]  # bodies are read and discarded: no provider stand-in reads one
        if self._paused and self._transport is not None and len(buffer) <= _READ_PAUSE_BYTES:
            self._transport.resume_reading()
            self._paused = False
        return head

    @property
    def _open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def _answer_later(self, head: RequestHead, answer: Answer) -> None:
        self._waiting = None
        self._busy = False
        if not self._open:
            return
        self._answer_now(head, answer)
        self._serve_next()

    def _answer_now(self, head: RequestHead, answer: Answer) -> None:
        try:
            reply = answer.render()
        except Exception:  # noqa: BLE001 - as above: the connection is dropped, the loop serves on
            self.close()
            return
        self._send(reply, close=not head.keep_alive, head_only=head.method == "HEAD")

    def _send(self, reply: Reply, *, close: bool, head_only: bool = False) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        with contextlib.suppress(OSError):
            transport.write(response_bytes(reply, close=close, head_only=head_only))
        if close:
            transport.close()  # after the answer is flushed; `connection_lost` follows
