"""A scripted HTTP server on 127.0.0.1 that writes exact bytes, in the pieces and at the pace a test
chooses (tests/test_wire.py, tests/test_urllib3_paths.py)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

# What the scripted server answers to a request (and its index on its connection, from 0): the bytes
# of the answer, in the pieces it writes them.
Script = Callable[[bytes, int], list[bytes]]


@dataclass
class ScriptedServer:
    """Answers each request with `script(request, index on its connection)`; an empty list closes the
    connection without answering."""

    script: Script
    close_after_answer: bool = False
    drip_s: float = 0.001  # between the pieces: separate segments, the reader must put them together
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/calendars/c1/free-slots"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            buffered = b""
            for index in itertools.count():
                if self._stop.is_set():
                    return
                while b"\r\n\r\n" not in buffered:
                    try:
                        data = connection.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buffered += data
                request, _, buffered = buffered.partition(b"\r\n\r\n")
                self.requests.append(request)
                pieces = self.script(request, index)
                if not pieces:
                    return
                for piece in pieces:
                    try:
                        connection.sendall(piece)
                    except OSError:  # the client gave up
                        return
                    time.sleep(self.drip_s)
                if self.close_after_answer:
                    return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(script: Script, **options: Any) -> ScriptedServer:
        server = ScriptedServer(script, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n"
    return head.encode("latin-1") + body
