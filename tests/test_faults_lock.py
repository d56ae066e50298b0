"""Faults around the run's lock: the lock's connection killed mid-run, Cloud Scheduler delivering the
same tick twice, and another writer touching rows during a tick (which never skips it)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lib.report import utc_iso
from sandbox.providers import Fault, weekday_slots
from tests.conftest import bearer
from tests.faults_support import secret_scan  # noqa: F401 - a fixture
from tests.helpers import run_cron

pytestmark = pytest.mark.usefixtures("secret_scan")

LOCK_HOLDER_SQL = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
TABLE_SNAPSHOT_SQL = """
SELECT md5(COALESCE(string_agg(CAST(w AS text), '|' ORDER BY w."id"), ''))
FROM "WorkspaceAvailabilityCache" w
"""


def _wait_for(condition: Any, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def test_a_run_whose_lock_connection_is_killed_stops_writing_and_answers_500(app, env, seed, sandbox):
    slots = weekday_slots(datetime.now(UTC), 3)
    for n in range(12):
        sandbox.add_hubspot_link(f"slow-{n}", slots, fault=Fault(latency_s=0.6))
        seed.client(f"c{n}")
        seed.link(f"c{n}", f"https://meetings.hubspot.com/slow-{n}")
    answer: dict[str, Any] = {}

    def call() -> None:
        answer["response"] = app.test_client().post("/?concurrency=2&timeBudgetMs=30000", headers=bearer())
        answer["at"] = time.monotonic()

    runner = threading.Thread(target=call)
    runner.start()
    _wait_for(lambda: len(seed.rows()) >= 2)  # the run is writing batches
    [[holder]] = seed.run(LOCK_HOLDER_SQL)
    assert seed.run("SELECT pg_terminate_backend(:pid)", pid=holder)[0][0] is True
    killed_at = time.monotonic()
    _wait_for(lambda: not seed.run("SELECT 1 FROM pg_stat_activity WHERE pid = :pid", pid=holder))
    snapshot = seed.run(TABLE_SNAPSHOT_SQL)[0][0]
    runner.join(timeout=40)

    response = answer["response"]
    assert response.status_code == 500
    body = response.get_json()
    assert (body["success"], body["error"]) == (False, "Lock lost")
    assert "nothing more was written" in body["message"]
    # Noticed at the next write or heartbeat (≤ 2 s of silence), not at the end of the 30 s budget.
    assert answer["at"] - killed_at < 10  # measured 1.3 s
    assert seed.run(TABLE_SNAPSHOT_SQL)[0][0] == snapshot
    assert len(seed.rows()) < 12
    # The lock died with its session: the next run takes it and finishes the job.
    sandbox.reset()
    for n in range(12):
        sandbox.add_hubspot_link(f"slow-{n}", slots)
    assert run_cron(app.test_client())["refreshed"] == 12


def test_a_lost_lock_is_noticed_even_while_no_refresh_finishes(app, env, seed, sandbox):
    # Every provider hangs, so nothing is written: only the heartbeat can notice the lost session.
    for n in range(3):
        sandbox.add_hubspot_link(f"hang-{n}", [], fault=Fault(hang=True))
        seed.client(f"c{n}")
        seed.link(f"c{n}", f"https://meetings.hubspot.com/hang-{n}")
    answer: dict[str, Any] = {}

    def call() -> None:
        answer["response"] = app.test_client().post("/?timeBudgetMs=30000", headers=bearer())
        answer["at"] = time.monotonic()

    runner = threading.Thread(target=call)
    runner.start()
    _wait_for(lambda: sandbox.requests_for("hang-0") >= 1 and seed.run(LOCK_HOLDER_SQL))
    [[holder]] = seed.run(LOCK_HOLDER_SQL)
    seed.run("SELECT pg_terminate_backend(:pid)", pid=holder)
    killed_at = time.monotonic()
    runner.join(timeout=40)
    assert answer["response"].status_code == 500
    assert answer["response"].get_json()["error"] == "Lock lost"
    # The heartbeat runs after 2 s without a write (measured 1.9 s); the hanging requests would
    # have held on for 12 s.
    assert answer["at"] - killed_at < 9
    assert seed.rows() == {}


def _tick_call(client: Any, tick: str) -> dict[str, Any]:
    response = client.post("/", headers={**bearer(), "X-CloudScheduler-ScheduleTime": tick})
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def test_a_row_refreshed_by_another_writer_just_after_the_tick_does_not_skip_the_tick(client, seed, sandbox):
    # The application's read path refreshes a stale or changed row inline, setting fetchedAt; so does a
    # manual clientId call. Before the fix such a write made the whole tick answer `skipped: duplicate`.
    slots = weekday_slots(datetime.now(UTC), 3)
    for name in ("team-a", "team-b"):
        sandbox.add_hubspot_link(name, slots)
    seed.client("c1")
    link = seed.link("c1", "https://meetings.hubspot.com/team-a")
    seed.client("c2")
    seed.link("c2", "https://meetings.hubspot.com/team-b")
    tick = datetime.now(UTC) - timedelta(seconds=2)
    seed.cache(  # written by the application one second after the tick fired
        "c1",
        slots=[],
        range_start=tick + timedelta(seconds=1),
        stale_at=tick + timedelta(seconds=61),
        calendar_link_id=link,
        calendar_url="https://meetings.hubspot.com/team-a",
        calendar_type="hubspot",
    )

    report = _tick_call(client, utc_iso(tick))

    assert "skipped" not in report
    assert report["refreshed"] == 2
    assert sandbox.requests_for("team-a") >= 1 and sandbox.requests_for("team-b") >= 1
    assert seed.row("c1").fetched_at > tick + timedelta(seconds=1)


def test_a_tick_delivered_again_after_its_run_is_simply_served_again(client, seed, sandbox):
    # Harmless: the scheduler jobs have no retries, and a second delivery refreshes the same rows again.
    sandbox.add_hubspot_link("team", weekday_slots(datetime.now(UTC), 3))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/team")
    tick = utc_iso(datetime.now(UTC) - timedelta(seconds=1))

    assert _tick_call(client, tick)["refreshed"] == 1
    asked = sandbox.requests_for("team")
    assert _tick_call(client, tick)["refreshed"] == 1
    assert sandbox.requests_for("team") > asked
    # An unreadable header is ignored rather than refused.
    assert _tick_call(client, "not a time")["refreshed"] == 1


def test_a_duplicate_delivery_during_the_run_is_skipped_as_locked(app, env, seed, sandbox):
    sandbox.add_hubspot_link("slow", weekday_slots(datetime.now(UTC), 3), fault=Fault(latency_s=1.5))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/slow")
    tick = "2026-11-29T10:00:00Z"
    first: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(body=_tick_call(app.test_client(), tick)))
    runner.start()
    _wait_for(lambda: sandbox.requests_for("slow") >= 1)
    second = _tick_call(app.test_client(), tick)
    runner.join(timeout=30)
    assert (second["skipped"], second["reason"], second["scheduleTime"]) == (True, "locked", "2026-11-29T10:00:00.000Z")
    assert first["body"]["refreshed"] == 1
