"""The support status view (devtools/status): against a real PostgreSQL whose rows a real run of the
function wrote, then aged by hand; read-only, a statement timeout, never the run's lock."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.demo import BROKEN_HUBSPOT_SLUG, seed_demo
from devtools.pgserver import EmbeddedPostgres, admin_connection, apply_schema, free_port
from devtools.status.cli import main
from devtools.status.failures import normalize_error
from devtools.status.local import LocalDatabaseError, local_database_url
from devtools.status.reader import (
    DURATION_CHANGED,
    LINK_CHANGED,
    META_MISSING,
    NO_ROW,
    STALE,
    URL_CHANGED,
    ReaderVerdict,
    StoredRow,
    WorkspaceNow,
    reader_verdict,
)
from devtools.status.session import APPLICATION_NAME, read_only_session
from lib.config import DEFAULT_LOCK_KEY
from lib.dburl import parse_database_url
from lib.errors import DatabaseError
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.dbtools import Seeder
from tests.helpers import run_cron

ROOT = Path(__file__).resolve().parent.parent
GHL_A = "CalendarAAAAAAAAAAAAAAAA"
GHL_B = "CalendarBBBBBBBBBBBBBBBB"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def status(url: str, *args: str) -> Outcome:
    """The command, in this process, against `url` as DATABASE_URL."""
    out = io.StringIO()
    err = io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        code = main(list(args), env={"DATABASE_URL": url}, out=out)
    finally:
        sys.stderr = saved
    return Outcome(code, out.getvalue(), err.getvalue())


def status_json(url: str, *args: str) -> dict[str, Any]:
    result = status(url, "--json", *args)
    assert result.code == 0, result.err
    value: dict[str, Any] = json.loads(result.out)
    return value


@pytest.fixture
def world(client: Any, seed: Seeder, sandbox: ProviderSandbox, monkeypatch: pytest.MonkeyPatch) -> Seeder:
    """Rows written by real runs of both sources, then some aged by hand:

    DEFAULT   calendly: cal-ok (stale 30 min), long-meet (60-min meetings: backoff, Calendly meta missing)
              hubspot:  hub-ok (stale 3 days), hub-down-1/2 (HTTP 500), late (no row yet)
              ghl:      ghl-ok (fresh; also DIRECT_BOOK, its own calendar)
              other:    unsupported (example.com: unsupported link)
    """
    monkeypatch.setenv("AVAILABILITY_CACHE_TTL_MS", "3600000")  # rows stay fresh however slow the machine is
    now = datetime.now(UTC)
    sandbox.add_calendly_event("acme", "intro", weekday_slots(now, 31))
    sandbox.add_hubspot_link("alice", weekday_slots(now, 31))
    sandbox.add_hubspot_link("down", weekday_slots(now, 31), fault=Fault(status=500))
    sandbox.add_ghl_calendar(GHL_A, weekday_slots(now, 31, hours=(9, 12)))
    sandbox.add_ghl_calendar(GHL_B, weekday_slots(now, 31, hours=(13, 17)))
    workspaces = {
        "cal-ok": "https://calendly.com/acme/intro",
        "long-meet": "https://calendly.com/acme/intro",
        "hub-ok": "https://meetings.hubspot.com/alice",
        "hub-down-1": "https://meetings.hubspot.com/down",
        "hub-down-2": "https://meetings.hubspot.com/down",
        "ghl-ok": f"https://api.leadconnectorhq.com/widget/booking/{GHL_A}",
        "unsupported": "https://example.com/book-a-call",
    }
    for client_id, url in workspaces.items():
        seed.client(client_id, user_id="agency-1" if client_id < "h" else "agency-2")
        seed.link(client_id, url, link_id=f"link-{client_id}")
    seed.settings("long-meet", meetingDurationMinutes=60)
    seed.settings("ghl-ok", ghlDefaultCalendarId=GHL_A, ghlDirectBookCalendarId=GHL_B)
    default = run_cron(client)
    assert (default["refreshed"], default["failed"], default["skippedUnsupportedDuration"]) == (3, 3, 1)
    assert run_cron(client, "source=directBook")["refreshed"] == 1
    seed.client("late", user_id="agency-2")
    seed.link("late", "https://meetings.hubspot.com/alice")
    _age(seed, "cal-ok", stale_for=timedelta(minutes=30))
    _age(seed, "hub-ok", stale_for=timedelta(days=3))
    return seed


def _age(seed: Seeder, client_id: str, *, stale_for: timedelta) -> None:
    """As if the last run that reached this workspace was `stale_for` (+ the TTL) ago."""
    seed.run(
        'UPDATE "WorkspaceAvailabilityCache" SET "staleAt" = now() - CAST(:stale AS interval), '
        "\"rangeStart\" = now() - CAST(:stale AS interval) - interval '1 hour', "
        "\"fetchedAt\" = now() - CAST(:stale AS interval) - interval '1 hour' "
        'WHERE "clientId" = :client AND "availabilitySource" = \'DEFAULT\'',
        stale=f"{int(stale_for.total_seconds())} seconds",
        client=client_id,
    )


def _line(report: dict[str, Any], source: str, provider: str) -> dict[str, Any]:
    summary = next(item for item in report["sources"] if item["source"] == source)
    if provider == "all":
        total: dict[str, Any] = summary["total"]
        return total
    return next(line for line in summary["providers"] if line["provider"] == provider)


def _stale(**counts: int) -> dict[str, int]:
    labels = {"under_2m": "<2m", "m2_15": "2-15m", "m15_1h": "15m-1h", "h1_24": "1-24h", "over_24h": ">=24h"}
    stale = dict.fromkeys(labels.values(), 0)
    stale.update({labels[name]: count for name, count in counts.items()})
    return stale


# --- the overview ---------------------------------------------------------------------------------


def test_json_overview_counts_the_seeded_rows_per_source_and_provider(world, db_url):
    report = status_json(db_url)
    assert report["database"].endswith("read-only, statement timeout 5 s")
    calendly = _line(report, "DEFAULT", "calendly")
    assert (calendly["workspaces"], calendly["fresh"], calendly["changed"]) == (2, 0, 1)
    assert calendly["stale"] == _stale(m15_1h=1)
    assert (calendly["erroring"], calendly["inBackoff"], calendly["withoutRow"]) == (1, 1, 0)
    hubspot = _line(report, "DEFAULT", "hubspot")
    assert (hubspot["workspaces"], hubspot["withoutRow"], hubspot["fresh"], hubspot["erroring"]) == (4, 1, 2, 2)
    assert hubspot["stale"] == _stale(over_24h=1)
    assert hubspot["inBackoff"] == 0
    assert hubspot["cacheAgeMinutes"]["max"] == pytest.approx(3 * 24 * 60 + 60, abs=2)
    ghl = _line(report, "DEFAULT", "ghl")
    assert (ghl["workspaces"], ghl["fresh"], ghl["erroring"]) == (1, 1, 0)
    other = _line(report, "DEFAULT", "other")
    assert (other["workspaces"], other["fresh"], other["erroring"]) == (1, 1, 1)
    total = _line(report, "DEFAULT", "all")
    assert (total["workspaces"], total["fresh"], total["withoutRow"], total["erroring"]) == (8, 4, 1, 4)
    assert total["fresh"] + sum(total["stale"].values()) + total["changed"] + total["withoutRow"] == 8
    direct = next(item for item in report["sources"] if item["source"] == "DIRECT_BOOK")
    assert [(line["provider"], line["workspaces"], line["fresh"]) for line in direct["providers"]] == [("ghl", 1, 1)]
    assert direct["unusedRows"] == 0


def test_failures_are_grouped_by_their_normalised_message_with_an_example(world, db_url):
    reasons = status_json(db_url)["failureReasons"]
    assert reasons[0] == {
        "source": "DEFAULT",
        "reason": "HubSpot availability-page (month <n>) answered HTTP 500",
        "count": 2,
        "exampleClientId": "hub-down-1",
    }
    by_reason = {item["reason"]: item for item in reasons}
    unsupported = by_reason["Unsupported calendar link. Supported: Calendly, HubSpot, or GoHighLevel. URL: <url>"]
    assert (unsupported["count"], unsupported["exampleClientId"]) == (1, "unsupported")
    duration = next(item for item in reasons if item["reason"].startswith("Unsupported meeting duration (<n>m)"))
    assert duration["exampleClientId"] == "long-meet"
    assert sum(item["count"] for item in reasons) == 4


def test_oldest_successful_refreshes_come_first(world, db_url):
    oldest = status_json(db_url)["oldestSuccessful"]
    assert [(row["clientId"], row["source"]) for row in oldest[:2]] == [("hub-ok", "DEFAULT"), ("cal-ok", "DEFAULT")]
    assert oldest[0]["provider"] == "hubspot"
    assert oldest[0]["ageMinutes"] == pytest.approx(3 * 24 * 60 + 60, abs=2)
    assert {row["clientId"] for row in oldest} == {"hub-ok", "cal-ok", "ghl-ok"}  # erroring rows are not successes


def test_text_overview_shows_the_same_numbers(world, db_url):
    result = status(db_url)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    default = lines.index("DEFAULT")
    header = lines[default + 1].split()
    assert header[:4] == ["provider", "workspaces", "no", "row"]
    table = {line.split()[0]: [int(cell) for cell in line.split()[1:]] for line in lines[default + 2 : default + 7]}
    #                    workspaces no-row fresh  <2m 2-15m 15m-1h 1-24h >=24h changed erroring backoff
    assert table["calendly"] == [2, 0, 0, 0, 0, 1, 0, 0, 1, 1, 1]
    assert table["hubspot"] == [4, 1, 2, 0, 0, 0, 0, 1, 0, 2, 0]
    assert table["all"] == [8, 1, 4, 0, 0, 1, 0, 1, 1, 4, 1]
    failure = next(line for line in lines if "HubSpot availability-page (month <n>) answered HTTP 500" in line)
    assert failure.split()[:3] == ["2", "DEFAULT", "hub-down-1"]
    oldest = lines.index(next(line for line in lines if line.startswith("Oldest successful refreshes")))
    assert "hub-ok" in lines[oldest + 1]
    assert "3.0 d" in lines[oldest + 1]


def test_a_direct_book_row_of_a_workspace_without_its_own_calendar_is_counted_as_unused(world, db_url):
    world.run('UPDATE "WorkspaceSettings" SET "ghlDirectBookCalendarId" = NULL WHERE "clientId" = \'ghl-ok\'')
    report = status_json(db_url)
    direct = next(item for item in report["sources"] if item["source"] == "DIRECT_BOOK")
    assert (direct["total"]["workspaces"], direct["unusedRows"]) == (0, 1)
    assert "+ 1 rows of workspaces without a distinct direct-book calendar" in status(db_url).out


# --- one workspace's story ------------------------------------------------------------------------


def test_client_story_of_a_fresh_workspace_with_both_sources(world, db_url):
    story = status_json(db_url, "--client", "ghl-ok")
    assert (story["clientId"], story["agency"], story["defaultLinks"]) == ("ghl-ok", "agency-1", 1)
    assert story["defaultLink"]["id"] == "link-ghl-ok"
    assert story["settings"]["ghlDirectBookCalendarId"] == GHL_B
    default, direct = story["sources"]
    assert default["function"]["url"] == f"https://api.leadconnectorhq.com/widget/booking/{GHL_A}"
    assert (default["function"]["calendarType"], default["function"]["provider"]) == ("ghl", "ghl")
    assert default["function"]["nextRun"].startswith("calls ghl for https://api.leadconnectorhq.com/")
    stored = world.row("ghl-ok")
    assert default["slots"] == {
        "count": len(stored.slots),
        "ahead": len(stored.slots),
        "first": stored.slots[0],
        "last": stored.slots[-1],
    }
    assert default["row"]["providerMeta"] == stored.provider_meta
    assert default["row"]["staleAt"] == stored.stale_at.isoformat()
    assert default["lastError"] is None
    assert default["reader"] == {"fresh": True, "reasons": []}
    assert direct["function"]["eligible"] is True
    assert direct["row"]["providerMeta"]["ghlCalendarId"] == GHL_B
    assert direct["reader"]["fresh"] is True


def test_client_story_says_why_the_reader_would_refresh(world, db_url):
    stale = status_json(db_url, "--client", "cal-ok")["sources"][0]
    assert stale["reader"] == {"fresh": False, "reasons": [STALE]}
    long_meet = status_json(db_url, "--client", "long-meet")
    default = long_meet["sources"][0]
    assert long_meet["settings"]["meetingDurationMinutes"] == 60
    assert default["function"]["inBackoff"] is True
    assert default["function"]["nextRun"].startswith("skipped (skippedBackoff) until staleAt")
    assert default["row"]["slotDurationMinutes"] == 60
    assert default["lastError"].startswith("Unsupported meeting duration (60m)")
    # The origin's reader refreshes a Calendly row without an event-type id on every read, even in backoff.
    assert default["reader"] == {"fresh": False, "reasons": [META_MISSING]}
    assert long_meet["sources"][1]["function"]["eligible"] is False
    assert long_meet["sources"][1]["reader"] is None
    # A changed link and meeting length are noticed before the row's staleAt.
    world.run('UPDATE "CalendarLink" SET "url" = \'https://meetings.hubspot.com/bob\' WHERE "clientId" = \'ghl-ok\'')
    world.settings("hub-down-1", meetingDurationMinutes=45)
    assert status_json(db_url, "--client", "ghl-ok")["sources"][0]["reader"]["reasons"] == [URL_CHANGED]
    assert status_json(db_url, "--client", "hub-down-1")["sources"][0]["reader"]["reasons"] == [DURATION_CHANGED]


def test_client_story_as_text(world, db_url):
    result = status(db_url, "--client", "hub-down-1")
    assert result.code == 0, result.err
    text = result.out
    assert text.startswith("Workspace hub-down-1\n")
    assert "default link: link-hub-down-1, type 'unknown', url 'https://meetings.hubspot.com/down'" in text
    assert "settings: no WorkspaceSettings row (meeting length 30 min, provider GHL)" in text
    assert "the function reads https://meetings.hubspot.com/down as 'hubspot'" in text
    assert "next run: calls hubspot for https://meetings.hubspot.com/down" in text
    assert "0 slots" in text
    assert "lastError: HubSpot availability-page (month 0) answered HTTP 500" in text
    assert "application's reader: FRESH" in text
    assert "DIRECT_BOOK\n  next run: skipped (skippedNotConfigured)" in text


def test_a_workspace_without_a_row_or_settings(world, db_url):
    story = status_json(db_url, "--client", "late")
    assert story["settings"] is None
    assert story["sources"][0]["row"] is None
    assert story["sources"][0]["reader"] == {"fresh": False, "reasons": ["no cache row"]}
    assert "row: none" in status(db_url, "--client", "late").out


def test_an_unknown_client_is_a_clear_error_with_exit_1(world, db_url):
    result = status(db_url, "--client", "nobody-here")
    assert (result.code, result.out) == (1, "")
    assert result.err == "status: no workspace with id 'nobody-here' (Client.id)\n"


# --- the plot -------------------------------------------------------------------------------------


def test_plot_writes_a_png_of_the_cache_ages(world, db_url, tmp_path):
    path = tmp_path / "ages.png"
    result = status(db_url, "--plot", str(path))
    assert result.code == 0, result.err
    assert f"plot of 8 cache ages written to {path}" in result.out
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(str(path)).shape
    assert (width, height) == (900, 720)  # two panels: DEFAULT and DIRECT_BOOK


def test_the_text_view_does_not_import_matplotlib(world, db_url):
    check = (
        "import sys; from devtools.status.cli import main; "
        f"code = main([], env={{'DATABASE_URL': {db_url!r}}}); "
        "assert code == 0, code; assert 'matplotlib' not in sys.modules, 'imported'"
    )
    finished = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert finished.returncode == 0, finished.stderr


# --- read-only, statement timeout, no lock --------------------------------------------------------


def test_the_session_is_read_only_with_the_statement_timeout(db_url):
    target = parse_database_url(db_url, variable="DATABASE_URL")
    with read_only_session(target, statement_timeout_s=5) as db:
        assert db.run("SHOW statement_timeout") == [["5s"]]
        assert db.run("SHOW transaction_read_only") == [["on"]]
        with pytest.raises(DatabaseError, match="read-only transaction"):
            db.run('DELETE FROM "WorkspaceAvailabilityCache"')


def test_a_slow_statement_is_cancelled_by_the_statement_timeout(world, db_url):
    blocker = Seeder(db_url)
    try:
        blocker.run("BEGIN")
        blocker.run('LOCK TABLE "WorkspaceAvailabilityCache" IN ACCESS EXCLUSIVE MODE')
        started = time.monotonic()
        result = status(db_url, "--statement-timeout", "1")
        elapsed = time.monotonic() - started
    finally:
        blocker.run("ROLLBACK")
        blocker.close()
    assert result.code == 2
    assert "canceling statement due to statement timeout (SQLSTATE 57014)" in result.err
    assert result.err.count("\n") == 1
    assert elapsed < 10  # the socket's own timeout would take 11 s, with another message


def test_status_takes_no_advisory_lock(world, db_url):
    blocker = Seeder(db_url)
    watcher = Seeder(db_url)
    outcome: list[Outcome] = []
    try:
        blocker.run("BEGIN")
        blocker.run('LOCK TABLE "WorkspaceAvailabilityCache" IN ACCESS EXCLUSIVE MODE')
        thread = threading.Thread(target=lambda: outcome.append(status(db_url, "--statement-timeout", "60")))
        thread.start()
        pid = _wait_for_blocked_status(watcher)
        # Mid-run (its session open, its snapshot taken, waiting on the table): no advisory lock anywhere.
        assert watcher.run("SELECT pid, objid FROM pg_locks WHERE locktype = 'advisory'") == []
        assert watcher.run("SELECT count(*) FROM pg_locks WHERE pid = :pid AND granted", pid=pid)[0][0] > 0
        blocker.run("ROLLBACK")
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        blocker.close()
        watcher.close()
    assert outcome[0].code == 0, outcome[0].err
    assert "hub-down-1" in outcome[0].out


def test_status_runs_while_runs_of_both_sources_hold_their_locks(world, db_url):
    holder = Seeder(db_url)
    try:
        holder.run("SELECT pg_advisory_lock(:key), pg_advisory_lock(:key + 1)", key=DEFAULT_LOCK_KEY)
        result = status(db_url, "--statement-timeout", "5")
    finally:
        holder.close()
    assert result.code == 0, result.err
    assert "hub-down-1" in result.out


def _wait_for_blocked_status(watcher: Seeder) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = watcher.run(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name AND wait_event_type = 'Lock'",
            name=APPLICATION_NAME,
        )
        if rows:
            pid: int = rows[0][0]
            return pid
        time.sleep(0.05)
    raise AssertionError("the status session never waited on the table lock")


# --- a bad database -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://admin:Sekr1t-Pa55@db.internal/app", "DATABASE_URL: must be a postgresql:// URL"),
        ("postgresql://admin:Sekr1t-Pa55@127.0.0.1:{port}/app", "Database unreachable at 127.0.0.1:{port}/app"),
    ],
)
def test_a_bad_database_url_is_one_line_with_exit_2_and_no_password(url, expected):
    port = free_port()
    result = status(url.format(port=port))
    assert result.code == 2
    assert result.out == ""
    assert result.err.startswith(f"status: {expected.format(port=port)}")
    assert result.err.count("\n") == 1
    assert "Sekr1t-Pa55" not in result.err


def test_a_wrong_password_is_named_without_echoing_it(db_url):
    head, _, tail = db_url.partition("@")
    wrong = head.rsplit(":", 1)[0] + ":Wr0ng-Pa55w0rd@" + tail
    finished = subprocess.run(
        [sys.executable, "-m", "devtools.status"],
        cwd=ROOT,
        env={"DATABASE_URL": wrong, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert finished.stderr.startswith("status: Database authentication failed at 127.0.0.1:")
    assert finished.stderr.count("\n") == 1
    assert "Wr0ng-Pa55w0rd" not in finished.stderr


def test_no_database_url_is_exit_2():
    out, err = io.StringIO(), io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        code = main([], env={}, out=out)
    finally:
        sys.stderr = saved
    assert code == 2
    assert err.getvalue() == "status: DATABASE_URL: not set (nor DIRECT_URL)\n"


def test_direct_url_wins_over_database_url(world, db_url):
    out = io.StringIO()
    assert main(["--json"], env={"DIRECT_URL": db_url, "DATABASE_URL": "mysql://nope"}, out=out) == 0
    assert json.loads(out.getvalue())["sources"][0]["total"]["workspaces"] == 8


# --- the demo and the local database --------------------------------------------------------------


def test_status_of_the_demo_after_a_run(client, seed, db_url, monkeypatch):
    with ProviderSandbox(generate_unknown=True) as sandbox:
        sandbox.set_fault(BROKEN_HUBSPOT_SLUG, Fault(status=500))
        for name in ("CALENDLY_BASE_URL", "HUBSPOT_BASE_URL", "GHL_BASE_URL"):
            monkeypatch.setenv(name, sandbox.base_url)
        monkeypatch.setenv("AVAILABILITY_CACHE_TTL_MS", "3600000")
        assert seed_demo(seed.connection) == 36
        run_cron(client)
    report = status_json(db_url)
    total = _line(report, "DEFAULT", "all")
    assert (total["workspaces"], total["withoutRow"], total["fresh"]) == (36, 0, 35)
    assert total["erroring"] == 4  # three broken links and the 60-minute workspace
    assert total["inBackoff"] == 1
    examples = {item["exampleClientId"] for item in report["failureReasons"]}
    assert examples == {"broken-hubspot", "broken-page-down", "broken-unsupported", "long-meetings"}
    assert status(db_url, "--client", "bluebird-03").code == 0


@pytest.fixture
def local_server_dir() -> Iterator[Path]:
    """A data directory as `make run` leaves it: schema and demo in place, server stopped.

    In a mkdtemp folder, as conftest's server: pytest's own base folder is reset to mode 0700 by
    every pytest session that starts meanwhile, which a server running as another user (root's
    case) cannot cross."""
    data_dir = Path(tempfile.mkdtemp(prefix="availability-cron-status-")) / "postgres"
    server = EmbeddedPostgres(data_dir).start()
    try:
        apply_schema(server.url())
        connection = admin_connection(server.url())
        seed_demo(connection)
        connection.close()
    finally:
        server.stop()
    try:
        yield data_dir
    finally:
        EmbeddedPostgres(data_dir).destroy()  # its cluster too, wherever it lives
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def _pid_file(data_dir: Path) -> Path:
    """The cluster's pid file: in data_dir, or where pgserver relocated it (root, private folder)."""
    return EmbeddedPostgres(data_dir).pgdata / "postmaster.pid"


def test_local_database_is_started_for_the_view_and_stopped_after(local_server_dir):
    assert not _pid_file(local_server_dir).exists()
    with local_database_url(local_server_dir) as url:
        assert _pid_file(local_server_dir).exists()
        report = status_json(url)
    assert _line(report, "DEFAULT", "all")["withoutRow"] == 36
    assert not _pid_file(local_server_dir).exists()


def test_local_database_already_running_is_used_and_left_running(local_server_dir):
    server = EmbeddedPostgres(local_server_dir).start()
    try:
        with local_database_url(local_server_dir) as url:
            assert f":{server.port}/" in url
        assert _pid_file(local_server_dir).exists()
    finally:
        server.stop()


def test_no_local_database_says_what_to_do(tmp_path):
    with (
        pytest.raises(LocalDatabaseError, match=r"run `make run` or `make run-once` first"),
        local_database_url(tmp_path / "postgres"),
    ):
        pass


# --- the pure parts: the reader's predicate and the failure shapes --------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LINK = "https://calendly.com/acme/intro"


def _row(**changes: Any) -> StoredRow:
    values: dict[str, Any] = {
        "calendar_link_id": "link-1",
        "calendar_type": "calendly",
        "calendar_url": LINK,
        "slot_duration_minutes": 30,
        "provider_meta": {"calendlyEventTypeUuid": "0d3f…"},
        "stale_at": NOW + timedelta(seconds=30),
    }
    values.update(changes)
    return StoredRow(**values)


WORKSPACE = WorkspaceNow("link-1", LINK, 30)


@pytest.mark.parametrize(
    ("row", "workspace", "reasons"),
    [
        (_row(), WORKSPACE, ()),
        (_row(stale_at=NOW), WORKSPACE, (STALE,)),  # staleAt <= now: stale at the very instant
        (_row(calendar_link_id="link-0"), WORKSPACE, (LINK_CHANGED,)),
        (_row(calendar_url="calendly.com/acme/intro"), WORKSPACE, ()),  # compared normalised
        (_row(calendar_url="https://calendly.com/acme/other"), WORKSPACE, (URL_CHANGED,)),
        (_row(calendar_link_id=None, calendar_url=""), WorkspaceNow(None, "", 30), ()),  # no link: no change flag
        (_row(slot_duration_minutes=60), WORKSPACE, (DURATION_CHANGED,)),
        (_row(provider_meta={}), WORKSPACE, (META_MISSING,)),
        (_row(provider_meta={"calendlyEventTypeUuid": None}), WORKSPACE, (META_MISSING,)),
        (_row(provider_meta={"calendlyEventTypeUuid": ""}), WORKSPACE, (META_MISSING,)),
        (_row(provider_meta=None), WORKSPACE, (META_MISSING,)),
        (_row(provider_meta={"calendlyEventTypeUuid": []}), WORKSPACE, ()),  # truthy in JavaScript
        (_row(provider_meta={}, calendar_url=""), WorkspaceNow("link-1", "", 30), ()),  # no URL: no metaMissing
        (_row(provider_meta={}, calendar_type="Calendly"), WORKSPACE, ()),  # exact, case-sensitive type
        (_row(provider_meta={}, calendar_type="hubspot"), WORKSPACE, ()),
        (
            _row(stale_at=NOW - timedelta(days=1), calendar_link_id="x", slot_duration_minutes=45, provider_meta={}),
            WORKSPACE,
            (STALE, LINK_CHANGED, DURATION_CHANGED, META_MISSING),
        ),
    ],
)
def test_the_readers_predicate(row, workspace, reasons):
    verdict = reader_verdict(row, workspace, NOW)
    assert (verdict.fresh, verdict.reasons) == (not reasons, reasons)


def test_the_reader_refreshes_when_there_is_no_row():
    assert reader_verdict(None, WORKSPACE, NOW) == ReaderVerdict(False, (NO_ROW,))


@pytest.mark.parametrize(
    ("message", "shape"),
    [
        (
            "HubSpot availability-page (month 2) answered HTTP 503",
            "HubSpot availability-page (month <n>) answered HTTP 503",
        ),
        (
            "GoHighLevel calendar abcDEF123456ghiJKL (from the booking page) not found",
            "GoHighLevel calendar <id> (from the booking page) not found",
        ),
        (
            "HubSpot meetings link not found: slug 'jane-doe' does not exist",
            "HubSpot meetings link not found: slug '<id>' does not exist",
        ),
        ("Calendly event type not found for https://calendly.com/x/y?a=1.", "Calendly event type not found for <url>."),
        ("Could not resolve booking.acme-agency.io: no such host", "Could not resolve <host>: no such host"),
        (
            "GoHighLevel booking page: connection failed at 10.0.0.7:8443",
            "GoHighLevel booking page: connection failed at <host>",
        ),
        ("Calendly timed out after 12.5 s", "Calendly timed out after <n> s"),
        ("error body (422: 9f1c2e3d-aaaa-bbbb-cccc-0123456789ab)", "error body (<n>: <id>)"),
        ("No availability slots found", "No availability slots found"),
    ],
)
def test_failure_messages_are_reduced_to_their_shape(message, shape):
    assert normalize_error(message) == shape
