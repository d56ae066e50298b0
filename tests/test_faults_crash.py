"""Fault 2, crash: the function process is SIGKILLed mid-run. The lock is freed with the dead session,
the next process runs at once, and every cache row is the old one or a complete new one."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime

import pytest
import requests

from lib import db as dbmodule
from lib.db import connect
from lib.dburl import parse_database_url
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.dbtools import CacheRow, Seeder
from tests.faults_support import (  # noqa: F401 - secret_scan is a fixture
    FunctionProcess,
    coherent_new_row,
    secret_scan,
    wait_for,
)
from tests.helpers import assert_invariants, hours_from_now, iso

pytestmark = pytest.mark.usefixtures("secret_scan")

SLOW_S = 30.0


def ghl_id(name: str) -> str:
    return f"{name}Calendar000000000"[:20]


def seed_workspace(seed: Seeder, sandbox: ProviderSandbox, name: str, *, slow: bool, cached: bool) -> None:
    fault = Fault(latency_s=SLOW_S) if slow else None
    sandbox.add_ghl_calendar(ghl_id(name), weekday_slots(datetime.now(UTC), 31), fault=fault)
    seed.client(name, f"agency-{name}")
    url = f"https://api.leadconnectorhq.com/widget/booking/{ghl_id(name)}"
    link_id = seed.link(name, url, link_type="ghl")
    if cached:
        seed.cache(
            name,
            slots=[iso(hours_from_now(-1)), iso(hours_from_now(26)), iso(hours_from_now(50))],
            range_start=hours_from_now(-2),
            stale_at=hours_from_now(-1),
            calendar_link_id=link_id,
            calendar_url=url,
            calendar_type="ghl",
            provider_meta={"ghlCalendarId": ghl_id(name)},
        )


def lock_held(seed: Seeder) -> bool:
    return bool(seed.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0])


def start_run_in_background(function: FunctionProcess, query: str) -> list[BaseException]:
    failures: list[BaseException] = []

    def call() -> None:
        try:
            function.post(query, timeout=60)
        except requests.RequestException as exc:  # expected: the process dies under it
            failures.append(exc)

    threading.Thread(target=call, daemon=True).start()
    return failures


@pytest.mark.slow
def test_a_killed_run_leaves_old_or_complete_rows_and_the_next_process_gets_the_lock(
    env: dict[str, str], seed: Seeder, sandbox: ProviderSandbox
) -> None:
    fast = ["fastA", "fastB", "fastNew"]  # refreshed and written before the kill (fastNew had no row)
    slow = ["slowA", "slowB", "slowNew"]  # still waiting for their provider when the process dies
    for name in fast + slow:
        seed_workspace(seed, sandbox, name, slow=name in slow, cached=not name.endswith("New"))
    before = seed.rows()
    with FunctionProcess(env["DATABASE_URL"], sandbox.base_url) as function:
        failures = start_run_in_background(function, "timeBudgetMs=40000&concurrency=6")
        wait_for(lambda: all(sandbox.requests_for(ghl_id(name)) for name in slow), what="slow requests")
        wait_for(lambda: set(fast) <= _refreshed(seed.rows(), before), what="fast rows written")
        assert lock_held(seed)
        function.kill()
        killed_at = time.monotonic()
    # PostgreSQL ends the dead client's session and its lock with it.
    freed_after = wait_for(lambda: not lock_held(seed), timeout=10, what="lock freed")
    wait_for(lambda: bool(failures), timeout=5, what="the killed call to fail")
    after = seed.rows()
    for name in fast:
        row = after[name]
        old = before.get(name)
        problems = coherent_new_row(row, old) if old else coherent_new_row(row, _as_if_never_written(row))
        assert not problems, f"{name}: {problems}"
        assert len(row.slots) > 10
    for name in ("slowA", "slowB"):
        assert after[name] == before[name], f"{name} was touched by the killed run"
    assert "slowNew" not in after
    # A new process gets the lock at once and finishes the job.
    for name in slow:
        sandbox.set_fault(ghl_id(name), None)
    with FunctionProcess(env["DATABASE_URL"], sandbox.base_url) as successor:
        report = successor.post("timeBudgetMs=10000").json()
        got_lock_after = time.monotonic() - killed_at
    assert "skipped" not in report, report
    assert_invariants(report)
    assert (report["checked"], report["refreshed"], report["failed"]) == (6, 6, 0)
    final = seed.rows()
    for name in slow:
        old = before.get(name)
        row = final[name]
        assert not coherent_new_row(row, old or _as_if_never_written(row)), name
    assert freed_after < 2.0
    assert got_lock_after < 15.0  # mostly the new process's start-up


@pytest.mark.slow
def test_a_run_killed_before_its_first_write_changes_nothing(
    env: dict[str, str], seed: Seeder, sandbox: ProviderSandbox
) -> None:
    for name in ("slowA", "slowB", "slowNew"):
        seed_workspace(seed, sandbox, name, slow=True, cached=name != "slowNew")
    before = seed.rows()
    with FunctionProcess(env["DATABASE_URL"], sandbox.base_url) as function:
        start_run_in_background(function, "timeBudgetMs=40000")
        wait_for(lambda: sandbox.requests_for(ghl_id("slowB")) == 1, what="requests in flight")
        function.kill()
    wait_for(lambda: not lock_held(seed), timeout=10, what="lock freed")
    assert seed.rows() == before


def _refreshed(rows: dict[str, CacheRow], before: dict[str, CacheRow]) -> set[str]:
    return {name for name, row in rows.items() if name not in before or row.fetched_at > before[name].fetched_at}


def _as_if_never_written(row: CacheRow) -> CacheRow:
    """A stand-in previous row for a workspace that had none (only its id and fetchedAt are compared)."""
    return CacheRow(**{**row.__dict__, "fetched_at": datetime(2000, 1, 1, tzinfo=UTC)})


def test_the_lock_connection_asks_for_keepalive_probes(db_url: str) -> None:
    """Client side: the lock connection asks for TCP keepalives. Read back only: on loopback the peer's
    kernel always answers the probes (tests/test_faults_silent_peer.py exercises a silent peer)."""
    target = parse_database_url(db_url, variable="DATABASE_URL")
    with connect(target, timeout_s=5) as database:
        sock: socket.socket = database._connection._usock
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == dbmodule.KEEPALIVE_IDLE_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == dbmodule.KEEPALIVE_INTERVAL_S
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == dbmodule.KEEPALIVE_COUNT
    bound = dbmodule.KEEPALIVE_IDLE_S + dbmodule.KEEPALIVE_INTERVAL_S * dbmodule.KEEPALIVE_COUNT
    assert bound <= 30


def test_the_lock_session_asks_the_server_for_keepalives_and_an_idle_limit(db_url: str) -> None:
    """Server side: the lock lives in the server's session, so the server must notice a client that
    vanished without closing its socket; the session asks for keepalives instead of the system's 2 h,
    and for an idle limit. Read back only, as above."""
    target = parse_database_url(db_url, variable="DATABASE_URL")
    with connect(target, timeout_s=5) as database:
        idle, interval, count = (
            int(database.run(f"SHOW {name}")[0][0])
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        )
        idle_limit = database.run("SHOW idle_session_timeout")[0][0]
    assert (idle, interval, count) == (
        dbmodule.KEEPALIVE_IDLE_S,
        dbmodule.KEEPALIVE_INTERVAL_S,
        dbmodule.KEEPALIVE_COUNT,
    )
    # And the limit that frees the lock of a peer whose kernel still answers (tests/test_faults_silent_peer.py).
    assert idle_limit == f"{dbmodule.SESSION_IDLE_LIMIT_S}s"
