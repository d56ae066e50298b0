"""Provider protection: each provider's refreshes in flight are capped while others wait, and a provider
whose API keeps failing is sent no new work for the rest of the run (counted in the report); failures
of hosts the tenants own, or a burst of failures already in flight together, never park it."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from lib.deadline import Deadline
from lib.model import Candidate, DefaultLink
from lib.outcome import Outcome, RefreshOutcome
from lib.pool import PoolLimits, PoolResult, run_pool
from lib.providers import ghl
from lib.throttle import COOLDOWN_AFTER_FAILURES
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.helpers import assert_invariants, run_cron
from tests.stand_in_internet import HostileDns, Route

NOW = datetime.now(UTC)


def _candidate(client_id: str) -> Candidate:
    return Candidate(client_id, "agency", NOW, DefaultLink("l", "https://x", "unknown"), None, None)


def _outcome(client_id: str, *, trouble: str | None = None, silent: bool = False) -> RefreshOutcome:
    failed = trouble is not None or silent
    return RefreshOutcome(
        client_id=client_id,
        outcome=Outcome.FAILED if failed else Outcome.REFRESHED,
        fetched_at=NOW,
        stale_at=NOW,
        range_end=NOW,
        error="failed" if failed else None,
        calendar_link_id="l",
        calendar_type="ghl",
        calendar_url="",
        slot_duration_minutes=30,
        slots=() if failed else ("x",),
        provider_meta=None if failed else {},
        keeps_previous_slots=failed,
        provider_trouble=trouble,
        provider_silent=silent,
    )


class _FirstRound:
    """Holds the first `parties` refreshes until all of them are in flight (up to 10 s), so a peak in
    flight does not depend on how fast a loaded machine starts threads. Fewer at once (the barrier
    breaks) is left to the test's assertions, which then fail."""

    def __init__(self, parties: int) -> None:
        self._barrier = threading.Barrier(parties)
        self._lock = threading.Lock()
        self._arrived = 0

    def wait_if_first(self) -> None:
        with self._lock:
            self._arrived += 1
            first = self._arrived <= self._barrier.parties
        if first:
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait(timeout=10)


class _Recorder:
    """A refresh that sleeps per provider and records how many of each run at once."""

    def __init__(self, seconds: dict[str, float], *, first_round: int = 0) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.in_flight = dict.fromkeys(seconds, 0)
        self.events: list[tuple[float, str, int]] = []  # (time, provider, in flight after the start)
        self.first_round = _FirstRound(first_round) if first_round else None

    def refresh(self, candidate: Candidate, _now: datetime) -> RefreshOutcome:
        provider = candidate.client_id[0]
        with self.lock:
            self.in_flight[provider] += 1
            self.events.append((time.monotonic(), provider, self.in_flight[provider]))
        if self.first_round is not None:  # after counting itself: the round's peak is recorded
            self.first_round.wait_if_first()
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
    recorder = _Recorder({"a": 0.1}, first_round=8)
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


def test_workers_take_their_next_workspace_while_the_calling_thread_is_busy_writing():
    # Each outcome takes the calling thread 0.2 s (a slow batch write); each refresh 0.05 s. The workers
    # must not wait for it: all 16 refreshes start before the 6th outcome is handled. When the calling
    # thread handed out the work, the 16th started only after the 12th outcome (about 2.4 s in).
    events: list[str] = []
    lock = threading.Lock()

    def refresh(candidate: Candidate, _now: datetime) -> RefreshOutcome:
        with lock:
            events.append(f"start {candidate.client_id}")
        time.sleep(0.05)
        return _outcome(candidate.client_id)

    def on_outcome(outcome: RefreshOutcome) -> None:
        time.sleep(0.2)
        with lock:
            events.append(f"handled {outcome.client_id}")

    result = run_pool(
        [_candidate(f"a{n}") for n in range(16)],
        refresh,
        provider_of=lambda _candidate: "a",
        limits=_limits(4, 4),
        clock=lambda: NOW,
        on_outcome=on_outcome,
        on_idle=lambda: None,
    )
    handled = [index for index, event in enumerate(events) if event.startswith("handled")]
    started = [index for index, event in enumerate(events) if event.startswith("start")]
    assert (len(started), len(handled), result.not_started, result.overran) == (16, 16, 0, ())
    assert max(started) < handled[5]


def _seed_previous(seed, client_id: str, link_id: str, url: str, slots: list[str]) -> None:
    """A previous row about this very link (a failure keeps only such a row's slots)."""
    seed.cache(client_id, slots=slots, range_start=NOW, stale_at=NOW, calendar_link_id=link_id, calendar_url=url)


def test_a_provider_that_keeps_failing_is_held_back_for_the_rest_of_the_run(client, seed, sandbox):
    healthy = weekday_slots(NOW, 3)
    previous = ["2099-01-05T15:00:00.000Z"]
    sick = [f"sick-{n:02d}" for n in range(20)]
    for slug in sick:
        sandbox.add_hubspot_link(slug, healthy, fault=Fault(status=503, headers=(("Retry-After", "0"),)))
        seed.client(slug)
        url = f"https://meetings.hubspot.com/{slug}"
        _seed_previous(seed, slug, seed.link(slug, url), url, previous)
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


# --- the cool-down rule (lib/throttle.py) --------------------------------------------------------


def _scripted_pool(
    script: dict[str, tuple[float, str]], concurrency: int, *, first_round_together: bool = False
) -> tuple[PoolResult, list[RefreshOutcome]]:
    """Run one provider's queue (in the script's order) where each refresh sleeps, then answers as
    scripted: "ok", "trouble" (the API failed: a timeout) or "silent" (a host the tenant owns failed).
    With first_round_together, the first `concurrency` refreshes wait until all of them are in flight,
    so a loaded machine cannot make the first answers come back before the round has started."""
    first_round = _FirstRound(concurrency) if first_round_together else None

    def refresh(candidate: Candidate, _now: datetime) -> RefreshOutcome:
        seconds, kind = script[candidate.client_id]
        if first_round is not None:
            first_round.wait_if_first()
        time.sleep(seconds)
        return _outcome(candidate.client_id, trouble="timeout" if kind == "trouble" else None, silent=kind == "silent")

    outcomes: list[RefreshOutcome] = []
    result = run_pool(
        [_candidate(client_id) for client_id in script],
        refresh,
        provider_of=lambda _candidate: "ghl",
        limits=_limits(concurrency, concurrency),
        clock=lambda: NOW,
        on_outcome=outcomes.append,
        on_idle=lambda: None,
    )
    return result, outcomes


def test_a_burst_of_timeouts_in_flight_together_does_not_park_a_provider_with_healthy_work():
    # 32 workers: 5 refreshes time out together before any other answers; 195 healthy ones follow.
    script = {f"t{n}": (0.3, "trouble") for n in range(COOLDOWN_AFTER_FAILURES)}
    script |= {f"h{n:03d}": (0.6, "ok") for n in range(195)}
    result, outcomes = _scripted_pool(script, concurrency=32, first_round_together=True)
    assert result.cooldowns == () and result.not_started == 0
    assert sum(outcome.outcome is Outcome.REFRESHED for outcome in outcomes) == 195


def test_a_really_failing_provider_still_parks_after_a_whole_round_of_failures():
    script = {f"t{n:03d}": (0.05, "trouble") for n in range(200)}
    result, outcomes = _scripted_pool(script, concurrency=32, first_round_together=True)
    [cooldown] = result.cooldowns
    assert cooldown.provider == "ghl" and cooldown.reason == "32 failures in a row (last: timeout)"
    assert result.not_started == cooldown.held_back == 200 - len(outcomes) > 100


@pytest.mark.parametrize(
    ("kinds", "parks"),
    [
        (["trouble"] * 4 + ["ok"] + ["trouble"] * 4, False),  # an answer between failures resets the count
        (["trouble"] * 4 + ["silent"] * 3 + ["trouble"], True),  # a tenant's host neither counts nor resets
        (["silent"] * 12, False),
    ],
    ids=["answer-resets", "tenant-host-is-neutral", "tenant-hosts-alone"],
)
def test_what_counts_toward_a_cooldown(kinds: list[str], parks: bool):
    result, _ = _scripted_pool({f"w{n:02d}": (0.01, kind) for n, kind in enumerate(kinds + ["ok"] * 5)}, 1)
    assert bool(result.cooldowns) is parks


# A public address (is_global) whose connections the stand-in internet routes to the sandbox.
WHITE_LABEL_ADDRESS = "93.184.216.34"
DEAD_PAGES = 10


@pytest.fixture
def white_label_hosts(monkeypatch: pytest.MonkeyPatch, sandbox: ProviderSandbox) -> ProviderSandbox:
    """Agencies' own booking domains (book.agency-N.com) resolve to a public address whose connections
    are routed to the sandbox, so they reach it without a packet leaving the machine (tenant pages
    never go through an HTTP proxy: tests/stand_in_internet.py)."""
    dns = HostileDns(monkeypatch)
    for n in range(DEAD_PAGES):
        dns.names[f"book.agency-{n}.com"] = WHITE_LABEL_ADDRESS
    Route(monkeypatch, urlsplit(sandbox.base_url).port or 80, frozenset({WHITE_LABEL_ADDRESS}))
    return sandbox


def _seed_link(seed, client_id: str, url: str) -> None:
    seed.client(client_id)
    seed.link(client_id, url)


def test_dead_white_label_pages_timing_out_together_do_not_park_a_healthy_provider(
    client, seed, white_label_hosts, monkeypatch
):
    sandbox = white_label_hosts
    monkeypatch.setattr(ghl, "TIMEOUT_S", 1.5)  # a dead page times out in 1.5 s instead of 15
    healthy_calendar = "HealthyCalendar000000"
    sandbox.add_ghl_calendar(healthy_calendar, weekday_slots(NOW, 3), fault=Fault(latency_s=0.05))
    dead = [f"a-dead-{n}" for n in range(DEAD_PAGES)]  # first in the queue: they fill every worker at once
    for n, client_id in enumerate(dead):
        sandbox.add_ghl_booking_page(f"/widget/bookings/demo-{n}", "DeadCalendar0000000000", fault=Fault(hang=True))
        _seed_link(seed, client_id, f"http://book.agency-{n}.com/widget/bookings/demo-{n}")
    healthy = [f"b-ok-{n:02d}" for n in range(40)]
    for client_id in healthy:
        _seed_link(seed, client_id, f"https://api.leadconnectorhq.com/widget/booking/{healthy_calendar}")

    report = run_cron(client, "concurrency=8")

    assert_invariants(report)
    assert report["providerCooldowns"] == [] and report["heldBack"] == 0
    assert (report["refreshed"], report["failed"]) == (40, 10)
    rows = seed.rows()
    assert all(rows[client_id].last_error is None and rows[client_id].slots for client_id in healthy)
    assert all("timed out" in (rows[client_id].last_error or "") for client_id in dead)
