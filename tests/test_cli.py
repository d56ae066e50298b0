"""The function served by the real `functions-framework` command, called over a socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from devtools.pgserver import free_port
from sandbox.providers import weekday_slots
from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent


def test_functions_framework_command_serves_the_function(env, seed, sandbox):
    sandbox.add_hubspot_link("alice", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/alice")
    port = free_port()
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
    server = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "functions-framework did not start"
                time.sleep(0.1)
        unauthorized = requests.post(url, timeout=10)
        assert unauthorized.status_code == 401
        answer = requests.post(
            url, headers={"Authorization": f"Bearer {SECRET}", "User-Agent": "Google-Cloud-Scheduler"}, timeout=60
        )
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        report = answer.json()
        assert (report["checked"], report["refreshed"]) == (1, 1)
        assert len(seed.row("c1").slots) > 100
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode(errors="replace")
    assert SECRET not in output
