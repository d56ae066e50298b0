"""Parsing of the PostgreSQL URLs Prisma uses (TCP and Cloud SQL unix-socket forms) into connect arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from lib.errors import ConfigError

DEFAULT_PORT = 5432
# Supabase/PgBouncer transaction pooler port: session advisory locks are unreliable behind it.
TRANSACTION_POOLER_PORT = 6543
SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
# Parameters Prisma (or libpq) understands that have no meaning for us; accepted and ignored.
IGNORED_PARAMETERS = frozenset(
    {
        "pgbouncer",
        "connection_limit",
        "pool_timeout",
        "socket_timeout",
        "statement_cache_size",
        "schema_cache",
        "sslaccept",
        "sslcert",
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
    ssl_root_cert: str | None
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
        ssl_root_cert=params.get("sslrootcert") or None,
        search_path=params.get("schema", "").strip() or None,
        application_name=params.get("application_name", "").strip() or "availability-cron",
        connect_timeout_s=float(connect_timeout) if connect_timeout else None,
        behind_transaction_pooler=params.get("pgbouncer", "").lower() == "true" or port == TRANSACTION_POOLER_PORT,
    )


def _int_param(params: dict[str, str], name: str, variable: str) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ConfigError(variable, f"parameter {name} must be a whole number")
    return int(raw)
