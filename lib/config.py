"""Settings: every environment variable parsed, clamped and validated once into a frozen value."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from lib.dburl import DatabaseTarget, parse_database_url
from lib.errors import ConfigError
from lib.numbers import clamp, parse_base10_int

DEFAULT_LOCK_KEY = 61061061061
DEFAULT_CALENDLY_BASE_URL = "https://calendly.com"
DEFAULT_HUBSPOT_BASE_URL = "https://api.hubspot.com"
DEFAULT_GHL_BASE_URL = "https://backend.leadconnectorhq.com"
DEFAULT_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"

LIMIT_RANGE = (1, 500)
TIME_BUDGET_RANGE_MS = (10_000, 600_000)
CONCURRENCY_RANGE = (1, 200)
CACHE_TTL_RANGE_MS = (5_000, 3_600_000)
LOOKAHEAD_RANGE_DAYS = (1, 90)
BIGINT_RANGE = (-(2**63), 2**63 - 1)

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
_LOG_FORMATS = frozenset({"auto", "json", "text"})

# Every variable the settings read; the cache key of `current_settings`.
ENV_VARIABLES = (
    "CRON_SECRET",
    "DIRECT_URL",
    "DATABASE_URL",
    "AVAILABILITY_CRON_LIMIT",
    "AVAILABILITY_CRON_TIME_BUDGET_MS",
    "AVAILABILITY_CRON_CONCURRENCY",
    "AVAILABILITY_CRON_PROVIDER_CONCURRENCY",
    "AVAILABILITY_CACHE_TTL_MS",
    "AVAILABILITY_CRON_LOCK_KEY",
    "AVAILABILITY_LOOKAHEAD_DAYS",
    "AVAILABILITY_DB_CONNECT_TIMEOUT_S",
    "CALENDLY_BASE_URL",
    "HUBSPOT_BASE_URL",
    "GHL_BASE_URL",
    "ALLOWED_INVOKERS",
    "OIDC_AUDIENCES",
    "OIDC_CERTS_URL",
    "ALLOW_PRIVATE_NETWORK",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "K_SERVICE",
    "FUNCTION_TARGET",
)


@dataclass(frozen=True)
class Settings:
    """The function's configuration; secrets are kept out of `repr`."""

    cron_secret: str | None
    database: DatabaseTarget | None
    database_variable: str
    limit: int = 100
    time_budget_ms: int = 55_000
    concurrency: int | None = None
    provider_concurrency: int | None = None  # None: half the run's concurrency (lib/throttle.py)
    cache_ttl_ms: int = 60_000
    lock_key: int = DEFAULT_LOCK_KEY
    lookahead_days: int = 30
    db_connect_timeout_s: float = 10.0
    calendly_base_url: str = DEFAULT_CALENDLY_BASE_URL
    hubspot_base_url: str = DEFAULT_HUBSPOT_BASE_URL
    ghl_base_url: str = DEFAULT_GHL_BASE_URL
    allowed_invokers: frozenset[str] = frozenset()
    oidc_audiences: tuple[str, ...] = ()
    oidc_certs_url: str = DEFAULT_OIDC_CERTS_URL
    allow_private_network: bool = False
    log_level: str = "INFO"
    log_format: str = "text"

    def __repr__(self) -> str:  # never show the secret or the database password
        return f"Settings(lock_key={self.lock_key}, time_budget_ms={self.time_budget_ms}, ...)"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Parse the environment; raises ConfigError naming the first invalid variable."""
        secret = env.get("CRON_SECRET", "").strip() or None
        database_variable = "DIRECT_URL" if env.get("DIRECT_URL", "").strip() else "DATABASE_URL"
        raw_url = env.get(database_variable, "").strip()
        if not raw_url:
            raise ConfigError("DATABASE_URL", "not set (nor DIRECT_URL)")
        id_tokens = id_token_settings_from_env(env)
        return cls(
            cron_secret=secret,
            database=parse_database_url(raw_url, variable=database_variable),
            database_variable=database_variable,
            limit=_int(env, "AVAILABILITY_CRON_LIMIT", 100, LIMIT_RANGE),
            time_budget_ms=_int(env, "AVAILABILITY_CRON_TIME_BUDGET_MS", 55_000, TIME_BUDGET_RANGE_MS),
            concurrency=_optional_int(env, "AVAILABILITY_CRON_CONCURRENCY", CONCURRENCY_RANGE),
            provider_concurrency=_optional_int(env, "AVAILABILITY_CRON_PROVIDER_CONCURRENCY", CONCURRENCY_RANGE),
            cache_ttl_ms=_int(env, "AVAILABILITY_CACHE_TTL_MS", 60_000, CACHE_TTL_RANGE_MS),
            lock_key=_lock_key(env),
            lookahead_days=_int(env, "AVAILABILITY_LOOKAHEAD_DAYS", 30, LOOKAHEAD_RANGE_DAYS),
            db_connect_timeout_s=float(_int(env, "AVAILABILITY_DB_CONNECT_TIMEOUT_S", 10, (1, 60))),
            calendly_base_url=_base_url(env, "CALENDLY_BASE_URL", DEFAULT_CALENDLY_BASE_URL),
            hubspot_base_url=_base_url(env, "HUBSPOT_BASE_URL", DEFAULT_HUBSPOT_BASE_URL),
            ghl_base_url=_base_url(env, "GHL_BASE_URL", DEFAULT_GHL_BASE_URL),
            allowed_invokers=id_tokens.allowed_invokers,
            oidc_audiences=id_tokens.audiences,
            oidc_certs_url=id_tokens.certs_url,
            allow_private_network=_bool(env, "ALLOW_PRIVATE_NETWORK"),
            log_level=_choice(env, "LOG_LEVEL", "INFO", _LOG_LEVELS, upper=True),
            log_format=_log_format(env),
        )


@dataclass(frozen=True)
class IdTokenSettings:
    """Who may call with a Google ID token (contract §2.1); needed before the caller is authenticated."""

    allowed_invokers: frozenset[str]  # lower-cased e-mails; empty: ID tokens are not accepted
    audiences: tuple[str, ...]  # empty: the function's own URL, taken from the request
    certs_url: str


def id_token_settings_from_env(env: Mapping[str, str]) -> IdTokenSettings:
    """The three ID-token variables alone, so a caller can be authenticated before the rest is parsed."""
    return IdTokenSettings(
        allowed_invokers=frozenset(_csv(env.get("ALLOWED_INVOKERS", ""), lower=True)),
        audiences=tuple(_csv(env.get("OIDC_AUDIENCES", ""), lower=False)),
        certs_url=_base_url(env, "OIDC_CERTS_URL", DEFAULT_OIDC_CERTS_URL),
    )


def logging_from_env(env: Mapping[str, str]) -> tuple[str, str]:
    """(level, format) for the logs written before the settings are validated; invalid values fall back
    to the defaults here, because the settings check reports them (to an authenticated caller)."""
    try:
        level = _choice(env, "LOG_LEVEL", "INFO", _LOG_LEVELS, upper=True)
    except ConfigError:
        level = "INFO"
    try:
        log_format = _log_format(env)
    except ConfigError:
        log_format = "json" if running_on_google_cloud(env) else "text"
    return level, log_format


def secret_from_env(env: Mapping[str, str]) -> str | None:
    """The cron secret alone, so a missing secret can be answered before anything else is parsed."""
    return env.get("CRON_SECRET", "").strip() or None


@functools.lru_cache(maxsize=4)
def _cached_settings(items: tuple[tuple[str, str | None], ...]) -> Settings:
    return Settings.from_env({key: value for key, value in items if value is not None})


def current_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings for the process environment, parsed once per distinct set of values."""
    source = os.environ if env is None else env
    return _cached_settings(tuple((name, source.get(name)) for name in ENV_VARIABLES))


def running_on_google_cloud(env: Mapping[str, str]) -> bool:
    """Cloud Functions gen2 (Cloud Run) sets K_SERVICE; the framework sets FUNCTION_TARGET too."""
    return bool(env.get("K_SERVICE"))


def _int(env: Mapping[str, str], name: str, default: int, bounds: tuple[int, int]) -> int:
    value = _optional_int(env, name, bounds)
    return default if value is None else value


def _optional_int(env: Mapping[str, str], name: str, bounds: tuple[int, int]) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    value = parse_base10_int(raw)
    if value is None:
        raise ConfigError(name, "must be a base-10 integer")
    return clamp(value, *bounds)


# How far above the base key the derived lock keys reach (see lib/lock.py).
LOCK_KEYS_SPAN = 4159


def _lock_key(env: Mapping[str, str]) -> int:
    raw = env.get("AVAILABILITY_CRON_LOCK_KEY", "").strip()
    if not raw:
        return DEFAULT_LOCK_KEY
    value = parse_base10_int(raw)
    # Sources and shards use keys up to base + LOCK_KEYS_SPAN (lib/lock.py), which must stay a bigint.
    if value is None or not BIGINT_RANGE[0] <= value <= BIGINT_RANGE[1] - LOCK_KEYS_SPAN:
        raise ConfigError(
            "AVAILABILITY_CRON_LOCK_KEY",
            f"must be a base-10 integer from {BIGINT_RANGE[0]} to {BIGINT_RANGE[1] - LOCK_KEYS_SPAN}",
        )
    return value


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(name, "must be an http(s) URL such as https://host")
    return raw.rstrip("/")


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE_WORDS:
        return True
    if raw in _FALSE_WORDS:
        return False
    raise ConfigError(name, "must be one of 1/true/yes/on or 0/false/no/off")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: frozenset[str], *, upper: bool) -> str:
    raw = env.get(name, "").strip()
    value = (raw.upper() if upper else raw.lower()) or default
    if value not in allowed:
        raise ConfigError(name, f"must be one of {', '.join(sorted(allowed))}")
    return value


def _log_format(env: Mapping[str, str]) -> str:
    chosen = _choice(env, "LOG_FORMAT", "auto", _LOG_FORMATS, upper=False)
    if chosen == "auto":
        return "json" if running_on_google_cloud(env) else "text"
    return chosen


def _csv(raw: str, *, lower: bool) -> list[str]:
    items = (item.strip() for item in raw.split(","))
    return [item.lower() if lower else item for item in items if item]
