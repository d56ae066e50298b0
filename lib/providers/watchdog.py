"""A time limit on a whole request for the urllib3 paths (tenant pages, unusual or proxied API URLs).

http.client times each recv, not the answer: a server that drips its status line and headers a byte
at a time, each byte inside the read timeout, can hold a worker for hours (up to 100 header lines of
64 KiB each), long after the run that started it has answered. The lean client (wire.py) checks the
answer's total time on every piece; urllib3 gives no such hook before the headers are in. So the
request runs inside `WATCHDOG.bound(by)`, the connection classes below hand their socket to it, and
one daemon thread shuts the socket down when `by` passes: the blocked read returns at once, and the
block raises TimeoutError. A socket is shut down only while its request's bound is open: a request
that ended in time is never touched, and a kept-alive socket cut at its bound is one urllib3 finds
dropped and replaces before reusing it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Watch:
    """One request's bound: the sockets it uses, and whether its time ran out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Duplicates of the request's sockets, as plain sockets: shutting one down shuts down the
        # connection itself, and leaves the original object alone (SSLSocket.shutdown would also drop
        # its TLS state under the reading thread); they stay valid if urllib3 closes the original.
        self._handles: list[socket.socket] = []
        self._open = True
        self._fired = False

    @property
    def fired(self) -> bool:
        """True once the watchdog cut this request's sockets off."""
        with self._lock:
            return self._fired

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._open and not self._fired:
                return
            handle = _handle_of(sock)
            if handle is None:
                return
            if self._open:
                self._handles.append(handle)
                return
        _shut_down(handle)  # the time ran out before this socket was handed over
        handle.close()

    def fire(self) -> None:
        """Shut down every socket of the request (once; a no-op after `close`)."""
        with self._lock:
            if not self._open:
                return
            self._fired, self._open = True, False
            handles, self._handles = self._handles, []
        for handle in handles:
            _shut_down(handle)
            handle.close()

    def close(self) -> None:
        """The request is over: its sockets (kept alive in a pool, maybe) are no longer ours to cut."""
        with self._lock:
            self._open = False
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()


class Watchdog:
    """Shuts down the sockets of requests whose bound has passed, from one daemon thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._due: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()  # ties on the time never compare two Watch objects
        self._thread: threading.Thread | None = None
        self._local = threading.local()

    @contextlib.contextmanager
    def bound(self, by: float) -> Iterator[Watch]:
        """Sockets the calling thread's connections adopt until the block ends are shut down at `by`
        (time.monotonic) if the block is still running then; the error the block then ends with is
        raised as a TimeoutError."""
        watch = Watch()
        outer: Watch | None = getattr(self._local, "watch", None)
        self._local.watch = watch
        with self._condition:
            heapq.heappush(self._due, (by, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="socket-watchdog", daemon=True)
                self._thread.start()
            if self._due[0][2] is watch:  # the soonest now: the thread's wait must be shortened
                self._condition.notify()
        try:
            yield watch
        except Exception as exc:
            if watch.fired:  # whatever the request ran into once its socket was cut, it ran out of time
                raise TimeoutError("the request took longer than its time") from exc
            raise
        finally:
            self._local.watch = outer
            watch.close()

    def adopt(self, sock: socket.socket) -> None:
        """Put `sock` under the calling thread's open bound (with none, it is left alone)."""
        watch: Watch | None = getattr(self._local, "watch", None)
        if watch is not None:
            watch.add(sock)

    def _serve(self) -> None:
        while True:
            with self._condition:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._condition.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, watch = heapq.heappop(self._due)
            watch.fire()  # a no-op for a request that already ended


def _handle_of(sock: socket.socket) -> socket.socket | None:
    """A duplicate of `sock`'s descriptor (TLS sockets included), or None for a closed socket."""
    try:
        return socket.fromfd(sock.fileno(), sock.family, sock.type)
    except OSError:  # closed, or detached: nothing can wait on it
        return None


def _shut_down(sock: socket.socket) -> None:
    # shutdown, not close: it acts on the socket shared by every duplicate, so the thread blocked in
    # recv on the original wakes with end-of-stream; closing would only drop our own descriptor.
    with contextlib.suppress(OSError):  # already closed or never connected: nothing waits on it
        sock.shutdown(socket.SHUT_RDWR)


WATCHDOG = Watchdog()


class WatchedHTTPConnection(HTTPConnection):
    """urllib3's connection, handing its socket to the watchdog while it waits for an answer. (Opening
    one is bounded already: by the connect timeout, and CPython times a TLS handshake as a whole.)"""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is not None:
            WATCHDOG.adopt(self.sock)
        return super().getresponse(*args, **kwargs)


class WatchedHTTPSConnection(HTTPSConnection):
    """WatchedHTTPConnection over TLS."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is not None:
            WATCHDOG.adopt(self.sock)
        return super().getresponse(*args, **kwargs)


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


# For a PoolManager's (or an HTTP proxy's ProxyManager's) pool_classes_by_scheme.
WATCHED_POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": WatchedHTTPConnectionPool,
    "https": WatchedHTTPSConnectionPool,
}
