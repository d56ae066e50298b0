"""Writes that change nothing cost little: the same slots as last time keep the stored TOAST value, and
a run's database work is one candidate query plus a few multi-row statements, whatever its size."""

from __future__ import annotations

from datetime import UTC, datetime

from sandbox.providers import Fault, weekday_slots
from tests.helpers import run_cron

LINK = "https://api.leadconnectorhq.com/widget/booking/{}"


def _slots_storage(seed, client_id: str) -> tuple[int | None, int]:
    """The TOAST chunk the row's slots live in (PostgreSQL 17+), and how many slots it holds."""
    chunk, count = seed.run(
        'SELECT pg_column_toast_chunk_id("slotsUtc"), jsonb_array_length("slotsUtc") '
        'FROM "WorkspaceAvailabilityCache" WHERE "clientId" = :client',
        client=client_id,
    )[0]
    return chunk, count


def test_unchanged_slots_are_not_rewritten_and_changed_ones_are(client, seed, sandbox):
    now = datetime.now(UTC)
    sandbox.add_ghl_calendar("calendarAAAAAAAAAAAA", weekday_slots(now, 31))
    seed.client("c1")
    seed.link("c1", LINK.format("calendarAAAAAAAAAAAA"))

    assert run_cron(client)["refreshed"] == 1
    first_chunk, first_count = _slots_storage(seed, "c1")
    first_fetch = seed.row("c1").fetched_at
    assert first_chunk is not None and first_count > 500  # big enough to live out of line

    assert run_cron(client)["refreshed"] == 1
    assert _slots_storage(seed, "c1") == (first_chunk, first_count)
    assert seed.row("c1").fetched_at > first_fetch  # the row itself was refreshed

    # A provider failure keeps the slots; with none of them past yet, the value is not rewritten either.
    sandbox.set_fault("calendarAAAAAAAAAAAA", Fault(status=400))
    assert run_cron(client)["failed"] == 1
    assert _slots_storage(seed, "c1") == (first_chunk, first_count)
    sandbox.set_fault("calendarAAAAAAAAAAAA", None)

    sandbox.add_ghl_calendar("calendarAAAAAAAAAAAA", weekday_slots(now, 31, hours=(8, 18)))
    assert run_cron(client)["refreshed"] == 1
    changed_chunk, _ = _slots_storage(seed, "c1")
    assert changed_chunk is not None and changed_chunk != first_chunk


def _statements(seed) -> int:
    """Transactions the server committed in this database (each autocommit statement is one)."""
    seed.run("SELECT pg_stat_force_next_flush()")
    return seed.run("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0]


def test_database_round_trips_do_not_grow_with_the_number_of_workspaces(client, seed, sandbox):
    slots = weekday_slots(datetime.now(UTC), 2)
    for n in range(120):
        calendar = f"calendar{n:04d}BBBBBBBBBB"
        sandbox.add_ghl_calendar(calendar, slots)
        seed.client(f"c{n}", f"agency-{n % 5}")
        seed.link(f"c{n}", LINK.format(calendar))
    before = _statements(seed)
    report = run_cron(client, "concurrency=16")
    after = _statements(seed)
    assert report["refreshed"] == 120
    # Connection set-up, lock, candidates, batched writes (one a second at most: more on a slow,
    # loaded machine), metrics, unlock; the two statements of _statements itself (measured 22 on two
    # busy cores). Per-workspace statements would make this at least 120.
    assert after - before <= 40, after - before
