"""Fault 9, bad rows: empty, garbage and enormous URLs, unknown link types, meeting lengths of 0, negative
or huge, odd Unicode in ids, garbage in existing cache rows. Each is one workspace's outcome; the run
never fails. (PostgreSQL text holds no NUL and no lone surrogate, so those cannot be in a row.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from lib.outcome import NO_DEFAULT_LINK_ERROR
from sandbox.providers import ProviderSandbox, weekday_slots
from tests.dbtools import Seeder
from tests.faults_support import secret_scan  # noqa: F401 - secret_scan: fixture
from tests.helpers import assert_invariants, hours_from_now, iso, run_cron

pytestmark = pytest.mark.usefixtures("secret_scan")

HUBSPOT = "https://meetings.hubspot.com/alice"
ENORMOUS = 100_000


@dataclass(frozen=True)
class Row:
    client_id: str
    url: str
    link_type: str = "unknown"
    duration: int | None = None
    outcome: str = "failed"  # refreshed, failed, skippedNoDefault, skippedUnsupportedDuration


ODD_IDS = [
    "🙂",
    "\u202eevil-rtl",
    "e\u0301-combining",
    "zero\u200bwidth",
    "ﷺ",
    "\U0010ffff-last-code-point",
    '\'; DROP TABLE "Client"; --',
    "%s%n{0}",
    " leading and trailing ",
    "tab\there",
    "new\nline",
    "\x01\x7f-controls",
    "i" * 5000,
]


def bad_rows(sandbox_url: str) -> list[Row]:
    rows = [
        Row("url-empty", "", outcome="skippedNoDefault"),
        Row("url-blank", " \t\n ", outcome="skippedNoDefault"),
        Row("url-words", "not a url at all"),
        Row("url-scheme-only", "http://"),
        Row("url-javascript", "javascript:alert(1)", "ghl"),
        Row("url-broken-ipv6-ghl", "https://[::1/widget/bookings/x", "ghl"),
        Row("url-broken-ipv6-hubspot", "https://[::1/meetings/x", "hubspot"),
        Row("url-broken-ipv6-calendly", "https://[::1/calendly.com/a/b", "calendly"),
        Row("url-bad-port", "https://calendly.com:99999999/acme/intro", "calendly"),
        Row("url-calendly-root", "https://calendly.com/", "calendly"),
        Row("url-calendly-deep", "calendly.com/a/b/c/d/e/f"),
        Row("url-percent-garbage", "https://calendly.com/%zz/%00%ff"),
        Row("url-unicode", "https://calendly.com/café/🙂\u202e"),
        Row("url-enormous-hubspot", "https://meetings.hubspot.com/" + "x" * ENORMOUS),
        Row("url-enormous-page", f"{sandbox_url}/widget/bookings/" + "y" * ENORMOUS, "ghl"),
        Row("url-enormous-unknown", "https://example.com/" + "z" * ENORMOUS),
        Row("type-zoom", HUBSPOT, "zoom"),
        Row("type-emoji", HUBSPOT, "💥"),
        Row("type-blank", HUBSPOT, "   ", outcome="refreshed"),
        Row("type-upper", HUBSPOT, "HUBSPOT", outcome="refreshed"),
        Row("type-mismatch", HUBSPOT, "calendly"),
        Row("type-enormous", HUBSPOT, "t" * ENORMOUS),
    ]
    for minutes in (0, -30, 2_147_483_647, -2_147_483_648):
        rows.append(Row(f"duration{minutes}", HUBSPOT, duration=minutes, outcome="skippedUnsupportedDuration"))
    rows += [Row(client_id, HUBSPOT, outcome="refreshed") for client_id in ODD_IDS]
    return rows


GARBAGE_SLOTS = ['{"a": 1}', '"a string"', "42", "null", '[1, null, {"x": 2}, "garbage", "2999-01-01T00:00:00.000Z"]']
GARBAGE_META = ["[]", '"x"', '{"ghlCalendarId": 5}', '{"calendlyEventTypeUuid": "../../etc/passwd"}', "null"]


def test_bad_rows_are_per_workspace_outcomes_never_a_failed_run(
    client: Any, seed: Seeder, sandbox: ProviderSandbox
) -> None:
    sandbox.add_hubspot_link("alice", weekday_slots(datetime.now(UTC), 31))
    rows = bad_rows(sandbox.base_url)
    for number, row in enumerate(rows):
        seed.client(row.client_id, f"agency-{number}-{row.client_id[:20]}")
        seed.link(row.client_id, row.url, link_type=row.link_type)
        if row.duration is not None:
            seed.settings(row.client_id, meetingDurationMinutes=row.duration)
    report = run_cron(client, "timeBudgetMs=10000&concurrency=40")
    assert_invariants(report)
    expected = {kind: sum(1 for row in rows if row.outcome == kind) for kind in ("refreshed", "failed")}
    expected |= {kind: sum(1 for row in rows if row.outcome == kind) for kind in ("skippedNoDefault",)}
    expected["skippedUnsupportedDuration"] = 4
    assert report["checked"] == len(rows)
    for kind, count in expected.items():
        assert report[kind] == count, (kind, report["errors"])
    stored = seed.rows()
    assert set(stored) == {row.client_id for row in rows}  # every odd id round-trips exactly
    for row in rows:
        cache = stored[row.client_id]
        if row.outcome == "refreshed":
            assert cache.last_error is None and len(cache.slots) > 20, row.client_id
        else:
            assert cache.last_error, row.client_id
            assert len(cache.last_error) <= 500
    assert stored["url-empty"].last_error == NO_DEFAULT_LINK_ERROR
    assert stored["duration-2147483648"].last_error.startswith("Unsupported meeting duration (-2147483648m)")
    assert stored["url-enormous-hubspot"].calendar_url.endswith("x" * 1000)
    for broken in ("url-broken-ipv6-ghl", "url-broken-ipv6-hubspot", "url-broken-ipv6-calendly", "url-bad-port"):
        assert stored[broken].last_error.startswith("Invalid calendar link URL: https://"), broken
    # The same bad rows again (backoffs now apply), and a run of one odd workspace by its id.
    again = run_cron(client, "timeBudgetMs=10000&concurrency=40")
    assert_invariants(again)
    assert again["skippedBackoff"] == 6
    one = run_cron(client, "clientId=" + quote(ODD_IDS[1]))
    assert (one["checked"], one["refreshed"]) == (1, 1)


def test_garbage_in_existing_cache_rows_is_replaced_or_filtered(
    client: Any, seed: Seeder, sandbox: ProviderSandbox
) -> None:
    sandbox.add_hubspot_link("alice", weekday_slots(datetime.now(UTC), 31))
    future = iso(hours_from_now(30))
    for number, (slots, meta) in enumerate(zip(GARBAGE_SLOTS, GARBAGE_META, strict=True)):
        for healthy in (True, False):
            client_id = f"garbage-{number}-{'ok' if healthy else 'failing'}"
            url = HUBSPOT if healthy else "https://meetings.hubspot.com/nobody-here"
            seed.client(client_id, f"agency-{client_id}")
            link_id = seed.link(client_id, url, link_type="hubspot")
            seed.cache(
                client_id,
                slots=[future],
                range_start=hours_from_now(-5),
                stale_at=hours_from_now(-1),
                calendar_link_id=link_id,
                calendar_url=url,
                calendar_type="hubspot",
            )
            seed.run(
                'UPDATE "WorkspaceAvailabilityCache" SET "slotsUtc" = CAST(:slots AS jsonb), '
                '"providerMeta" = CAST(:meta AS jsonb) WHERE "clientId" = :id',
                slots=slots,
                meta=meta,
                id=client_id,
            )
    report = run_cron(client)
    assert_invariants(report)
    assert (report["refreshed"], report["failed"]) == (5, 5)
    for client_id, row in seed.rows().items():
        if client_id.endswith("-ok"):
            assert row.last_error is None and len(row.slots) > 20
        else:
            # A failure keeps only the previous slots that are well-formed future instants.
            assert isinstance(row.slots, list)
            assert all(isinstance(slot, str) and slot.endswith("Z") for slot in row.slots)
            assert row.slots in ([], ["2999-01-01T00:00:00.000Z"]), row.slots
            assert "not found" in row.last_error or "does not exist" in row.last_error
    assert json.dumps(seed.row("garbage-4-failing").slots) == '["2999-01-01T00:00:00.000Z"]'
