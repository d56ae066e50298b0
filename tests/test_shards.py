"""Shards: a stable partition of the workspaces by a hash of clientId, each shard under its own lock."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.pgserver import admin_connection
from lib.config import DEFAULT_LOCK_KEY, LOCK_KEYS_SPAN, Settings
from lib.db import connect
from lib.dburl import parse_database_url
from lib.errors import InvalidParameter
from lib.lock import lock_key
from lib.model import UNSHARDED, Shard, Source
from lib.options import MAX_SHARDS, parse_options
from lib.store import load_candidates, shard_of
from sandbox.providers import weekday_slots
from tests.conftest import bearer
from tests.helpers import assert_invariants, run_cron

GHL_LINK = "https://api.leadconnectorhq.com/widget/booking/{}"
SETTINGS = Settings.from_env({"DATABASE_URL": "postgresql://u:p@localhost/db"})


def test_every_lock_key_is_distinct_and_within_the_documented_span():
    keys = [lock_key(DEFAULT_LOCK_KEY, source, UNSHARDED) for source in Source]
    keys += [
        lock_key(DEFAULT_LOCK_KEY, source, Shard(index, count))
        for count in range(2, MAX_SHARDS + 1)
        for index in range(count)
        for source in Source
    ]
    assert len(keys) == len(set(keys)) == 2 + 2 * sum(range(2, MAX_SHARDS + 1))
    assert keys[:2] == [DEFAULT_LOCK_KEY, DEFAULT_LOCK_KEY + 1]
    assert min(keys) == DEFAULT_LOCK_KEY and max(keys) == DEFAULT_LOCK_KEY + LOCK_KEYS_SPAN


def test_the_sql_partition_matches_shard_of_and_is_even(seed, db_url):
    seed.run(
        'INSERT INTO "Client" ("id", "userId", "updatedAt") SELECT \'ws-\' || n || \'-é\', \'a\', now() '
        "FROM generate_series(1, 1400) n"
    )
    seed.run(
        'INSERT INTO "CalendarLink" ("id", "clientId", "name", "url", "type", "isDefault", "updatedAt") '
        "SELECT 'l-' || \"id\", \"id\", 'Booking', 'https://meetings.hubspot.com/x', 'hubspot', true, now() "
        'FROM "Client"'
    )
    ids = [row[0] for row in seed.run('SELECT "id" FROM "Client"')]
    with connect(parse_database_url(db_url, variable="DATABASE_URL"), timeout_s=5) as db:
        shards = {
            index: {c.client_id for c in load_candidates(db, Source.DEFAULT, None, Shard(index, 7))}
            for index in range(7)
        }
    assert {client_id: index for index, members in shards.items() for client_id in members} == {
        client_id: shard_of(client_id, 7) for client_id in ids
    }
    assert min(len(members) for members in shards.values()) > 1400 / 7 * 0.8


@pytest.mark.parametrize(
    ("query", "param", "detail"),
    [
        ("shard=4&shards=4", "shard", "must be at least 0 and less than shards (4)"),
        ("shard=2", "shard", "needs 'shards' (the number of shards)"),
        ("shard=0", "shard", "needs 'shards' (the number of shards)"),
        ("shard=x&shards=2", "shard", "must be a base-10 integer"),
        ("shard=0&shards=", "shards", "must be a base-10 integer"),
    ],
)
def test_bad_shard_options_are_a_400(client, query, param, detail):
    body = run_cron(client, query, expect=400)
    assert (body["param"], body["detail"]) == (param, detail)


@pytest.mark.parametrize(
    ("values", "shards"),
    [
        ({"shard": "100", "shards": "64"}, 64),
        ({"shard": "64", "shards": "64"}, 64),
        ({"shard": "-1", "shards": "4"}, 4),
        ({"shard": "-1", "shards": "999"}, 64),
        ({"shard": "64", "shards": "999"}, 64),
        ({"shard": "3", "shards": "0"}, 1),  # shards clamps up to 1: only shard 0 exists
        ({"shard": "1", "shards": "-5"}, 1),
        ({"shard": "9" * 5000, "shards": "64"}, 64),
        ({"shard": "-" + "9" * 5000, "shards": "64"}, 64),
        ({"shard": 100, "shards": 64}, 64),  # JSON body numbers
        ({"shard": -1, "shards": 2}, 2),
        ({"shard": 10**30, "shards": 10**30}, 64),
    ],
)
def test_a_shard_outside_the_clamped_shards_is_a_400_naming_shard(values, shards):
    # Before the fix `shard` was clamped to [0, 63] first: shard=100&shards=64 ran shard 63, shard=-1 shard 0.
    with pytest.raises(InvalidParameter) as raised:
        parse_options({}, json.dumps(values).encode(), "application/json", SETTINGS)
    assert (raised.value.param, raised.value.detail) == ("shard", f"must be at least 0 and less than shards ({shards})")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"shard": "5", "shards": "100"}, Shard(5, 64)),  # shards clamps to 64; shard 5 exists there
        ({"shard": "63", "shards": "64"}, Shard(63, 64)),
        ({"shard": "0", "shards": "1"}, Shard(0, 1)),
        ({"shard": " 2 ", "shards": "3"}, Shard(2, 3)),
        ({"shard": "+1", "shards": "2"}, Shard(1, 2)),
        ({"shards": "8"}, Shard(0, 8)),
    ],
)
def test_a_shard_inside_the_clamped_shards_is_run_as_given(query, expected):
    assert parse_options(query, b"", "", SETTINGS).shard == expected


def test_a_wrong_shard_is_refused_through_the_function(client, seed, db_url):
    seed.client("only-one")
    body = run_cron(client, "shard=100&shards=64", expect=400)
    assert (body["error"], body["param"]) == ("Invalid parameter", "shard")


def test_shards_is_clamped_and_echoed(client, seed):
    assert run_cron(client, "shard=3&shards=999")["options"] | {"concurrency": None} == {
        "mode": "all",
        "limit": 100,
        "timeBudgetMs": 55000,
        "concurrency": None,
        "source": "default",
        "shard": 3,
        "shards": MAX_SHARDS,
    }
    assert "shards" not in run_cron(client, "shards=1")["options"]


def calendar_id(client_id: str) -> str:
    """A GoHighLevel-shaped calendar id (letters and digits), read from the link without a page fetch."""
    return "cal" + client_id.replace("-", "") + "x" * 8


def _seed_ghl_workspaces(seed: Any, sandbox: Any, count: int) -> list[str]:
    slots = weekday_slots(datetime.now(UTC), 3)
    ids = [f"client-{n:04d}" for n in range(count)]
    for n, client_id in enumerate(ids):
        sandbox.add_ghl_calendar(calendar_id(client_id), slots)
        seed.client(client_id, f"agency-{n % 17}")
        seed.link(client_id, GHL_LINK.format(calendar_id(client_id)))
    return ids


@pytest.mark.slow
def test_four_shards_at_once_refresh_every_workspace_exactly_once(app, env, seed, sandbox):
    ids = _seed_ghl_workspaces(seed, sandbox, 1000)
    reports: dict[int, Any] = {}

    def call(shard: int) -> None:
        response = app.test_client().post(f"/?shard={shard}&shards=4", headers=bearer())
        reports[shard] = response.get_json()

    threads = [threading.Thread(target=call, args=(shard,)) for shard in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = Counter(shard_of(client_id, 4) for client_id in ids)
    for shard, report in reports.items():
        assert "skipped" not in report, report
        assert_invariants(report)
        assert report["checked"] == report["refreshed"] == expected[shard]
        assert report["metrics"]["totalCaches"] == expected[shard]
    assert sorted(reports) == [0, 1, 2, 3]
    assert [sandbox.requests_for(calendar_id(client_id)) for client_id in ids] == [1] * len(ids)
    assert set(seed.rows()) == set(ids)


def test_each_shard_has_its_own_lock(client, seed, sandbox, db_url):
    ids = _seed_ghl_workspaces(seed, sandbox, 40)
    holder = admin_connection(db_url)
    try:
        held = lock_key(DEFAULT_LOCK_KEY, Source.DEFAULT, Shard(1, 3))
        assert holder.run(f"SELECT pg_try_advisory_lock({held})")[0][0] is True
        reports = [run_cron(client, f"shard={shard}&shards=3") for shard in range(3)]
        # The unsharded run and the DIRECT_BOOK run of shard 1 do not wait for shard 1's lock either.
        direct_book = run_cron(client, "shard=1&shards=3&source=directBook")
    finally:
        holder.close()
    assert reports[1]["skipped"] is True and reports[1]["reason"] == "locked"
    for shard in (0, 2):
        assert reports[shard]["refreshed"] == sum(1 for client_id in ids if shard_of(client_id, 3) == shard)
    assert "skipped" not in direct_book
    refreshed = {client_id for client_id in ids if shard_of(client_id, 3) != 1}
    assert set(seed.rows()) == refreshed
    assert run_cron(client, "shard=1&shards=3")["refreshed"] == len(ids) - len(refreshed)
