"""The function served by the real `functions-framework` command, called over a socket."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import requests

from devtools.demo import BROKEN_HUBSPOT_SLUG, seed_demo
from devtools.local_run import start_function, wait_until_serving
from devtools.pgserver import free_port
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.conftest import SECRET
from tests.helpers import run_cron


def test_functions_framework_command_serves_the_function(env, seed, sandbox):
    sandbox.add_hubspot_link("alice", weekday_slots(datetime.now(UTC), 31))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/alice")
    port = free_port()
    server = start_function(port, env["DATABASE_URL"], SECRET, sandbox.base_url, output=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_serving(url)
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
        output = b"".join(part or b"" for part in server.communicate(timeout=10)).decode(errors="replace")
    assert SECRET not in output


def test_the_demo_refreshes_locally_and_fails_only_where_it_is_broken_on_purpose(client, seed, monkeypatch):
    # The sandbox as `make run` starts it: every unknown calendar generated, the broken one failing.
    with ProviderSandbox(generate_unknown=True) as sandbox:
        sandbox.set_fault(BROKEN_HUBSPOT_SLUG, Fault(status=500))
        for name in ("CALENDLY_BASE_URL", "HUBSPOT_BASE_URL", "GHL_BASE_URL"):
            monkeypatch.setenv(name, sandbox.base_url)
        assert seed_demo(seed.connection) == 36
        report = run_cron(client)
    assert (report["checked"], report["skippedUnsupportedDuration"]) == (36, 1)
    failed = sorted(error.split(":", 1)[0] for error in report["errors"])
    assert failed == ["broken-hubspot", "broken-page-down", "broken-unsupported"]
    # Nothing was looked up or fetched outside this machine.
    assert not [error for error in report["errors"] if "does not resolve" in error]
    assert report["refreshed"] == 32
