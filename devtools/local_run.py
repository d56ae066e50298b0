"""`make run`: the function's main job on this machine, the way Cloud Scheduler drives it in production.

Starts (unless DATABASE_URL is set) an embedded PostgreSQL whose data persists under .local/,
applies lib/schema.sql, seeds a demo, starts the provider sandbox and the function under the
`functions-framework` command with a generated secret, then calls it once a minute (POST, bearer
secret, Cloud Scheduler's User-Agent) and prints a summary of each run. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from devtools.demo import BROKEN_HUBSPOT_SLUG, seed_demo
from devtools.pgserver import EmbeddedPostgres, admin_connection, apply_schema, free_port
from sandbox.providers import Fault, ProviderSandbox

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
SCHEDULER_HEADERS = {"User-Agent": "Google-Cloud-Scheduler", "Content-Type": "application/json"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one call, print the JSON report, stop everything")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between calls (default 60)")
    parser.add_argument("--seed", action="store_true", help="seed the demo even into DATABASE_URL's database")
    parser.add_argument("--latency-ms", type=int, default=150, help="sandbox provider latency (default 150)")
    parser.add_argument("--failure-rate", type=float, default=0.02, help="sandbox random 503 rate (default 0.02)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    database = None
    sandbox = ProviderSandbox(
        latency_s=args.latency_ms / 1000, failure_rate=args.failure_rate, generate_unknown=True
    ).start()
    function = None
    try:
        url = os.environ.get("DATABASE_URL", "").strip()
        if not url:
            database = EmbeddedPostgres(LOCAL_DIR / "postgres").start()
            url = database.url()
            print(f"embedded PostgreSQL on 127.0.0.1:{database.port} (data in .local/postgres)")
        _prepare_database(url, seed=args.seed or database is not None)
        sandbox.set_fault(BROKEN_HUBSPOT_SLUG, Fault(status=500, body='{"status":"error","message":"Internal Error"}'))
        print(f"provider sandbox on {sandbox.base_url} (latency {args.latency_ms} ms)")
        secret = secrets.token_urlsafe(24)
        port = free_port()
        function = start_function(port, url, secret, sandbox.base_url)
        endpoint = f"http://127.0.0.1:{port}/"
        wait_until_serving(endpoint)
        print(f"function serving on {endpoint} (a fresh CRON_SECRET was generated for this session)\n")
        return _call_loop(endpoint, secret, once=args.once, every=args.every)
    except KeyboardInterrupt:
        print("\nstopping")
        return 0
    finally:
        if function is not None:
            function.terminate()
            function.wait(timeout=10)
        sandbox.stop()
        if database is not None:
            database.stop()


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
    port: int, database_url: str, secret: str, sandbox_url: str, *, output: int | None = None
) -> subprocess.Popen[bytes]:
    """The function under the real `functions-framework` command, pointed at the sandbox."""
    env = {
        **os.environ,
        "CRON_SECRET": secret,
        "DATABASE_URL": database_url,
        "CALENDLY_BASE_URL": sandbox_url,
        "HUBSPOT_BASE_URL": sandbox_url,
        "GHL_BASE_URL": sandbox_url,
        "ALLOW_PRIVATE_NETWORK": "true",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
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
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)


def wait_until_serving(endpoint: str) -> None:
    """Wait (up to 30 s) until something answers HTTP at `endpoint`."""
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(endpoint, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # a loaded machine may accept, then answer late
            if time.monotonic() > deadline:
                raise RuntimeError("the function did not start within 30 s") from None
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
