"""Helpers of the fault-injection suite (tests/test_faults_*.py): the function as a real process that
can be killed, raw misbehaving TCP servers, a canary listener, row snapshots, and the secret scan."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from devtools.local_run import start_function, wait_until_serving
from devtools.pgserver import free_port
from lib.dburl import parse_database_url
from tests.conftest import SECRET
from tests.dbtools import CacheRow
from tests.local_http import LocalHttpServer, QuietHandler

# The default cache TTL and lookahead of the function (contract §5).
DEFAULT_TTL = timedelta(milliseconds=60_000)
LOOKAHEAD = timedelta(days=30)
# A bearer token as it would appear if someone logged an Authorization header.
BEARER_PATTERN = re.compile(r"bearer\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)

# Every secret a test of the suite used: what no captured output may contain.
_KNOWN_SECRETS: set[str] = {SECRET}


def register_secret(value: str) -> str:
    """Remember a secret (a password, a token) that no log line may contain; returns it."""
    if value:
        _KNOWN_SECRETS.add(value)
    return value


def password_of(url: str) -> str:
    target = parse_database_url(url, variable="url")
    return target.password or ""


def leaks_in(text: str, secrets: set[str] | None = None) -> list[str]:
    """What in `text` looks like a secret: a known secret value, or a bearer token."""
    found = [f"secret {value[:3]}…" for value in sorted(secrets or _KNOWN_SECRETS) if value and value in text]
    found += [f"bearer token at {match.start()}" for match in BEARER_PATTERN.finditer(text)]
    return found


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    """Poll until `condition()` holds; returns the seconds waited."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - started


# --- the function under the real functions-framework command ---------------------------------------


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc (gunicorn's master forks the worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class FunctionProcess:
    """`functions-framework --target availability_cron` on a free port, its output kept in a file."""

    database_url: str
    sandbox_url: str
    secret: str = SECRET
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _final_output: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FunctionProcess:
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in output()/stop()
        self.process = start_function(
            self.port, self.database_url, self.secret, self.sandbox_url, output=self._log.fileno()
        )
        wait_until_serving(self.url)
        return self

    def post(self, query: str = "", *, timeout: float = 60) -> requests.Response:
        return requests.post(
            f"{self.url}?{query}",
            headers={"Authorization": f"Bearer {self.secret}", "User-Agent": "Google-Cloud-Scheduler"},
            timeout=timeout,
        )

    def kill(self) -> None:
        """SIGKILL the gunicorn worker (which holds the database connection) and its master: a crash."""
        assert self.process is not None
        for child in _children(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> str:
        """Stop the process (if still running) and return everything it printed."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.output()

    def output(self) -> str:
        if self._log is None or self._log.closed:
            return self._final_output
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def __enter__(self) -> FunctionProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        output = self._final_output = self.stop()
        if self._log is not None:
            self._log.close()
        # Every process output of the suite is scanned (issue 6, item 10).
        leaks = leaks_in(output)
        assert not leaks, f"the function process printed secrets: {leaks}"


# --- raw TCP servers that misbehave ------------------------------------------------------------------


class RawServer:
    """A listener on 127.0.0.1 whose `handle(connection)` decides what each connection gets."""

    def __init__(self, handle: Callable[[socket.socket], None], *, family: int = socket.AF_INET) -> None:
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.bind((host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self._handle = handle
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://[::1]:{self.port}" if family == socket.AF_INET6 else f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.accepted += 1
                self._connections.append(connection)
            threading.Thread(target=self._run, args=(connection,), daemon=True).start()

    def _run(self, connection: socket.socket) -> None:
        # One request per connection: closing tells the client not to reuse it.
        with contextlib.suppress(OSError), connection:
            self._handle(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_request(connection: socket.socket) -> bytes:
    """The request head (enough for these servers: they ignore bodies)."""
    connection.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def silent_server() -> RawServer:
    """Accepts, reads nothing, says nothing, until closed."""
    holder: dict[str, RawServer] = {}

    def handle(connection: socket.socket) -> None:
        holder["server"].stopping.wait()

    server = RawServer(handle)
    holder["server"] = server
    return server


def dripping_server(interval_s: float = 1.0) -> RawServer:
    """Answers 200 with a 1000-byte JSON body announced, then sends one byte every `interval_s`."""
    holder: dict[str, RawServer] = {}

    def handle(connection: socket.socket) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n")
        while not holder["server"].stopping.wait(interval_s):
            connection.sendall(b" ")

    server = RawServer(handle)
    holder["server"] = server
    return server


def chunked_flood_server(total_bytes: int) -> RawServer:
    """Answers 200 with a chunked body of `total_bytes` (no Content-Length to refuse it by)."""

    def handle(connection: socket.socket) -> None:
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        sent = 0
        while sent < total_bytes:
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        connection.sendall(b"0\r\n\r\n")

    return RawServer(handle)


def redirect_server(location_for: Callable[[str], str]) -> RawServer:
    """Answers every request with 302 to `location_for(request target)`; records the targets.

    Also serves as an HTTP proxy (a proxy request's target is the absolute URL), which lets a
    public-looking address stand for this loopback server without any packet leaving the machine.
    """
    targets: list[str] = []

    def handle(connection: socket.socket) -> None:
        head = read_request(connection)
        target = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else ""
        targets.append(target)
        location = location_for(target).encode("latin-1")
        connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n")

    server = RawServer(handle)
    server.targets = targets  # type: ignore[attr-defined]
    return server


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    return free_port()


# --- rows ----------------------------------------------------------------------------------------------


def close(a: datetime, b: datetime, seconds: float = 0.002) -> bool:
    return abs((a - b).total_seconds()) <= seconds


def coherent_new_row(row: CacheRow, old: CacheRow, ttl: timedelta = DEFAULT_TTL) -> list[str]:
    """Why `row` is not a complete refreshed row written after `old` (empty when it is one)."""
    problems = []
    if row.id != old.id:
        problems.append("id changed")
    if not row.fetched_at > old.fetched_at:
        problems.append("fetchedAt did not move")
    if not close(row.stale_at, row.fetched_at + ttl):
        problems.append("staleAt is not fetchedAt + TTL")
    if not close(row.range_start, row.fetched_at):
        problems.append("rangeStart is not fetchedAt")
    if not close(row.range_end, row.fetched_at + LOOKAHEAD, 1.0):
        problems.append("rangeEnd is not fetchedAt + lookahead")
    if not close(row.updated_at, row.fetched_at):
        problems.append("updatedAt is not fetchedAt")
    if row.slots != sorted(set(row.slots)):
        problems.append("slots not sorted and unique")
    start, end = _iso(row.range_start), _iso(row.range_end)
    if any(not start <= slot <= end for slot in row.slots):
        problems.append("a slot outside [rangeStart, rangeEnd]")
    if row.last_error is not None and row.slots:
        problems.append("an error with slots on a refreshed row")
    return problems


def _iso(moment: Any) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


# --- the secret scan ------------------------------------------------------------------------------------


@pytest.fixture
def secret_scan(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, db_url: str) -> Iterator[set[str]]:
    """Fails the test when anything it printed or logged holds a secret (cron secret, database
    password, a registered token) or a bearer token. Yields the set of secrets, to add to."""
    register_secret(password_of(db_url))  # function processes of the test are scanned for it too
    secrets = set(_KNOWN_SECRETS)
    yield secrets
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    leaks = leaks_in(text, secrets | _KNOWN_SECRETS)
    # Put the output back so a failing test still shows it.
    print(out)
    assert not leaks, f"secrets in the test's output: {leaks}"


# --- a peer that goes silent ---------------------------------------------------------------------------


class SilentPeerProxy:
    """A loopback TCP proxy in front of `target` that, on `silence()`, stops forwarding in both
    directions without closing either socket: to each end the other end is still connected (its
    kernel acknowledges every segment and keepalive probe) but never says another word, as a hung
    instance or a wedged middlebox would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._silent = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def silence(self) -> None:
        """From now on nothing is forwarded either way; every socket stays open."""
        self._silent.set()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.05)
        while not self._stop.is_set() and not self._silent.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:  # the source closed: pass the close on (only while not silent)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            with contextlib.suppress(OSError):
                sink.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> SilentPeerProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CountingForwarder:
    """An HTTP server on 127.0.0.1 that forwards every GET to `target` (the sandbox) and records how many
    requests were in flight at once: a provider's API host, seen from the outside."""

    def __init__(self, target: str) -> None:
        self.in_flight = 0
        self.peak = 0
        self.requests = 0
        self._lock = threading.Lock()
        owner = self
        upstream = requests.Session()
        upstream.trust_env = False  # straight to the sandbox, whatever proxy the environment names

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                owner._enter()
                try:
                    answer = upstream.get(target + self.path, headers={"Accept": self.headers.get("Accept", "*/*")})
                finally:
                    owner._leave()
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self._server = LocalHttpServer(Handler)
        self.base_url = self._server.base_url

    def _enter(self) -> None:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> CountingForwarder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
