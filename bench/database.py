"""The benchmark's PostgreSQL: an embedded server configured for repeatable measurement, a database per
scenario seeded in bulk, and the server-side counters every figure of the report is read from."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pg8000.native

from bench.workload import Provider, Workspace
from devtools.pgserver import EmbeddedPostgres, admin_connection, apply_schema, create_database, database_url

# Server settings for repeatable numbers: pg_stat_statements counts statements; no timed checkpoint
# or autovacuum lands inside a measured run (the bench vacuums between runs itself).
SERVER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track_utility": "on",
    "autovacuum": "off",
    "checkpoint_timeout": "1h",
    "max_wal_size": "16GB",
}
SEED_CHUNK = 5_000


@dataclass(frozen=True)
class Counters:
    """Cumulative server counters for one database (WAL figures are cluster-wide)."""

    transactions: int  # xact_commit + xact_rollback: one per Sync of the extended protocol
    statements: int  # pg_stat_statements calls
    wal_bytes: int  # pg_current_wal_insert_lsn() as a byte position
    wal_fpi: int  # full-page images written (pg_stat_wal)

    def minus(self, before: Counters) -> Counters:
        return Counters(
            self.transactions - before.transactions,
            self.statements - before.statements,
            self.wal_bytes - before.wal_bytes,
            self.wal_fpi - before.wal_fpi,
        )


class BenchServer:
    """An embedded server under `data_dir`, restarted once with SERVER_SETTINGS."""

    def __init__(self, data_dir: Path) -> None:
        self._server = EmbeddedPostgres(data_dir)
        self._admin: pg8000.native.Connection | None = None

    def start(self) -> BenchServer:
        self._server.start()
        with _connection(self._server.url()) as admin:
            for name, value in SERVER_SETTINGS.items():
                admin.run(f"ALTER SYSTEM SET {name} = '{value}'")
        self._server.restart()
        self._admin = admin_connection(self._server.url())
        # The view lives in each database that has the extension; the counts cover every database.
        self._admin.run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return self

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        self._server.stop()

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def admin(self) -> pg8000.native.Connection:
        assert self._admin is not None, "server not started"
        return self._admin

    def fresh_database(self, name: str) -> str:
        """A new database with the schema; returns its URL."""
        self.admin.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        create_database(self._server.url(), name)
        url = database_url(self._server.url(), name)
        apply_schema(url)
        return url

    def counters(self, database: str) -> Counters:
        """Read after every backend of `database` has exited, so its statistics are flushed."""
        self._wait_until_idle(database)
        self.admin.run("SELECT pg_stat_clear_snapshot()")
        row = self.admin.run(
            """
            SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = :db),
                   (SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s
                      JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = :db),
                   pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,
                   (SELECT wal_fpi FROM pg_stat_wal)
            """,
            db=database,
        )[0]
        return Counters(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def statement_breakdown(self, database: str, limit: int = 8) -> list[dict[str, Any]]:
        """The statements the refresh ran in `database`, most called first (for the report)."""
        rows = self.admin.run(
            """
            SELECT s.calls, s.rows, round(s.total_exec_time::numeric, 1)::float8, s.wal_bytes::bigint,
                   left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90)
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = :db ORDER BY s.calls DESC, s.total_exec_time DESC LIMIT :limit
            """,
            db=database,
            limit=limit,
        )
        keys = ("calls", "rows", "totalExecMs", "walBytes", "query")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def reset_statements(self) -> None:
        self.admin.run("SELECT pg_stat_statements_reset()")

    def prepare_run(self, url: str, *, checkpoint: bool) -> None:
        """Clean dead rows left by the previous run (autovacuum's job in production) outside the measurement."""
        with _connection(url) as connection:
            connection.run('VACUUM (ANALYZE) "WorkspaceAvailabilityCache"')
        if checkpoint:
            self.admin.run("CHECKPOINT")

    def cache_summary(self, url: str) -> tuple[int, float]:
        """Cache rows and their mean number of slots."""
        with _connection(url) as connection:
            row = connection.run(
                'SELECT count(*), coalesce(avg(jsonb_array_length("slotsUtc")), 0)::float8 '
                'FROM "WorkspaceAvailabilityCache"'
            )[0]
        return int(row[0]), float(row[1])

    def _wait_until_idle(self, database: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.admin.run("SELECT count(*) FROM pg_stat_activity WHERE datname = :db", db=database)[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"connections to {database} stayed open")
            time.sleep(0.05)
        time.sleep(0.3)  # an exiting backend flushes its statistics just before it leaves pg_stat_activity


@contextmanager
def _connection(url: str) -> Iterator[pg8000.native.Connection]:
    connection = admin_connection(url)
    try:
        yield connection
    finally:
        connection.close()


def seed(url: str, specs: Sequence[Workspace]) -> float:
    """Insert the workspaces (client, default link, settings) in multi-row statements; returns seconds."""
    started = time.monotonic()
    with _connection(url) as connection:
        for first in range(0, len(specs), SEED_CHUNK):
            _seed_chunk(connection, specs[first : first + SEED_CHUNK])
        connection.run('ANALYZE "Client", "CalendarLink", "WorkspaceSettings"')
    return time.monotonic() - started


def _seed_chunk(connection: pg8000.native.Connection, chunk: Sequence[Workspace]) -> None:
    rows = json.dumps(
        [
            {
                "id": w.client_id,
                "agency": w.agency,
                "url": w.url,
                "type": w.provider.value,
                "provider": "CALENDLY" if w.provider is Provider.CALENDLY else "GHL",
            }
            for w in chunk
        ]
    )
    records = "jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id text, agency text, url text, type text, provider text)"
    connection.run(
        f"""INSERT INTO "Client" ("id", "name", "userId", "updatedAt")
            SELECT r.id, 'Bench workspace ' || r.id, r.agency, now() FROM {records}""",
        rows=rows,
    )
    connection.run(
        f"""INSERT INTO "CalendarLink" ("id", "clientId", "name", "url", "type", "isDefault", "updatedAt")
            SELECT 'link-' || r.id, r.id, 'Book a call', r.url, r.type, true, now() FROM {records}""",
        rows=rows,
    )
    connection.run(
        f"""INSERT INTO "WorkspaceSettings" ("id", "clientId", "meetingBookingProvider", "updatedAt")
            SELECT 'settings-' || r.id, r.id, CAST(r.provider AS "MeetingBookingProvider"), now() FROM {records}""",
        rows=rows,
    )
