"""`make status`: the local database of `make run` (the embedded server whose data is in .local/),
used where it is already running, or started for the length of the view and stopped after."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.local_run import LOCAL_DIR
from devtools.pgserver import EmbeddedPostgres
from lib.errors import AvailabilityCronError

LOCAL_SERVER_DIR = LOCAL_DIR / "postgres"  # what devtools/local_run.py starts
PORT_LINE = 3  # postmaster.pid: pid, data directory, start time, port, socket directory, ...


class LocalDatabaseError(AvailabilityCronError):
    """The local database is missing or could not be started."""


@contextmanager
def local_database_url(data_dir: Path = LOCAL_SERVER_DIR) -> Iterator[str]:
    """The admin URL of the local server; a server this starts is stopped when the block ends."""
    server = EmbeddedPostgres(data_dir)  # its cluster may live elsewhere (as root: devtools/pgstaging.py)
    if not (server.pgdata / "PG_VERSION").exists():
        raise LocalDatabaseError(f"no local database in {data_dir}: run `make run` or `make run-once` first")
    port = running_port(server.pgdata)
    if port is not None:
        yield EmbeddedPostgres(data_dir, port=port).url()
        return
    try:
        server.start()
    except (RuntimeError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LocalDatabaseError(f"could not start the local database in {data_dir}: {first_line}") from exc
    try:
        yield server.url()
    finally:
        server.stop()


def running_port(pgdata: Path) -> int | None:
    """The port of the server running on `pgdata` (from its postmaster.pid), if one answers there."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        port = int(lines[PORT_LINE])
    except (OSError, IndexError, ValueError):
        return None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return port
    except OSError:
        return None  # a pid file left by a killed server: start() takes over
