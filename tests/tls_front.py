"""A TLS front for the embedded PostgreSQL, whose build has no SSL support ("SSL is not supported by this
build"): it speaks PostgreSQL's own TLS negotiation (SSLRequest answered with "S", then the handshake
with a certificate of the test's making) and relays the decrypted protocol to the real server.

So the function's side of TLS (what it sends, what it verifies, when it falls back) meets a real TLS
server with the exact wire behaviour of a PostgreSQL server that has `ssl = on`.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading
from pathlib import Path

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
RELAY_CHUNK = 65536


class PostgresTlsFront:
    """Listens on 127.0.0.1:`port` in front of the server at `backend`; records, per accepted session,
    "plain", the TLS version it negotiated, or "rejected" (the client gave up during the handshake)."""

    def __init__(self, backend: tuple[str, int], cert_file: Path, key_file: Path) -> None:
        self._backend = backend
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_file, key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.sessions: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="tls-front").start()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _record(self, what: str) -> None:
        with self._lock:
            self.sessions.append(what)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            first = _read_exactly(client, 8)
            if first == SSL_REQUEST:
                client.sendall(b"S")
                try:
                    client = self._context.wrap_socket(client, server_side=True)
                except (ssl.SSLError, OSError):
                    self._record("rejected")  # the client refused our certificate
                    client.close()
                    return
                self._record(str(client.version()))
                opening = b""
            else:
                self._record("plain")
                opening = first
            backend = socket.create_connection(self._backend)
            backend.sendall(opening)
            _relay(client, backend)
        except OSError:
            pass
        finally:
            client.close()


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed during the opening")
        data += chunk
    return data


def _relay(client: socket.socket, backend: socket.socket) -> None:
    """Copy both ways on one thread (an SSL socket must not be read and written from two at once)."""
    try:
        while True:
            pending = isinstance(client, ssl.SSLSocket) and client.pending() > 0
            readable, _, _ = select.select([client, backend], [], [], 0 if pending else 1.0)
            if pending and client not in readable:
                readable.append(client)
            for source, target in ((client, backend), (backend, client)):
                if source in readable:
                    data = source.recv(RELAY_CHUNK)
                    if not data:
                        return
                    target.sendall(data)
    finally:
        backend.close()
