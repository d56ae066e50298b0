"""`make run`: the function's main job on this machine, the way Cloud Scheduler drives it in production.

Starts (unless DATABASE_URL is set) an embedded PostgreSQL whose data persists under .local/,
applies lib/schema.sql, seeds a demo, starts the provider sandbox and the function under the
`functions-framework` command with the secret kept in .local/cron-secret (mode 0600), then calls it
once a minute (POST, bearer secret, Cloud Scheduler's User-Agent) and prints a summary of each run.
Ctrl-C, SIGTERM and SIGHUP stop everything it started; a server left running by a killed session
is stopped at the next start. The function logs errors only (LOG_LEVEL=INFO shows its whole log):
the demo's failures on purpose are in each run's summary already.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import shlex
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from devtools.demo import BROKEN_HUBSPOT_SLUG, seed_demo
from devtools.lifecycle import SessionBusy, StopGuard, StopRequested, exit_with_parent, session_lock
from devtools.lifecycle import die_with_parent as _die_with_parent
from devtools.pgserver import EmbeddedPostgres, admin_connection, apply_schema, free_port
from devtools.pgstaging import ServerSetupError
from sandbox.providers import Fault, ProviderSandbox

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
SECRET_FILE_NAME = "cron-secret"  # noqa: S105 (a file name; the secret is in the file)
SCHEDULER_HEADERS = {"User-Agent": "Google-Cloud-Scheduler", "Content-Type": "application/json"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one call, print the JSON report, stop everything")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between calls (default 60)")
    parser.add_argument("--seed", action="store_true", help="seed the demo even into DATABASE_URL's database")
    parser.add_argument("--latency-ms", type=int, default=150, help="sandbox provider latency (default 150)")
    parser.add_argument("--failure-rate", type=float, default=0.02, help="sandbox random 503 rate (default 0.02)")
    parser.add_argument("--state-dir", type=Path, default=LOCAL_DIR, help="data, secret and lock (default .local)")
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process ends (make)")
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, into a pipe or `tee` too
    if args.exit_with_parent:
        exit_with_parent()
    guard = StopGuard().install()
    try:
        return _session(args, guard)
    except StopRequested:  # a signal between the session's end and its clean-up
        return 0
    except (ServerSetupError, SessionBusy) as error:
        print(f"local run: {error}", file=sys.stderr)
        return 2


def _session(args: argparse.Namespace, guard: StopGuard) -> int:
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as started:
        try:
            started.enter_context(session_lock(state_dir / "session.lock"))
            return _serve(args, state_dir, guard, started)
        except StopRequested as stop:
            print(f"\nstopping ({stop.signal_name})", flush=True)
            return 1 if args.once else 0
        finally:
            guard.stopping()  # the clean-up below runs to its end, whatever signal comes


def _serve(args: argparse.Namespace, state_dir: Path, guard: StopGuard, started: ExitStack) -> int:
    """Start each component so that it is stopped by `started`, then call the function."""
    url = os.environ.get("DATABASE_URL", "").strip()
    embedded = not url
    if embedded:
        with guard.held():
            database = EmbeddedPostgres(state_dir / "postgres")
            started.callback(database.stop)
            database.start()
        url = database.url()
        _say_where(database)
    _prepare_database(url, seed=args.seed or embedded)
    with guard.held():
        sandbox = ProviderSandbox(
            latency_s=args.latency_ms / 1000, failure_rate=args.failure_rate, generate_unknown=True
        )
        started.callback(sandbox.stop)
        sandbox.start()
    sandbox.set_fault(BROKEN_HUBSPOT_SLUG, Fault(status=500, body='{"status":"error","message":"Internal Error"}'))
    print(f"provider sandbox on {sandbox.base_url} (latency {args.latency_ms} ms)")
    secret_file = state_dir / SECRET_FILE_NAME
    secret = session_secret(secret_file)
    port = free_port()
    with guard.held():
        function = start_function(port, url, secret, sandbox.base_url, default_log_level="ERROR", die_with_parent=True)
        started.callback(stop_function, function)
    endpoint = f"http://127.0.0.1:{port}/"
    wait_until_serving(endpoint, function)
    print(how_to_call(endpoint, secret_file))
    cadence = "once" if args.once else f"every {args.every:g} s as Cloud Scheduler does; Ctrl-C stops everything"
    print(f"calling it {cadence}\n", flush=True)
    return _call_loop(endpoint, secret, once=args.once, every=args.every)


def _say_where(database: EmbeddedPostgres) -> None:
    if database.left_over_pid:
        print(f"stopped a PostgreSQL server left running by an earlier session (pid {database.left_over_pid})")
    where = f"data in {_shown(database.home)}"
    if database.relocated:
        where += f", where its server user can reach it; the password stays in {_shown(database.data_dir)}"
    print(f"embedded PostgreSQL on 127.0.0.1:{database.port} ({where})")


def session_secret(path: Path) -> str:
    """The local function's CRON_SECRET, kept in `path` with mode 0600 (made on first use)."""
    if path.exists():
        os.chmod(path, 0o600)
        secret = path.read_text().strip()
        if secret:
            return secret
        path.unlink()
    secret = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as output:
        os.fchmod(output.fileno(), 0o600)
        output.write(secret + "\n")
    return secret


def how_to_call(endpoint: str, secret_file: Path) -> str:
    """How to call the local function by hand: its URL and a curl line reading the secret from its
    file (the secret itself is never printed)."""
    secret = shlex.quote(_shown(secret_file))
    return (
        f"function serving on {endpoint}\n"
        f"call it by hand (the secret is in {_shown(secret_file)}, readable only by you):\n"
        f'  curl -X POST -H "Authorization: Bearer $(cat {secret})" "{endpoint}?mode=due&limit=5"'
    )


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _prepare_database(url: str, *, seed: bool) -> None:
    apply_schema(url)
    if seed:
        connection = admin_connection(url)
        try:
            added = seed_demo(connection)
        finally:
            connection.close()
        if added:
            print(f"seeded {added} demo workspaces")


def start_function(
    port: int,
    database_url: str,
    secret: str,
    sandbox_url: str,
    *,
    output: int | None = None,
    default_log_level: str = "WARNING",
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """The function under the real `functions-framework` command, pointed at the sandbox.

    With `die_with_parent` (only from the main thread, which the kernel takes for the parent) the
    function gets its own session, so it hears signals from us alone, and SIGTERM if we die."""
    env = {
        **os.environ,
        "CRON_SECRET": secret,
        "DATABASE_URL": database_url,
        "CALENDLY_BASE_URL": sandbox_url,
        "HUBSPOT_BASE_URL": sandbox_url,
        "GHL_BASE_URL": sandbox_url,
        "ALLOW_PRIVATE_NETWORK": "true",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", default_log_level),
    }
    env.pop("DIRECT_URL", None)
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target",
        "availability_cron",
        "--source",
        str(ROOT / "main.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=output,
        start_new_session=die_with_parent,
        preexec_fn=_die_with_parent() if die_with_parent else None,  # noqa: PLW1509 (see lifecycle.die_with_parent)
    )


def stop_function(function: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn stops its workers), then SIGKILL if it has not ended within 10 s."""
    function.terminate()
    try:
        function.wait(timeout=10)
    except subprocess.TimeoutExpired:
        function.kill()
        function.wait(timeout=10)


def wait_until_serving(endpoint: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait (up to 60 s: a loaded machine) until something answers HTTP at `endpoint`, or `process` ends."""
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(endpoint, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a worker still loading
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the function exited ({process.returncode}) before serving") from None
            if time.monotonic() > deadline:
                raise RuntimeError("the function did not start within 60 s") from None
            time.sleep(0.2)


def _call_loop(endpoint: str, secret: str, *, once: bool, every: float) -> int:
    headers = {**SCHEDULER_HEADERS, "Authorization": f"Bearer {secret}"}
    while True:
        started = time.monotonic()
        response = requests.post(endpoint, headers=headers, data="{}", timeout=700)
        report: dict[str, Any] = response.json()
        if once:
            print(json.dumps(report, indent=2))
            return 0 if response.status_code == 200 and report.get("success") is True else 1
        print(summarize(response.status_code, report))
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def summarize(status: int, report: dict[str, Any]) -> str:
    """A few readable lines about one run."""
    if status != 200:
        return f"HTTP {status}: {report.get('error')} {report.get('message', report.get('detail', ''))}"
    if report.get("skipped"):
        return f"{report['timestamp']} skipped: {report['reason']}"
    metrics = report["metrics"]
    lines = [
        f"{report['timestamp']}  {report['durationMs']} ms  checked {report['checked']}  "
        f"refreshed {report['refreshed']} (empty {report['emptySlots']})  failed {report['failed']}  "
        f"no-default {report['skippedNoDefault']}  unsupported-length {report['skippedUnsupportedDuration']}  "
        f"backoff {report['skippedBackoff']}  not-started {report['notStarted']}  "
        f"within-budget {report['finishedWithinBudget']}",
        f"    caches {metrics['totalCaches']}  erroring {metrics['erroringCaches']}  due {metrics['dueCaches']}  "
        f"oldest success {metrics['oldestSuccessfulRangeStartAgeMinutes']} min ({metrics['oldestSuccessfulClientId']})",
    ]
    lines += [f"    failed: {error}" for error in report["errors"][:10]]
    lines += [
        f"    held back: {cooldown['heldBack']} {cooldown['provider']} workspaces ({cooldown['reason']})"
        for cooldown in report.get("providerCooldowns", [])
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
