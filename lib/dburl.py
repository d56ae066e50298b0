"""Parsing of the PostgreSQL URLs Prisma uses (TCP and Cloud SQL unix-socket forms) into connect arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from lib.errors import ConfigError

DEFAULT_PORT = 5432
# Supabase/PgBouncer transaction pooler port: session advisory locks are unreliable behind it.
TRANSACTION_POOLER_PORT = 6543
SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
# Prisma's sslaccept: `strict` verifies the server's certificate chain and host name (verify-full);
# `accept_invalid_certs`, its default, encrypts without verifying (libpq's require).
SSL_ACCEPT_MODES = frozenset({"strict", "accept_invalid_certs"})
VERIFY_NONE, VERIFY_CA, VERIFY_FULL = "none", "ca", "full"
# Parameters Prisma (or libpq) understands that have no meaning for us; accepted and ignored.
IGNORED_PARAMETERS = frozenset(
    {
        "pgbouncer",
        "connection_limit",
        "pool_timeout",
        "socket_timeout",
        "statement_cache_size",
        "schema_cache",
        "sslcert",  # libpq: a client certificate (not supported); Prisma's CA file is read under sslaccept=strict
        "sslidentity",
        "sslpassword",
        "sslkey",
        "options",
        "target_session_attrs",
    }
)


@dataclass(frozen=True)
class DatabaseTarget:
    """Where and how to connect; the password is kept out of `repr`."""

    user: str
    password: str | None = field(repr=False)
    database: str
    host: str | None
    port: int
    unix_socket: str | None
    ssl_mode: str
    ssl_root_cert: str | None  # CA file trusted for verification; None: the system's trusted CAs
    ssl_verify: str  # VERIFY_NONE, VERIFY_CA (the chain) or VERIFY_FULL (the chain and the host name)
    search_path: str | None
    application_name: str
    connect_timeout_s: float | None
    behind_transaction_pooler: bool

    def describe(self) -> str:
        """Where the database is, for log lines and error messages (no credentials)."""
        where = self.unix_socket or f"{self.host}:{self.port}"
        return f"{where}/{self.database}"


def parse_database_url(url: str, *, variable: str) -> DatabaseTarget:
    """Parse a postgres URL; raises ConfigError naming `variable` (never echoing the URL)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(variable, "must be a postgresql:// URL")
    try:
        url_port = parts.port
    except ValueError as exc:
        raise ConfigError(variable, "has an invalid port") from exc
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    socket_dir = params.get("host", "").strip() or None
    host = unquote(parts.hostname) if parts.hostname else None
    if socket_dir and not socket_dir.startswith("/"):
        host, socket_dir = socket_dir, None
    if not host and not socket_dir:
        raise ConfigError(variable, "names no host (nor a ?host=/socket/dir)")
    port = url_port or _int_param(params, "port", variable) or DEFAULT_PORT
    ssl_mode = params.get("sslmode", "prefer").strip().lower() or "prefer"
    if ssl_mode not in SSL_MODES:
        raise ConfigError(variable, f"has an unknown sslmode (expected one of {', '.join(sorted(SSL_MODES))})")
    ssl_verify, ssl_root_cert = _verification(params, ssl_mode, variable)
    database = unquote(parts.path.lstrip("/")) or "postgres"
    connect_timeout = _int_param(params, "connect_timeout", variable)
    return DatabaseTarget(
        user=unquote(parts.username) if parts.username else "postgres",
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
        host=None if socket_dir else host,
        port=port,
        unix_socket=f"{socket_dir.rstrip('/')}/.s.PGSQL.{port}" if socket_dir else None,
        ssl_mode=ssl_mode,
        ssl_root_cert=ssl_root_cert,
        ssl_verify=ssl_verify,
        search_path=params.get("schema", "").strip() or None,
        application_name=params.get("application_name", "").strip() or "availability-cron",
        connect_timeout_s=float(connect_timeout) if connect_timeout else None,
        behind_transaction_pooler=params.get("pgbouncer", "").lower() == "true" or port == TRANSACTION_POOLER_PORT,
    )


def _verification(params: dict[str, str], ssl_mode: str, variable: str) -> tuple[str, str | None]:
    """What of the server's certificate is verified, and against which CA file.

    libpq's verify-ca / verify-full, or Prisma's sslaccept=strict (which verifies like verify-full,
    and names its CA file `sslcert`; libpq's `sslrootcert` wins when both are given). With neither
    file, the system's trusted CAs are used (like libpq's sslrootcert=system).
    """
    accept = params.get("sslaccept", "").strip().lower()
    if accept and accept not in SSL_ACCEPT_MODES:
        raise ConfigError(variable, "has an unknown sslaccept (expected strict or accept_invalid_certs)")
    root_cert = params.get("sslrootcert", "").strip() or None
    if ssl_mode == "verify-full":
        return VERIFY_FULL, root_cert
    if ssl_mode == "verify-ca":
        return VERIFY_CA, root_cert
    if accept == "strict" and ssl_mode != "disable":
        return VERIFY_FULL, root_cert or params.get("sslcert", "").strip() or None
    return VERIFY_NONE, None


def _int_param(params: dict[str, str], name: str, variable: str) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ConfigError(variable, f"parameter {name} must be a whole number")
    return int(raw)
