"""The run's PostgreSQL session advisory lock, taken and released on the same connection."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from lib.db import Database
from lib.errors import DatabaseError

log = logging.getLogger(__name__)

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(CAST(:key AS bigint))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(CAST(:key AS bigint))"


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
                log.warning("advisory unlock failed; the lock ends with its session", extra={"error": exc.kind})
