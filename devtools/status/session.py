"""The status view's database session: one connection, one read-only transaction on one snapshot,
a short statement timeout, and never the run's advisory lock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

from lib.db import Database, connect
from lib.dburl import DatabaseTarget
from lib.errors import DatabaseError

log = logging.getLogger(__name__)

APPLICATION_NAME = "availability-cron-status"  # how the session shows in pg_stat_activity
DEFAULT_STATEMENT_TIMEOUT_S = 5.0
# The socket waits longer than the server's own timeout, so a slow statement ends with the server's
# clear "statement timeout" rather than a socket error.
SOCKET_SLACK_S = 10.0

# REPEATABLE READ: every query of the view sees the same snapshot, so the counts add up.
BEGIN_SQL = "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"
# is_local = true: the settings end with the transaction (SET LOCAL).
TIMEOUTS_SQL = (
    "SELECT set_config('statement_timeout', CAST(:ms AS text), true), "
    "set_config('idle_in_transaction_session_timeout', CAST(:idle_ms AS text), true)"
)
NOW_SQL = "SELECT now()"
END_SQL = "ROLLBACK"


@contextmanager
def read_only_session(target: DatabaseTarget, *, statement_timeout_s: float) -> Iterator[Database]:
    """A connection inside a read-only transaction; every statement is cancelled after the timeout."""
    timeout_ms = max(1, round(statement_timeout_s * 1000))
    named = replace(target, application_name=APPLICATION_NAME)
    with connect(named, timeout_s=statement_timeout_s + SOCKET_SLACK_S) as db:
        db.run(BEGIN_SQL)
        try:
            db.run(TIMEOUTS_SQL, ms=timeout_ms, idle_ms=timeout_ms * 12)
            yield db
        finally:
            try:
                db.run(END_SQL)
            except DatabaseError:
                log.debug("ending the read-only transaction failed; the connection closes anyway", exc_info=True)


def database_now(db: Database) -> datetime:
    """The transaction's start time by the database's clock, in UTC (the view's `now`)."""
    value: datetime = db.run(NOW_SQL)[0][0]
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
