"""The HTTP/1.1 plumbing: a threaded loopback server that hands every request to one callable.

It knows nothing of providers; it tracks open connections so a stop can unblock
handler threads parked on keep-alive reads or hung faults.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from sandbox.replies import Reply

# (method, path with query, request headers) -> the reply, or None to drop the connection.
RequestHandler = Callable[[str, str, dict[str, str]], Reply | None]


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], answer: RequestHandler) -> None:
        self.answer = answer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Unblock handler threads parked on keep-alive reads or hung faults."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up mid-answer are expected; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes
    server_version = "ProviderSandbox/1.0"
    sys_version = ""

    @property
    def _owner(self) -> SandboxServer:
        return cast(SandboxServer, self.server)

    def setup(self) -> None:
        super().setup()
        self._owner.track(self.connection, open_=True)

    def finish(self) -> None:
        self._owner.track(self.connection, open_=False)
        with contextlib.suppress(OSError):  # the client may already be gone
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sandbox keeps its own request log."""

    def _answer(self) -> None:
        # Drain any request body so the next request on this keep-alive connection parses cleanly.
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        reply = self._owner.answer(self.command, self.path, dict(self.headers.items()))
        if reply is None:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()
