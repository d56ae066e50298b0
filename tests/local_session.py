"""A `make run` session under test: the process, its output read as it comes, and the processes of
this machine read from /proc (Linux)."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
READY = "calling it every"


def session_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh terminal: no database of ours, no log level, no runtime folder (as
    in containers, where platformdirs used to warn)."""
    env = {**os.environ, **extra}
    for name in ("DATABASE_URL", "DIRECT_URL", "LOG_LEVEL", "XDG_RUNTIME_DIR", "PYTHONWARNINGS"):
        env.pop(name, None)
    return env


def local_run_command(state_dir: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "devtools.local_run", "--state-dir", str(state_dir), "--latency-ms", "0", *options]


class Session:
    """A running command whose stdout and stderr are collected line by line. It leads a process group
    of its own, as a terminal's foreground job does, so signalling that group spares the tests."""

    def __init__(self, command: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env or session_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout and self.process.stderr
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], into: list[str], announce: bool) -> None:
        for line in stream:
            into.append(line)
            if announce:
                self._lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match[str]:
        """The first stdout line (from now on) matching `pattern`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.process.poll() is not None and self._lines.empty()):
                raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output()}")
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            found = re.search(pattern, line)
            if found:
                return found

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=30)  # a grandchild (make's recipe) may hold the pipes a little longer
        return code

    def output(self) -> str:
        return "".join(self.stdout) + "\n--- stderr ---\n" + "".join(self.stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie no longer does: it only waits for its parent to reap it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Every process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def wait_until_gone(pids: set[int], timeout: float = 30) -> set[int]:
    """The pids still running after `timeout` (none, hopefully)."""
    deadline = time.monotonic() + timeout
    while True:
        running = {pid for pid in pids if alive(pid)}
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.1)


def postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


def run_once(
    command: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A `--once` run to its end; its exit code is the caller's to judge."""
    return subprocess.run(
        command, cwd=cwd, env=env or session_env(), capture_output=True, text=True, timeout=240, check=False
    )
