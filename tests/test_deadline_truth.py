"""The deadline and the report tell the truth (issue 10 §6): a refresh done by the deadline is written as
what it was; a database that stalls at the end cannot hold the answer past the budget; one refused row,
or a failed metrics query, never fails the run; a failed refresh of a replaced link keeps no slots."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.pgserver import admin_connection
from lib.deadline import Deadline
from lib.model import Candidate
from lib.outcome import Outcome, RefreshOutcome
from lib.pool import PoolLimits, run_pool
from sandbox.providers import Fault, weekday_slots
from tests.conftest import bearer
from tests.helpers import assert_invariants, hours_from_now, iso, run_cron

HUBSPOT = "https://meetings.hubspot.com/{}"
RUN_APPLICATION_NAME = "availability-cron"


def _wait_for(condition: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)


def _candidate(client_id: str) -> Candidate:
    return Candidate(client_id, "agency", datetime(2026, 1, 1, tzinfo=UTC), None, None, None)


def _refreshed(client_id: str) -> RefreshOutcome:
    now = datetime.now(UTC)
    return RefreshOutcome(
        client_id=client_id,
        outcome=Outcome.REFRESHED,
        fetched_at=now,
        stale_at=now,
        range_end=now,
        error=None,
        calendar_link_id=None,
        calendar_type="hubspot",
        calendar_url="",
        slot_duration_minutes=30,
        slots=("slot",),
        provider_meta={},
    )


def test_a_refresh_that_finished_while_the_writer_was_busy_is_not_an_overrun():
    # "b" finishes 0.3 s in, while the main thread is still handling "a"'s outcome (a slow write) until
    # past the deadline. Before the fix "b" was then reported as overran ("did not finish").
    deadline = Deadline.after(1.0)
    received: list[str] = []

    def refresh(candidate: Candidate, _now: datetime) -> RefreshOutcome:
        if candidate.client_id == "b":
            time.sleep(0.3)
        return _refreshed(candidate.client_id)

    def on_outcome(outcome: RefreshOutcome) -> None:
        received.append(outcome.client_id)
        if outcome.client_id == "a":
            time.sleep(deadline.remaining() + 0.2)  # a write that ends after the deadline

    result = run_pool(
        [_candidate("a"), _candidate("b")],
        refresh,
        provider_of=lambda _candidate: "hubspot",
        limits=PoolLimits(concurrency=2, provider_cap=2, stop_starting=deadline, deadline=deadline),
        clock=lambda: datetime.now(UTC),
        on_outcome=on_outcome,
        on_idle=lambda: None,
    )
    assert deadline.expired()
    assert received == ["a", "b"]
    assert result.overran == ()


def _lock_table(db_url: str, mode: str) -> Any:
    """Another session holding a table lock on the cache table until it rolls back."""
    holder = admin_connection(db_url)
    holder.run("BEGIN")
    holder.run(f'LOCK TABLE "WorkspaceAvailabilityCache" IN {mode} MODE')
    return holder


@pytest.mark.slow
def test_a_database_stalled_at_the_end_cannot_hold_the_answer_past_the_budget(app, env, seed, sandbox, db_url, capfd):
    # During the refresh another session locks the cache table: the write and the metrics query block.
    # Before the fix the write waited out the 10 s socket timeout (answering 500 "Lock lost" ~17 s in).
    sandbox.add_hubspot_link("team", weekday_slots(datetime.now(UTC), 3), fault=Fault(latency_s=6.0))
    seed.client("c1")
    seed.link("c1", HUBSPOT.format("team"))
    answer: dict[str, Any] = {}

    def call() -> None:
        answer["response"] = app.test_client().post("/?timeBudgetMs=10000", headers=bearer())
        answer["at"] = time.monotonic()

    started = time.monotonic()
    runner = threading.Thread(target=call)
    runner.start()
    _wait_for(lambda: sandbox.requests_for("team") >= 1)  # the candidate query is done
    holder = _lock_table(db_url, "ACCESS EXCLUSIVE")
    try:
        runner.join(timeout=20)
    finally:
        holder.run("ROLLBACK")
        holder.close()
    runner.join(timeout=30)

    # Budget 10 s + at most ~1 s; the margin beyond is for a loaded machine, far below the 20 s hold.
    assert answer["at"] - started < 13.0
    response = answer["response"]
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert_invariants(report)
    assert report["metrics"] is None
    assert report["finishedWithinBudget"] is False
    assert report["refreshed"] == 1
    logged = capfd.readouterr().err
    assert "WARNING rows_not_written" in logged and "WARNING metrics_unavailable" in logged
    # Nothing was written, and no lock was left behind (the session ended with the connection).
    assert seed.rows() == {}
    _wait_for(lambda: seed.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0] == 0, 5.0)


def test_a_workspace_deleted_during_the_write_is_skipped_and_the_rest_of_its_batch_written(
    app, env, seed, sandbox, db_url, capfd
):
    # A real race: another session deletes a workspace (not yet committed) after the run's candidate
    # query. The run's batch insert checks the foreign key, waits for that session, and fails when it
    # commits. Before the fix that one row failed the whole run with a 500 "Database error".
    slots = weekday_slots(datetime.now(UTC), 3)
    sandbox.add_hubspot_link("team", slots, fault=Fault(latency_s=1.5))
    for client_id in ("keep-1", "doomed", "keep-2"):
        seed.client(client_id)
        seed.link(client_id, HUBSPOT.format("team"))
    deleter = admin_connection(db_url)
    answer: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: answer.update(response=app.test_client().post("/?concurrency=3", headers=bearer()))
    )
    try:
        runner.start()
        _wait_for(lambda: sandbox.requests_for("team") >= 3)  # candidates are loaded
        deleter.run("BEGIN")
        deleter.run('DELETE FROM "CalendarLink" WHERE "clientId" = \'doomed\'')
        deleter.run('DELETE FROM "Client" WHERE "id" = \'doomed\'')
        # Wait until the run's write is blocked on the deleted row's key lock, then commit the delete.
        _wait_for(
            lambda: (
                seed.run(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND wait_event_type = 'Lock'",
                    name=RUN_APPLICATION_NAME,
                )[0][0]
                == 1
            )
        )
        deleter.run("COMMIT")
        runner.join(timeout=30)
    finally:
        deleter.close()
    response = answer["response"]
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert_invariants(report)
    assert report["refreshed"] == 3
    rows = seed.rows()
    assert set(rows) == {"keep-1", "keep-2"}
    assert all(row.slots and row.last_error is None for row in rows.values())
    logged = capfd.readouterr().err
    assert "WARNING rows_skipped" in logged and "doomed" in logged
    assert report["metrics"]["totalCaches"] == 2


def test_a_failed_refresh_of_a_replaced_link_keeps_none_of_the_old_calendars_slots(client, seed, sandbox):
    old_slots = [iso(hours_from_now(h)) for h in (3, 27)]
    sandbox.add_hubspot_link("new-team", [], fault=Fault(status=503))
    seed.client("c1")
    seed.link("c1", HUBSPOT.format("old-team"), link_id="link-old", is_default=False)
    seed.link("c1", HUBSPOT.format("new-team"), link_id="link-new")
    seed.cache(
        "c1",
        slots=old_slots,
        range_start=hours_from_now(-1),
        stale_at=hours_from_now(-0.5),
        calendar_link_id="link-old",
        calendar_url=HUBSPOT.format("old-team"),
        calendar_type="hubspot",
        provider_meta={},
    )
    report = run_cron(client)
    assert report["failed"] == 1
    row = seed.row("c1")
    # Before the fix the row kept the old calendar's slots, link and URL.
    assert row.slots == []
    assert (row.calendar_link_id, row.calendar_url, row.calendar_type) == (
        "link-new",
        HUBSPOT.format("new-team"),
        "hubspot",
    )
    assert row.last_error and "503" in row.last_error
    assert row.fetched_at > datetime.now(UTC) - timedelta(minutes=1)


def test_a_failed_refresh_of_the_same_link_still_keeps_its_future_slots(client, seed, sandbox):
    future = [iso(hours_from_now(h)) for h in (3, 27)]
    sandbox.add_hubspot_link("team", [], fault=Fault(status=503))
    seed.client("c1")
    seed.link("c1", HUBSPOT.format("team"), link_id="link-1")
    seed.cache(
        "c1",
        slots=[iso(hours_from_now(-2)), *future],
        range_start=hours_from_now(-1),
        stale_at=hours_from_now(-0.5),
        calendar_link_id="link-1",
        calendar_url=HUBSPOT.format("team"),
        calendar_type="hubspot",
        provider_meta={},
    )
    assert run_cron(client)["failed"] == 1
    row = seed.row("c1")
    assert row.slots == future
    assert row.last_error and "503" in row.last_error
