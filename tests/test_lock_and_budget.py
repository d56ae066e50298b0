"""The advisory lock (runs never overlap) and the time budget (answers by the deadline)."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime

import pytest

from devtools.pgserver import admin_connection
from sandbox.providers import Fault, weekday_slots
from tests.conftest import bearer
from tests.helpers import assert_invariants, run_cron

LOCK_KEY = 61061061061


def wait_for(condition, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def test_second_concurrent_run_is_skipped_as_locked(app, env, seed, sandbox):
    sandbox.add_hubspot_link("slow", weekday_slots(datetime.now(UTC), 31), fault=Fault(latency_s=2.0))
    seed.client("c1")
    seed.link("c1", "https://meetings.hubspot.com/slow")
    first: dict = {}
    runner = threading.Thread(target=lambda: first.update(response=app.test_client().post("/", headers=bearer())))
    runner.start()
    wait_for(lambda: sandbox.requests_for("slow") >= 1)
    second = app.test_client().post("/", headers=bearer())
    runner.join(timeout=30)
    assert second.status_code == 200
    body = second.get_json()
    assert (body["success"], body["skipped"], body["reason"]) == (True, True, "locked")
    assert body["invocationId"] and body["timestamp"].endswith("Z")
    assert first["response"].get_json()["refreshed"] == 1
    one_run = sandbox.requests_for("slow")
    # The lock was released on the way out: the next run proceeds.
    third = run_cron(app.test_client())
    assert "skipped" not in third and third["refreshed"] == 1
    # Two real runs made the same requests; the skipped run made none.
    assert sandbox.requests_for("slow") == 2 * one_run


def test_a_lock_held_by_another_session_skips_the_run(client, db_url):
    holder = admin_connection(db_url)
    try:
        assert holder.run(f"SELECT pg_try_advisory_lock({LOCK_KEY})")[0][0] is True
        assert run_cron(client)["skipped"] is True
    finally:
        holder.close()
    assert "skipped" not in run_cron(client)


def test_the_lock_key_is_configurable(client, db_url, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_CRON_LOCK_KEY", "42")
    holder = admin_connection(db_url)
    try:
        holder.run(f"SELECT pg_advisory_lock({LOCK_KEY})")
        assert "skipped" not in run_cron(client)
        holder.run("SELECT pg_advisory_lock(42)")
        assert run_cron(client)["skipped"] is True
    finally:
        holder.close()


def test_no_lock_is_left_behind_after_a_run(client, seed, db_url):
    seed.client("c1")
    seed.link("c1", "https://example.com/unsupported")
    run_cron(client)
    held = seed.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0]
    assert held == 0


def seed_one_hanging_and_three_fine(seed, sandbox) -> None:
    """Four agencies, so the queue is: the hanging workspace first, then three healthy ones."""
    sandbox.add_hubspot_link("hang", [], fault=Fault(hang=True))
    sandbox.add_hubspot_link("fine", weekday_slots(datetime.now(UTC), 31))
    seed.client("a-hang", "agency-a")
    seed.link("a-hang", "https://meetings.hubspot.com/hang")
    for name in ("b", "c", "d"):
        seed.client(f"{name}-fine", f"agency-{name}")
        seed.link(f"{name}-fine", "https://meetings.hubspot.com/fine")


@pytest.mark.slow
def test_a_hanging_provider_cannot_hold_the_run_past_its_budget(client, seed, sandbox):
    seed_one_hanging_and_three_fine(seed, sandbox)
    started = time.monotonic()
    report = run_cron(client, "timeBudgetMs=10000&concurrency=1")
    elapsed = time.monotonic() - started
    assert elapsed < 13.0  # the caller's clock, with room for a loaded machine; durationMs below is the promise
    assert_invariants(report)
    assert report["finishedWithinBudget"] is False
    assert (report["attempted"], report["failed"], report["notStarted"]) == (1, 1, 3)
    assert "timed out" in report["errors"][0]
    # The hanging request got the time left before the deadline less the write reserve, not its 12 s cap.
    [wait] = re.findall(r"timed out after ([\d.]+) s", report["errors"][0])
    assert float(wait) <= 9.0
    assert report["durationMs"] <= 11000


@pytest.mark.slow
def test_a_run_that_handles_everything_in_time_says_so_even_with_a_hang(client, seed, sandbox):
    seed_one_hanging_and_three_fine(seed, sandbox)
    started = time.monotonic()
    report = run_cron(client, "timeBudgetMs=10000&concurrency=2")
    assert time.monotonic() - started < 13.0  # the caller's clock, with room for a loaded machine
    assert report["durationMs"] <= 11000
    assert report["finishedWithinBudget"] is True
    assert (report["refreshed"], report["failed"], report["notStarted"]) == (3, 1, 0)
