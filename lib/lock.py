"""The run's PostgreSQL session advisory lock, taken and released on the same connection."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from lib.db import Database
from lib.errors import DatabaseError
from lib.logs import log_event
from lib.options import Source

log = logging.getLogger(__name__)

# The DIRECT_BOOK source runs as its own invocation with its own key, so both sources refresh in
# parallel every minute: base key + 1 (the application's other keys, 62062062062…, are far away).
DIRECT_BOOK_KEY_OFFSET = 1

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(CAST(:key AS bigint))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(CAST(:key AS bigint))"


def lock_key(base_key: int, source: Source) -> int:
    """The advisory lock key of a run of `source`."""
    return base_key + DIRECT_BOOK_KEY_OFFSET if source is Source.DIRECT_BOOK else base_key


@contextmanager
def advisory_lock(db: Database, key: int) -> Iterator[bool]:
    """Yield whether the lock was acquired; release it on the way out, whatever happened inside."""
    acquired = bool(db.run(TRY_LOCK_SQL, key=key)[0][0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                db.run(UNLOCK_SQL, key=key)
            except DatabaseError as exc:
                # The connection is gone, and with it the session that held the lock: nothing is leaked.
                log_event(log, logging.WARNING, "unlock_failed", error=exc.kind, detail="ended with session")
