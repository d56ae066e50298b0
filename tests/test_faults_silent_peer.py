"""Fault 2b, a half-open lock connection: a loopback proxy between the function and PostgreSQL stops
forwarding mid-run without closing either socket. The run notices at its next statement (the read
timeout) and answers 500; the server, which still sees a live idle session, frees the lock after the
session idle limit. Keepalive probes cannot end this: the proxy's kernel acknowledges them."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from lib import db as dbmodule
from lib import run as runmodule
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.conftest import bearer
from tests.dbtools import Seeder
from tests.faults_support import SilentPeerProxy, secret_scan, wait_for  # noqa: F401 - secret_scan: fixture
from tests.helpers import run_cron

pytestmark = pytest.mark.usefixtures("secret_scan")

LOCK_HOLDER_SQL = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
READ_TIMEOUT_S = 2  # AVAILABILITY_DB_CONNECT_TIMEOUT_S: bounds the connect and every later read
# The production idle limit (30 s) would make this test last 35 s: the suite lowers it, and
# RELIABILITY_FULL_BOUNDS=1 measures the real one.
IDLE_LIMIT_S = dbmodule.SESSION_IDLE_LIMIT_S if os.environ.get("RELIABILITY_FULL_BOUNDS") else 5
MARGIN_S = 8.0  # a loaded two-core machine


def through(url: str, port: int) -> str:
    """`url` with its port replaced by `port` (the proxy's)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit(':', 1)[0]}:{port}"))


def test_a_silent_peer_is_noticed_by_the_run_and_the_server_frees_the_lock(
    app: Any, env: dict[str, str], seed: Seeder, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"hang-{n}" for n in range(3)]  # nothing is written: only the heartbeat talks to the database
    for name in names:
        sandbox.add_hubspot_link(name, weekday_slots(datetime.now(UTC), 3), fault=Fault(hang=True))
        seed.client(name)
        seed.link(name, f"https://meetings.hubspot.com/{name}")
    monkeypatch.setattr(dbmodule, "SESSION_IDLE_LIMIT_S", IDLE_LIMIT_S)
    monkeypatch.setenv("AVAILABILITY_DB_CONNECT_TIMEOUT_S", str(READ_TIMEOUT_S))
    with SilentPeerProxy("127.0.0.1", urlsplit(env["DATABASE_URL"]).port or 5432) as proxy:
        monkeypatch.setenv("DATABASE_URL", through(env["DATABASE_URL"], proxy.port))
        answer: dict[str, Any] = {}

        def call() -> None:
            answer["response"] = app.test_client().post("/?timeBudgetMs=40000", headers=bearer())
            answer["at"] = time.monotonic()

        runner = threading.Thread(target=call)
        runner.start()
        wait_for(lambda: bool(seed.run(LOCK_HOLDER_SQL)) and all(sandbox.requests_for(n) for n in names))
        [[holder]] = seed.run(LOCK_HOLDER_SQL)
        proxy.silence()
        silent_at = time.monotonic()
        runner.join(timeout=40)
        assert not runner.is_alive(), "the run did not end"
        noticed_after = answer["at"] - silent_at
        # The server heard nothing of it (not even the close): the session and its lock are still there.
        still_held = seed.run("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid", pid=holder)
        freed_after = (
            wait_for(lambda: not seed.run(LOCK_HOLDER_SQL), timeout=IDLE_LIMIT_S + MARGIN_S, what="the lock freed")
            + noticed_after
        )
    print(
        f"silent peer: the run answered {noticed_after:.1f} s and the server freed the lock {freed_after:.1f} s "
        f"after the silence (read timeout {READ_TIMEOUT_S} s, idle limit {IDLE_LIMIT_S} s)"
    )
    response = answer["response"]
    assert response.status_code == 500
    body = response.get_json()
    assert (body["success"], body["error"]) == (False, "Lock lost")
    assert "Database unreachable" in body["message"]
    # Noticed at the next heartbeat plus one read timeout, far inside the 40 s budget.
    assert noticed_after < runmodule.HEARTBEAT_INTERVAL_S + READ_TIMEOUT_S + MARGIN_S
    assert still_held, "the proxy let the close through: this test would prove nothing"
    # Freed by the idle limit, counted from the session's last statement (a heartbeat at most
    # HEARTBEAT_INTERVAL_S before the silence); without it, the lock stays held for good.
    assert freed_after < IDLE_LIMIT_S + MARGIN_S
    assert seed.rows() == {}
    # With the lock freed, the next run (straight to the server) takes it and refreshes everything.
    monkeypatch.setenv("DATABASE_URL", env["DATABASE_URL"])
    for name in names:
        sandbox.set_fault(name, None)
    assert run_cron(app.test_client())["refreshed"] == 3
