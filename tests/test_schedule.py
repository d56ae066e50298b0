"""Candidate selection and fairness: agency round-robin, due ordering and limit, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.model import CachedState, Candidate, DefaultLink, Mode, Source
from lib.schedule import interleave_by_agency, plan
from sandbox.providers import weekday_slots
from tests.helpers import assert_invariants, hours_from_now, run_cron

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def candidate(
    client_id: str,
    user_id: str,
    *,
    stale_in_hours: float | None = None,
    error: str | None = None,
    created_hours_ago: float = 100,
) -> Candidate:
    cache = None
    if stale_in_hours is not None:
        cache = CachedState("L", "https://x", None, NOW + timedelta(hours=stale_in_hours), error)
    link = DefaultLink("L", "https://meetings.hubspot.com/x", "hubspot")
    return Candidate(client_id, user_id, NOW - timedelta(hours=created_hours_ago), link, None, cache)


def ids(candidates) -> list[str]:
    return [c.client_id for c in candidates]


def test_round_robin_by_agency_as_the_origin_example():
    queue = interleave_by_agency(
        [
            candidate("a3", "U1", stale_in_hours=-1),
            candidate("a1", "U1"),
            candidate("a2", "U1", stale_in_hours=-5),
            candidate("b1", "U2"),
        ]
    )
    assert ids(queue) == ["a1", "b1", "a2", "a3"]


def test_workspaces_without_agency_come_last():
    queue = interleave_by_agency([candidate("z", ""), candidate("b", "U2"), candidate("a", "U1"), candidate("c", "U1")])
    assert ids(queue) == ["a", "b", "c", "z"]


def test_due_mode_takes_missing_first_then_oldest_stale_up_to_the_limit():
    candidates = [
        candidate("fresh", "U1", stale_in_hours=1),
        candidate("stale-new", "U1", stale_in_hours=-1),
        candidate("stale-old", "U2", stale_in_hours=-9),
        candidate("missing-young", "U3", created_hours_ago=1),
        candidate("missing-old", "U3", created_hours_ago=50),
    ]
    schedule = plan(candidates, mode=Mode.DUE, limit=3, now=NOW, source=Source.DEFAULT)
    assert sorted(ids(schedule.queue)) == ["missing-old", "missing-young", "stale-old"]
    everything = plan(candidates, mode=Mode.DUE, limit=100, now=NOW, source=Source.DEFAULT)
    assert "fresh" not in ids(everything.queue)


def test_backoff_only_while_the_row_is_fresh():
    backing_off = candidate("b", "U1", stale_in_hours=3, error="Unsupported meeting duration (45m). Set ...")
    expired = candidate("e", "U1", stale_in_hours=-1, error="Unsupported meeting duration (45m). Set ...")
    provider_error = candidate("p", "U1", stale_in_hours=3, error="HubSpot answered HTTP 500")
    schedule = plan([backing_off, expired, provider_error], mode=Mode.ALL, limit=100, now=NOW, source=Source.DEFAULT)
    # The link is a 30-minute one now (no settings row means 30), so even "b" has lost its cause.
    assert ids(schedule.backoff) == []
    assert sorted(ids(schedule.queue)) == ["b", "e", "p"]


def test_agencies_are_interleaved_in_a_real_run(client, seed, sandbox):
    sandbox.add_hubspot_link("shared", weekday_slots(datetime.now(UTC), 31))
    for index in range(6):
        seed.client(f"big-{index}", "agency-big")
        seed.link(f"big-{index}", "https://meetings.hubspot.com/shared")
    seed.client("small-0", "agency-small")
    seed.link("small-0", "https://meetings.hubspot.com/shared")
    report = run_cron(client, "concurrency=1")
    assert report["refreshed"] == 7
    order = [row.client_id for row in sorted(seed.rows().values(), key=lambda row: row.fetched_at)]
    assert order[:3] == ["big-0", "small-0", "big-1"]


def test_due_mode_and_limit_in_a_real_run(client, seed, sandbox):
    sandbox.add_hubspot_link("x", weekday_slots(datetime.now(UTC), 31))
    for client_id, stale in (("fresh", 2.0), ("stale-1", -1.0), ("stale-2", -3.0), ("stale-3", -2.0)):
        seed.client(client_id)
        seed.link(client_id, "https://meetings.hubspot.com/x")
        seed.cache(client_id, slots=[], range_start=hours_from_now(-4), stale_at=hours_from_now(stale))
    seed.client("missing")
    seed.link("missing", "https://meetings.hubspot.com/x")
    report = run_cron(client, "mode=due&limit=3")
    assert_invariants(report)
    assert (report["checked"], report["refreshed"]) == (3, 3)
    recent = hours_from_now(-0.1)
    refreshed = {row.client_id for row in seed.rows().values() if row.fetched_at > recent}
    assert refreshed == {"missing", "stale-2", "stale-3"}


def test_client_id_refreshes_one_workspace(client, seed, sandbox):
    sandbox.add_hubspot_link("x", weekday_slots(datetime.now(UTC), 31))
    for client_id in ("c1", "c2"):
        seed.client(client_id)
        seed.link(client_id, "https://meetings.hubspot.com/x")
    report = run_cron(client, "clientId=c2")
    assert (report["checked"], report["refreshed"]) == (1, 1)
    assert set(seed.rows()) == {"c2"}
    assert report["options"]["clientId"] == "c2"
    assert run_cron(client, "clientId=unknown")["checked"] == 0


def test_metrics_describe_the_state_after_the_run(client, seed, sandbox):
    sandbox.add_hubspot_link("x", weekday_slots(datetime.now(UTC), 31))
    seed.client("ok")
    seed.link("ok", "https://meetings.hubspot.com/x")
    seed.client("broken")
    seed.link("broken", "https://nowhere.example/book")
    seed.client("old")
    seed.cache("old", slots=[], range_start=hours_from_now(-2), stale_at=hours_from_now(-1), last_error=None)
    # "old" has no default link any more, so this run clears it (outcome (a)).
    metrics = run_cron(client)["metrics"]
    assert metrics["totalCaches"] == 3
    assert metrics["erroringCaches"] == 2
    assert metrics["dueCaches"] == 0
    assert metrics["oldestSuccessfulClientId"] == "ok"
    assert metrics["oldestSuccessfulRangeStartAgeMinutes"] == 0
