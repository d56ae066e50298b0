"""How a local session stops: every way people stop things (Ctrl-C, a closed terminal, `timeout`, a
container stop, the parent `make` killed) ends in the same clean-up, and a killed session leaves
nothing running that the next one cannot find."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class StopRequested(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so no `except Exception` on
    the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name


class SessionBusy(Exception):
    """Another live session holds the state folder."""


class StopGuard:
    """Turns the stop signals into StopRequested in the main thread, except while a component starts
    (`with guard.held():`, which raises on leaving) and once clean-up has begun (`stopping()`): a
    component is then either not started or registered for stopping, and clean-up runs to its end
    even when a second signal comes (`timeout` signals the process group, `make` forwards nothing)."""

    def __init__(self) -> None:
        self._held = 0
        self._pending: int | None = None
        self._stopping = False

    def install(self) -> StopGuard:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)
        return self

    def stopping(self) -> None:
        """Clean-up starts: from now on signals are ignored."""
        self._stopping = True

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if self._held == 0 and self._pending is not None and not self._stopping:
            self._stopping = True
            raise StopRequested(self._pending)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            return
        if self._held:
            self._pending = self._pending or signum
            return
        self._stopping = True
        raise StopRequested(signum)


def exit_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send `signum` to this process when its parent exits (Linux; elsewhere nothing).

    `make` does not pass SIGTERM or SIGHUP on to its recipe, so `kill <make's pid>` would otherwise
    leave the session running without anyone to stop it."""
    if not sys.platform.startswith("linux"):
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    if prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes a child receive SIGTERM when the process that started it dies, even by
    SIGKILL (Linux; elsewhere None). The child only calls prctl and getppid before its exec."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return in_child


@contextmanager
def session_lock(path: Path) -> Iterator[None]:
    """Hold `path` for this session. The kernel releases the lock when the process ends, however it
    ends, so a lock that is held means a live session, and anything a dead one left behind can be
    stopped safely."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
            raise SessionBusy(f"another local run (pid {holder}) is using {path.parent}") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)
