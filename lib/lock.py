"""The run's PostgreSQL session advisory lock, taken and released on the same connection."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from lib.db import Database
from lib.errors import DatabaseError
from lib.logs import log_event
from lib.model import Shard, Source

log = logging.getLogger(__name__)

# Every (source, shard layout, shard) has its own key, so sources and shards refresh in parallel:
#   unsharded:          DEFAULT = base,  DIRECT_BOOK = base + 1
#   shard i of n (n>1): base + 2 * (n * (n - 1) / 2 + i) + (1 for DIRECT_BOOK, else 0)
# n * (n - 1) / 2 + i numbers the pairs (n, i), 0 <= i < n, without gaps or repeats (it is 1 for
# shard 0 of 2), so sharded keys run from base + 2 to base + 2 * (64 * 63 / 2 + 63) + 1 = base + 4159
# and never meet each other or the unsharded keys. The application's other keys (62062062062, …)
# are far from the default base, 61061061061.
DIRECT_BOOK_KEY_OFFSET = 1

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(CAST(:key AS bigint))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(CAST(:key AS bigint))"


def lock_key(base_key: int, source: Source, shard: Shard) -> int:
    """The advisory lock key of a run of `source` over `shard` (derivation above)."""
    source_offset = DIRECT_BOOK_KEY_OFFSET if source is Source.DIRECT_BOOK else 0
    if shard.count == 1:
        return base_key + source_offset
    pair_number = shard.count * (shard.count - 1) // 2 + shard.index
    return base_key + 2 * pair_number + source_offset


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
                # The connection is gone, and with it the session that held the lock; or the run's time
                # is up (lib/db.py sends nothing past it) and the connection is closed right after,
                # which ends the session and frees the lock. Either way nothing is leaked.
                log_event(log, logging.WARNING, "unlock_failed", error=exc.kind, detail="ended with session")
