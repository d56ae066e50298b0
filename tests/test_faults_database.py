"""Fault 4, the database: down before a run (500 JSON within the connect timeout) and restarted during
a run (an honest end within the budget, then a normal next run). Uses its own embedded server, so
stopping it disturbs no other test."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.pgserver import EmbeddedPostgres, apply_schema, create_database, database_url
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.conftest import bearer
from tests.dbtools import Seeder
from tests.faults_support import register_secret, secret_scan, wait_for  # noqa: F401 - secret_scan: fixture
from tests.helpers import assert_invariants, run_cron

pytestmark = pytest.mark.usefixtures("secret_scan")

BUDGET_MS = 10_000
SLOW_S = 5.0  # the slow providers' latency: the restart must fit well inside it
_databases = iter(range(1_000_000))


@pytest.fixture(scope="module")
def own_server() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server of this module alone (it gets stopped and restarted)."""
    folder = Path(tempfile.mkdtemp(prefix="availability-cron-faults-pg-"))
    server = EmbeddedPostgres(folder)
    server.start()
    register_secret(server.password)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def own_db(own_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> str:
    """A fresh database with the schema on the module's server, made the function's DATABASE_URL."""
    if not (own_server.pgdata / "postmaster.pid").exists():
        own_server.start()  # a previous test left it stopped
    name = f"faults_{next(_databases)}"
    create_database(own_server.url(), name)
    url = database_url(own_server.url(), name)
    apply_schema(url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def seed_workspaces(url: str, sandbox: ProviderSandbox, names: list[str], *, slow: bool) -> None:
    seeder = Seeder(url)
    try:
        for name in names:
            fault = Fault(latency_s=SLOW_S) if slow else None
            sandbox.add_hubspot_link(name, weekday_slots(datetime.now(UTC), 31), fault=fault)
            seeder.client(name, f"agency-{name}")
            seeder.link(name, f"https://meetings.hubspot.com/{name}")
    finally:
        seeder.close()


def test_a_stopped_database_gives_500_json_within_the_connect_timeout_then_recovers(
    client: Any, own_server: EmbeddedPostgres, own_db: str, sandbox: ProviderSandbox
) -> None:
    seed_workspaces(own_db, sandbox, ["alice"], slow=False)
    own_server.stop()
    try:
        started = time.monotonic()
        response = client.post("/", headers=bearer())
        elapsed = time.monotonic() - started
    finally:
        own_server.start()
    assert elapsed < 5  # at once: far from the 10 s connect timeout (measured about 0.05 s)
    assert response.status_code == 500
    assert response.content_type == "application/json"
    body = response.get_json()
    assert (body["success"], body["error"]) == (False, "Database unreachable")
    assert body["invocationId"]
    assert own_server.password not in response.get_data(as_text=True)
    report = run_cron(client)
    assert (report["refreshed"], report["failed"]) == (1, 0)


def test_the_connect_timeout_setting_bounds_a_mute_database(
    client: Any, monkeypatch: pytest.MonkeyPatch, mute_port: int
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:pw-{mute_port}@127.0.0.1:{mute_port}/db")
    monkeypatch.setenv("AVAILABILITY_DB_CONNECT_TIMEOUT_S", "2")
    started = time.monotonic()
    response = client.post("/", headers=bearer())
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 7  # the setting (2 s), not the default of 10 s, nor at once
    assert response.status_code == 500
    assert response.get_json()["error"] == "Database unreachable"


@pytest.mark.slow
def test_a_database_restarted_during_the_run_answers_lock_lost_within_the_budget(
    app: Any, env: dict[str, str], own_server: EmbeddedPostgres, own_db: str, sandbox: ProviderSandbox
) -> None:
    # The controlled point: the fast row is written, the slow answers are still SLOW_S away, so the
    # run's next statement (a heartbeat, or the write of the slow outcomes) is the first after the restart.
    slow = ["slow1", "slow2", "slow3"]
    seed_workspaces(own_db, sandbox, slow, slow=True)
    seed_workspaces(own_db, sandbox, ["fast"], slow=False)
    answer: dict[str, Any] = {}

    def call() -> None:
        started = time.monotonic()
        answer["response"] = app.test_client().post(f"/?timeBudgetMs={BUDGET_MS}", headers=bearer())
        answer["elapsed"] = time.monotonic() - started

    runner = threading.Thread(target=call)
    runner.start()
    wait_for(lambda: all(sandbox.requests_for(name) for name in slow), what="slow requests in flight")
    in_flight_at = time.monotonic()
    wait_for(lambda: _row_count(own_db) == 1, what="the fast workspace written")
    own_server.restart()  # every session ends: the run's connection and its lock with it
    restarted_after = time.monotonic() - in_flight_at
    runner.join(timeout=BUDGET_MS / 1000 + 5)
    assert not runner.is_alive(), "the run did not end"
    assert restarted_after < SLOW_S, f"the restart took {restarted_after:.1f} s: not the point this test controls"
    response = answer["response"]
    body = response.get_json()
    assert response.status_code == 500
    assert response.content_type == "application/json"
    assert body == {
        "success": False,
        "error": "Lock lost",
        "message": "the database connection holding the run's lock failed mid-run; nothing more was written "
        "(Database unreachable)",
        "invocationId": body["invocationId"],
    }
    assert body["invocationId"]
    # Noticed at the run's next statement, well inside the budget (not at its end).
    assert answer["elapsed"] < BUDGET_MS / 1000
    assert own_server.password not in response.get_data(as_text=True)
    # Nothing was written after the connection died: only the fast row is there.
    assert _row_count(own_db) == 1
    # The next run proceeds normally on the restarted server.
    for name in slow:
        sandbox.set_fault(name, None)
    report = run_cron(app.test_client(), f"timeBudgetMs={BUDGET_MS}")
    assert "skipped" not in report
    assert_invariants(report)
    assert (report["checked"], report["refreshed"], report["failed"]) == (4, 4, 0)
    assert _row_count(own_db) == 4


def _row_count(url: str) -> int:
    seeder = Seeder(url)
    try:
        return int(seeder.run('SELECT count(*) FROM "WorkspaceAvailabilityCache"')[0][0])
    finally:
        seeder.close()
