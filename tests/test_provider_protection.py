"""Provider protection: each provider's refreshes in flight are capped while others wait, and a provider
that keeps failing is sent no new work for the rest of the run (counted in the report)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from lib.deadline import Deadline
from lib.model import Candidate, DefaultLink
from lib.outcome import Outcome, RefreshOutcome
from lib.pool import PoolLimits, run_pool
from sandbox.providers import Fault, weekday_slots
from tests.helpers import assert_invariants, run_cron

NOW = datetime.now(UTC)


def _candidate(client_id: str) -> Candidate:
    return Candidate(client_id, "agency", NOW, DefaultLink("l", "https://x", "unknown"), None, None)


def _outcome(client_id: str) -> RefreshOutcome:
    return RefreshOutcome(client_id, Outcome.REFRESHED, NOW, NOW, NOW, None, "l", "ghl", "", 30, ("x",), {})


class _Recorder:
    """A refresh that sleeps per provider and records how many of each run at once."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.in_flight = dict.fromkeys(seconds, 0)
        self.events: list[tuple[float, str, int]] = []  # (time, provider, in flight after the start)

    def refresh(self, candidate: Candidate, _now: datetime) -> RefreshOutcome:
        provider = candidate.client_id[0]
        with self.lock:
            self.in_flight[provider] += 1
            self.events.append((time.monotonic(), provider, self.in_flight[provider]))
        time.sleep(self.seconds[provider])
        with self.lock:
            self.in_flight[provider] -= 1
        return _outcome(candidate.client_id)


def _limits(concurrency: int, cap: int) -> PoolLimits:
    return PoolLimits(concurrency, cap, Deadline.after(20), Deadline.after(25))


def test_a_slow_provider_gets_at_most_its_cap_while_others_wait_and_all_workers_when_alone():
    recorder = _Recorder({"a": 0.25, "b": 0.02})
    queue = [_candidate(f"a{n}") for n in range(16)] + [_candidate(f"b{n}") for n in range(16)]
    outcomes: list[RefreshOutcome] = []
    result = run_pool(
        queue,
        recorder.refresh,
        provider_of=lambda candidate: candidate.client_id[0],
        limits=_limits(8, 4),
        clock=lambda: NOW,
        on_outcome=outcomes.append,
        on_idle=lambda: None,
    )
    assert len(outcomes) == 32 and result.not_started == 0 and not result.overran
    last_b_start = max(at for at, provider, _ in recorder.events if provider == "b")
    a_while_b_waited = [count for at, provider, count in recorder.events if provider == "a" and at <= last_b_start]
    assert max(a_while_b_waited) <= 4
    # Work-conserving: once b has nothing waiting, a may use every worker.
    assert max(count for _, provider, count in recorder.events if provider == "a") > 4


def test_without_other_work_waiting_the_cap_does_not_idle_workers():
    recorder = _Recorder({"a": 0.1})
    run_pool(
        [_candidate(f"a{n}") for n in range(16)],
        recorder.refresh,
        provider_of=lambda candidate: candidate.client_id[0],
        limits=_limits(8, 2),
        clock=lambda: NOW,
        on_outcome=lambda _outcome: None,
        on_idle=lambda: None,
    )
    assert max(count for _, _, count in recorder.events) == 8


def _seed_previous(seed, client_id: str, slots: list[str], link_id: str, url: str) -> None:
    # A row of the workspace's current link: a failure keeps its future slots (a row of another link
    # would keep none).
    seed.cache(client_id, slots=slots, range_start=NOW, stale_at=NOW, calendar_link_id=link_id, calendar_url=url)


def test_a_provider_that_keeps_failing_is_held_back_for_the_rest_of_the_run(client, seed, sandbox):
    healthy = weekday_slots(NOW, 3)
    previous = ["2099-01-05T15:00:00.000Z"]
    sick = [f"sick-{n:02d}" for n in range(20)]
    for slug in sick:
        sandbox.add_hubspot_link(slug, healthy, fault=Fault(status=503, headers=(("Retry-After", "0"),)))
        seed.client(slug)
        link_id = seed.link(slug, f"https://meetings.hubspot.com/{slug}")
        _seed_previous(seed, slug, previous, link_id, f"https://meetings.hubspot.com/{slug}")
    for n in range(6):
        calendar = f"healthyCalendar{n:05d}"
        sandbox.add_ghl_calendar(calendar, healthy)
        seed.client(f"ok-{n}")
        seed.link(f"ok-{n}", f"https://api.leadconnectorhq.com/widget/booking/{calendar}")
    before = {slug: seed.row(slug) for slug in sick}

    report = run_cron(client, "concurrency=2")

    assert_invariants(report)
    assert report["refreshed"] == 6
    [cooldown] = report["providerCooldowns"]
    assert cooldown["provider"] == "hubspot" and cooldown["reason"] == "5 failures in a row (last: HTTP 503)"
    assert cooldown["heldBack"] == report["heldBack"] == report["notStarted"] >= 10
    assert report["failed"] == 20 - report["heldBack"]
    assert report["finishedWithinBudget"] is False
    asked = [slug for slug in sick if sandbox.requests_for(slug)]
    assert len(asked) == report["failed"]
    rows = seed.rows()
    for slug in sick:
        if slug in asked:  # failed: lastError says why, the future slot is kept
            assert rows[slug].slots == previous and "HTTP 503" in rows[slug].last_error
        else:  # held back: the row is exactly as it was, so the next run picks it up first
            assert rows[slug] == before[slug]


def test_failures_that_blame_the_link_do_not_cool_the_provider_down(client, seed, sandbox):
    for n in range(8):
        slug = f"gone-{n}"
        sandbox.add_hubspot_link(slug, [], fault=Fault(status=404))
        seed.client(slug)
        seed.link(slug, f"https://meetings.hubspot.com/{slug}")
    report = run_cron(client, "concurrency=1")
    assert report["failed"] == 8 and report["providerCooldowns"] == [] and report["heldBack"] == 0
