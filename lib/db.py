"""The database connection: the only module that imports pg8000; its errors become DatabaseError here."""

from __future__ import annotations

import logging
import math
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pg8000.exceptions
import pg8000.native

from lib.dburl import VERIFY_FULL, VERIFY_NONE, DatabaseTarget
from lib.deadline import Deadline
from lib.errors import DatabaseError

log = logging.getLogger(__name__)

# A half-open connection (the server vanished without a FIN) is noticed after about
# KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT seconds of silence.
KEEPALIVE_IDLE_S = 15
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
# The lock lives in the server's session, so the server must notice a vanished client too (an
# instance gone without closing its socket): the same probes, asked of the server for this session
# (its system default is about 2 h 11 min, during which every run would be skipped as locked).
# Keepalive probes only catch a peer whose kernel stopped answering, though. An instance that hangs
# while its kernel (or a proxy on the way) still acknowledges every probe would hold the lock for
# ever, so the server also ends the session after SESSION_IDLE_LIMIT_S without a statement; a run
# speaks at least every couple of seconds (its heartbeat, lib/run.py), far inside it. PostgreSQL
# before 14 has no idle_session_timeout: selecting it from pg_settings sets it only where it exists.
SESSION_IDLE_LIMIT_S = 30
# The same statement sets the session's statement timeout (0: none), so bounding a run's statements
# costs no round trip of its own until the end is near. The values are integers we compute, written
# into the text: without parameters pg8000 uses the simple protocol (one message, no Parse/Sync pair).
SESSION_SETTINGS_SQL = (
    "SELECT set_config('tcp_keepalives_idle', '{keepalive_idle_s:d}', false), "
    "set_config('tcp_keepalives_interval', '{keepalive_interval_s:d}', false), "
    "set_config('tcp_keepalives_count', '{keepalive_count:d}', false), "
    "set_config('statement_timeout', '{statement_timeout_ms:d}', false), "
    "(SELECT set_config(name, '{idle_limit_ms:d}', false) FROM pg_settings WHERE name = 'idle_session_timeout')"
)

UNREACHABLE = "Database unreachable"
AUTH_FAILED = "Database authentication failed"
NOT_FOUND = "Database not found"
SCHEMA_MISSING = "Database schema missing"
QUERY_FAILED = "Database error"
CONNECTION_LOST = "Database connection lost"
# A statement ran out of the time the run could give it (SQLSTATE 57014, or no time was left to send it).
STATEMENT_TIMEOUT = "Database statement timed out"
# A row broke an integrity constraint (SQLSTATE class 23: a foreign key to a workspace deleted meanwhile).
CONSTRAINT_VIOLATED = "Database constraint violated"
# The server's TLS certificate failed verification (sslmode=verify-ca/verify-full, sslaccept=strict),
# or the CA file to verify it with could not be read.
CERTIFICATE_REJECTED = "Database certificate rejected"
# pg8000's words when the server answers the TLS request with "N" (it has TLS off).
SERVER_REFUSES_TLS = "Server refuses SSL"

# Near the cutoff (once the socket timeout below is the one derived from it), the server's statement
# timeout is set again when the one in force could let a statement run more than this past the cutoff.
STATEMENT_TIMEOUT_SLACK_S = 0.25
# The socket waits this much longer than the statement timeout, so that the server's cancellation
# (which leaves the connection usable) normally arrives before the socket gives up on a silent peer.
SOCKET_TIMEOUT_MARGIN_S = 0.3
SET_STATEMENT_TIMEOUT_SQL = "SELECT set_config('statement_timeout', CAST(:ms AS text), false)"

# SQLSTATE codes worth a class of their own in the report.
_SQLSTATE_KINDS = {
    "28P01": AUTH_FAILED,
    "28000": AUTH_FAILED,
    "3D000": NOT_FOUND,
    "42P01": SCHEMA_MISSING,  # undefined table
    "42703": SCHEMA_MISSING,  # undefined column
    "42704": SCHEMA_MISSING,  # undefined type (the enums)
    "3F000": SCHEMA_MISSING,  # undefined schema
    "57014": STATEMENT_TIMEOUT,  # query_canceled: our statement_timeout
}


class Database:
    """One pg8000 connection. Not thread-safe: only the thread that holds the lock uses it."""

    def __init__(self, connection: pg8000.native.Connection, target: DatabaseTarget, read_timeout_s: float) -> None:
        self._connection = connection
        self._target = target
        self._read_timeout_s = read_timeout_s
        self._cutoff: Deadline | None = None
        self._timeout_set_at: float | None = None  # monotonic time the statement timeout was last set

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        """Execute one statement with `:named` parameters and return its rows."""
        try:
            if self._cutoff is not None:
                self._fit_timeout_to_cutoff(self._cutoff)
            rows = self._connection.run(sql, **params)
        except Exception as exc:
            raise translate_error(exc, self._target) from exc
        return rows if rows is not None else []

    def bound_statements(self, cutoff: Deadline, *, server_timeout_set_at: float | None = None) -> None:
        """From now on no statement runs past `cutoff` (give or take SOCKET_TIMEOUT_MARGIN_S): none is
        sent once it has passed, and each gets a socket timeout and a server statement timeout that end
        by it. `server_timeout_set_at`: when the session's statement timeout was set to end at `cutoff`."""
        self._cutoff = cutoff
        self._timeout_set_at = server_timeout_set_at

    def _fit_timeout_to_cutoff(self, cutoff: Deadline) -> None:
        now = time.monotonic()
        left = cutoff.at - now
        if left <= 0:
            raise DatabaseError(STATEMENT_TIMEOUT, f"{STATEMENT_TIMEOUT} at {self._target.describe()}: no time left")
        # Client side, and free: a silent peer is given up on by the cutoff, never later than before.
        self._set_socket_timeout(min(self._read_timeout_s, left + SOCKET_TIMEOUT_MARGIN_S))
        if left + SOCKET_TIMEOUT_MARGIN_S >= self._read_timeout_s:
            return  # far from the cutoff: the read timeout ends a stalled statement well before it
        # Near it, the server should cancel first (the connection stays usable): its timeout, set at
        # T0 to end at the cutoff, lets a statement starting now run (now - T0) past it.
        if self._timeout_set_at is not None and now - self._timeout_set_at <= STATEMENT_TIMEOUT_SLACK_S:
            return
        self._connection.run(SET_STATEMENT_TIMEOUT_SQL, ms=max(1, math.ceil(left * 1000)))
        self._timeout_set_at = now

    def _set_socket_timeout(self, seconds: float) -> None:
        # pg8000 keeps the (possibly TLS-wrapped) socket it reads from in `_usock` and offers no public
        # way to change its timeout after connecting; without this, a silent peer holds a statement for
        # the whole connect timeout whatever the statement timeout says.
        sock = getattr(self._connection, "_usock", None)
        if isinstance(sock, socket.socket):
            sock.settimeout(seconds)

    def close(self) -> None:
        try:
            self._connection.close()
        except Exception:
            log.debug("closing the database connection failed", exc_info=True)


@contextmanager
def connect(target: DatabaseTarget, *, timeout_s: float, cutoff: Deadline | None = None) -> Iterator[Database]:
    """A connection for the length of the block; `timeout_s` bounds the connect and every later read,
    and with a `cutoff` no statement runs past it (Database.bound_statements)."""
    timeout = target.connect_timeout_s or timeout_s
    connection = _open(target, timeout)
    database = Database(connection, target, timeout)
    try:
        database.run("SET TIME ZONE 'UTC'")
        set_at = time.monotonic()
        timeout_ms = max(1, math.ceil((cutoff.at - set_at) * 1000)) if cutoff is not None else 0
        settings_sql = SESSION_SETTINGS_SQL.format(
            keepalive_idle_s=KEEPALIVE_IDLE_S,
            keepalive_interval_s=KEEPALIVE_INTERVAL_S,
            keepalive_count=KEEPALIVE_COUNT,
            statement_timeout_ms=timeout_ms,
            idle_limit_ms=int(SESSION_IDLE_LIMIT_S * 1000),
        )
        database.run(settings_sql)
        if cutoff is not None:
            database.bound_statements(cutoff, server_timeout_set_at=set_at)
        if target.search_path:
            database.run(f"SET search_path TO {_quote_identifier(target.search_path)}")
        yield database
    finally:
        database.close()


def _open(target: DatabaseTarget, timeout: float) -> pg8000.native.Connection:
    common: dict[str, Any] = {
        "user": target.user,
        "password": target.password,
        "database": target.database,
        "timeout": timeout,
        "application_name": target.application_name,
    }
    try:
        if target.unix_socket:
            return pg8000.native.Connection(unix_sock=target.unix_socket, **common)
        host = target.host or "localhost"
        context = _ssl_context(target)
        try:
            return pg8000.native.Connection(host=host, sock=_tcp_socket(target, timeout), ssl_context=context, **common)
        except pg8000.exceptions.InterfaceError as exc:
            # sslmode=prefer/allow: a server with TLS off is acceptable, so try once more in plain text.
            # Only then: a certificate that fails verification is never a reason to drop TLS.
            if context is False or target.ssl_mode not in ("prefer", "allow") or str(exc) != SERVER_REFUSES_TLS:
                raise
            return pg8000.native.Connection(host=host, sock=_tcp_socket(target, timeout), ssl_context=False, **common)
    except Exception as exc:
        raise translate_error(exc, target) from exc


def _tcp_socket(target: DatabaseTarget, timeout: float) -> socket.socket:
    sock = socket.create_connection((target.host or "localhost", target.port), timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):  # Linux; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


def _ssl_context(target: DatabaseTarget) -> ssl.SSLContext | bool:
    """False for plain text; otherwise the TLS context pg8000 wraps the socket with (it passes the host
    as server_hostname, which is both the SNI and the name verify-full checks)."""
    if target.ssl_mode == "disable":
        return False  # pg8000 would otherwise still try TLS first (its default for None)
    if target.ssl_verify == VERIFY_NONE:
        # require / prefer / allow: encrypt without verifying, as libpq does.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        context = ssl.create_default_context(cafile=target.ssl_root_cert)
    except (OSError, ssl.SSLError) as exc:
        raise DatabaseError(
            CERTIFICATE_REJECTED,
            f"{CERTIFICATE_REJECTED} at {target.describe()}: the CA file (sslrootcert) cannot be used "
            f"({type(exc).__name__}: {getattr(exc, 'strerror', None) or exc})",
        ) from exc
    context.check_hostname = target.ssl_verify == VERIFY_FULL
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def translate_error(exc: BaseException, target: DatabaseTarget) -> DatabaseError:
    """Map a pg8000 or socket error to a DatabaseError whose text holds no password."""
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, pg8000.exceptions.DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        fields: dict[str, str] = exc.args[0]
        code = fields.get("C", "")
        kind = _SQLSTATE_KINDS.get(code, QUERY_FAILED)
        # Class 08 (connection exception) and 57P0x (the server ended the session: terminated by an
        # administrator, shut down, idle timeout): the session, and any lock it held, is gone.
        if code.startswith(("08", "57P0")):
            kind = CONNECTION_LOST
        elif code.startswith("23"):
            kind = CONSTRAINT_VIOLATED
        message = f"{kind} at {target.describe()}: {fields.get('M', 'unknown error')} (SQLSTATE {code})"
    elif isinstance(exc, ssl.SSLCertVerificationError):
        kind = CERTIFICATE_REJECTED
        message = f"{CERTIFICATE_REJECTED} at {target.describe()}: {exc.verify_message or exc.reason}"
    elif isinstance(exc, (OSError, pg8000.exceptions.InterfaceError)):
        kind = UNREACHABLE
        message = f"{UNREACHABLE} at {target.describe()}: {type(exc).__name__}: {exc}"
    else:
        kind = QUERY_FAILED
        message = f"{QUERY_FAILED} at {target.describe()}: {type(exc).__name__}: {exc}"
    return DatabaseError(kind, _without_password(message, target))


def _without_password(message: str, target: DatabaseTarget) -> str:
    if target.password:
        message = message.replace(target.password, "***")
    return message


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
