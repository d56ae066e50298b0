"""Promises of the README and RELIABILITY.md that no other test exercised, each through its fault:
the 500s "Database not found" and "Database error", the report's cap of 50 errors, a refresh still
running at the deadline, a workspace deleted mid-run, the default provider cap, timeouts and refused
connections cooling a provider down (with its warning), and the 5 s certificate fetch timeout."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from devtools.pgserver import database_url
from lib import oidc
from lib.providers import hubspot
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.conftest import bearer
from tests.dbtools import Seeder
from tests.faults_support import (  # noqa: F401 - secret_scan is a fixture
    CountingForwarder,
    closed_port,
    leaks_in,
    password_of,
    secret_scan,
    silent_server,
    wait_for,
)
from tests.helpers import assert_invariants, run_cron
from tests.test_oidc import FUNCTION_URL, OPERATOR, claims_for, sign

pytestmark = pytest.mark.usefixtures("secret_scan")

NOW = datetime.now(UTC)
ADVISORY_LOCKS_SQL = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"


def _hubspot(seed: Seeder, sandbox: ProviderSandbox, name: str, fault: Fault | None = None, **client: Any) -> None:
    sandbox.add_hubspot_link(name, weekday_slots(NOW, 3), fault=fault)
    seed.client(name, **client)
    seed.link(name, f"https://meetings.hubspot.com/{name}")


def _ghl(seed: Seeder, sandbox: ProviderSandbox, name: str, fault: Fault | None = None, **client: Any) -> str:
    calendar = f"{name}Calendar0000000000"[:20]
    sandbox.add_ghl_calendar(calendar, weekday_slots(NOW, 3), fault=fault)
    seed.client(name, **client)
    seed.link(name, f"https://api.leadconnectorhq.com/widget/booking/{calendar}", link_type="ghl")
    return calendar


# --- the database's 500s -------------------------------------------------------------------------------


def test_a_database_that_does_not_exist_is_500_database_not_found(
    client: Any, monkeypatch: pytest.MonkeyPatch, pg_admin_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url(pg_admin_url, "no_such_database"))
    response = client.post("/", headers=bearer())
    assert response.status_code == 500
    body = response.get_json()
    assert (body["success"], body["error"]) == (False, "Database not found")
    assert "no_such_database" in body["message"] and "3D000" in body["message"]
    assert body["invocationId"]
    assert password_of(pg_admin_url) not in response.get_data(as_text=True)


def test_a_statement_that_fails_with_the_session_intact_is_500_database_error_and_frees_the_lock(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, db_url: str
) -> None:
    # A migration holds an exclusive lock on a table the run reads, and the database's lock_timeout
    # ends the run's wait: the candidate query fails, the session (and so the lock) is intact.
    _hubspot(seed, sandbox, "alice")
    name = db_url.rsplit("/", 1)[1].split("?", 1)[0]
    seed.run(f"ALTER DATABASE \"{name}\" SET lock_timeout = '300ms'")
    migration = Seeder(db_url)
    try:
        migration.run("BEGIN")
        migration.run('LOCK TABLE "CalendarLink" IN ACCESS EXCLUSIVE MODE')
        response = client.post("/", headers=bearer())
        migration.run("COMMIT")
    finally:
        migration.close()
    assert response.status_code == 500
    body = response.get_json()
    assert (body["success"], body["error"]) == (False, "Database error")
    assert "55P03" in body["message"]  # lock_not_available, named; not a lost lock
    assert seed.run(ADVISORY_LOCKS_SQL)[0][0] == 0
    assert seed.rows() == {}
    assert run_cron(client)["refreshed"] == 1


# --- the report -----------------------------------------------------------------------------------------


def test_errors_are_capped_at_fifty_and_the_rest_counted(client: Any, seed: Seeder, capfd: Any) -> None:
    for n in range(60):
        seed.client(f"c{n:02d}")
        seed.link(f"c{n:02d}", f"https://example.com/book-{n}")  # unsupported: fails without a request
    report = run_cron(client)
    assert_invariants(report)
    assert (report["failed"], len(report["errors"]), report["errorsTruncated"]) == (60, 50, 10)
    assert all(re.fullmatch(r"c\d\d: Unsupported calendar link\. .*", error) for error in report["errors"])
    logged = capfd.readouterr().err
    assert logged.count("WARNING workspace_failed") == 20
    assert "WARNING workspace_failures_not_logged count=40" in logged
    assert not leaks_in(logged)


# --- the deadline ---------------------------------------------------------------------------------------


@pytest.fixture
def slow_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Name lookups of *.slow-dns.example block until the returned event is set (or 60 s): a resolver
    that hangs. No HTTP timeout covers a lookup, so only the run's deadline bounds it."""
    release = threading.Event()
    resolve = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".slow-dns.example"):
            release.wait(60)
            raise socket.gaierror(socket.EAI_AGAIN, "the resolver gave up")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        yield release
    finally:
        release.set()


def test_a_refresh_still_running_at_the_deadline_is_failed_as_did_not_finish(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, slow_resolver: threading.Event
) -> None:
    _hubspot(seed, sandbox, "healthy")
    seed.client("stuck")
    seed.link("stuck", "https://book.slow-dns.example/my-calendar", link_type="ghl")  # a white-label page
    started = time.monotonic()
    report = run_cron(client, "timeBudgetMs=10000")
    elapsed = time.monotonic() - started
    assert_invariants(report)
    assert (report["refreshed"], report["failed"], report["finishedWithinBudget"]) == (1, 1, False)
    assert report["errors"] == ["stuck: Refresh did not finish before the run's deadline"]
    assert elapsed < 10 + 3  # the answer does not wait for the stuck lookup
    row = seed.row("stuck")
    assert (row.last_error, row.slots) == ("Refresh did not finish before the run's deadline", [])
    assert seed.row("healthy").last_error is None


# --- a workspace deleted mid-run --------------------------------------------------------------------------


def test_a_workspace_deleted_during_the_run_is_skipped_with_a_warning_and_its_batch_written(
    app: Any, env: dict[str, str], seed: Seeder, sandbox: ProviderSandbox, capfd: Any
) -> None:
    names = ["stay-1", "gone", "stay-2"]
    for name in names:  # the same latency: the three outcomes arrive together and share one batch
        _hubspot(seed, sandbox, name, Fault(latency_s=1.5))
    answer: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: answer.update(body=run_cron(app.test_client())))
    runner.start()
    wait_for(lambda: all(sandbox.requests_for(name) for name in names), what="the requests in flight")
    seed.run('DELETE FROM "Client" WHERE "id" = \'gone\'')  # cascades to its link
    runner.join(timeout=30)
    report = answer["body"]
    assert_invariants(report)
    rows = seed.rows()
    assert set(rows) == {"stay-1", "stay-2"}
    assert all(rows[name].last_error is None and rows[name].slots for name in ("stay-1", "stay-2"))
    warnings = [line for line in capfd.readouterr().err.splitlines() if " WARNING " in line]
    assert any("gone" in line or "deleted" in line for line in warnings), warnings


# --- provider protection ----------------------------------------------------------------------------------


def test_by_default_a_provider_gets_half_the_workers_while_another_has_work_waiting(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AVAILABILITY_CRON_PROVIDER_CONCURRENCY", raising=False)
    first = NOW - timedelta(days=1)  # the GoHighLevel workspaces head the queue
    for n in range(12):
        _ghl(seed, sandbox, f"ghl{n:02d}", Fault(latency_s=1.0), created_at=first)
    for n in range(24):
        _hubspot(seed, sandbox, f"hub{n:02d}", Fault(latency_s=1.0))
    with CountingForwarder(sandbox.base_url) as ghl_api:
        monkeypatch.setenv("GHL_BASE_URL", ghl_api.base_url)
        report = run_cron(client, "concurrency=8&timeBudgetMs=30000")
    assert_invariants(report)
    assert (report["refreshed"], report["failed"]) == (36, 0)
    assert ghl_api.requests == 12  # one free-slots request per workspace
    # HubSpot had work waiting the whole time, so GoHighLevel never had more than ceil(8 / 2) in flight,
    # though it headed the queue and could have taken all eight.
    assert ghl_api.peak == 4


@pytest.mark.parametrize("fault", ["timeout", "refused"])
def test_timeouts_and_refused_connections_cool_the_provider_down_with_a_warning(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch, capfd: Any, fault: str
) -> None:
    for n in range(12):
        _hubspot(seed, sandbox, f"hub{n:02d}")
    for n in range(2):
        _ghl(seed, sandbox, f"ghl{n}")
    with silent_server() as silent:
        if fault == "timeout":
            monkeypatch.setattr(hubspot, "TIMEOUT_S", 0.5)  # HubSpot's API gets 0.5 s instead of 12 s
            monkeypatch.setenv("HUBSPOT_BASE_URL", silent.url)
        else:
            monkeypatch.setenv("HUBSPOT_BASE_URL", f"http://127.0.0.1:{closed_port()}")
        report = run_cron(client, "concurrency=1&timeBudgetMs=20000")
    assert_invariants(report)
    assert report["refreshed"] == 2  # the healthy provider's workspaces
    [cooldown] = report["providerCooldowns"]
    last = "timeout" if fault == "timeout" else "connection failed"
    assert cooldown["provider"] == "hubspot"
    assert re.fullmatch(rf"\d+ failures in a row \(last: {last}\)", cooldown["reason"]), cooldown
    assert cooldown["heldBack"] == report["heldBack"] >= 1
    assert report["failed"] + report["heldBack"] == 12
    logged = capfd.readouterr().err
    [warning] = [line for line in logged.splitlines() if "WARNING provider_cooldown" in line]
    assert "provider=hubspot" in warning and f"heldBack={cooldown['heldBack']}" in warning
    assert not leaks_in(logged)


# --- ID tokens --------------------------------------------------------------------------------------------


def test_a_certificate_server_that_never_answers_is_given_up_after_five_seconds(
    client: Any, monkeypatch: pytest.MonkeyPatch, capfd: Any
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oidc.CERTIFICATES.clear()
    with silent_server() as silent:
        monkeypatch.setenv("ALLOWED_INVOKERS", OPERATOR)
        monkeypatch.setenv("OIDC_CERTS_URL", f"{silent.url}/oauth2/v1/certs")
        monkeypatch.delenv("OIDC_AUDIENCES", raising=False)
        token = sign(key, claims_for(aud=FUNCTION_URL))
        started = time.monotonic()
        response = client.post("/", headers={"Authorization": f"Bearer {token}"})
        elapsed = time.monotonic() - started
        assert silent.accepted == 1
    oidc.CERTIFICATES.clear()
    assert response.status_code == 401 and response.get_json() == {"error": "Unauthorized"}
    assert oidc.CERTS_TIMEOUT_S == 5.0
    assert 5.0 <= elapsed < 5.0 + 5  # the timeout, not sooner; the margin is for a loaded machine
    logged = capfd.readouterr().err
    assert "WARNING oidc_certs_unavailable" in logged and "ReadTimeout" in logged
    assert token not in logged
