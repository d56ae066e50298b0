"""Settings: parsed once from the environment, clamped, and invalid values named."""

from __future__ import annotations

import pytest

from lib.config import Settings, current_settings
from lib.errors import ConfigError

BASE = {"DATABASE_URL": "postgresql://u:secretpw@db/app", "CRON_SECRET": "s"}


def test_defaults():
    settings = Settings.from_env(BASE)
    assert (settings.limit, settings.time_budget_ms, settings.concurrency) == (100, 55_000, None)
    assert (settings.cache_ttl_ms, settings.lock_key, settings.lookahead_days) == (60_000, 61061061061, 30)
    assert settings.calendly_base_url == "https://calendly.com"
    assert settings.log_format == "text"
    assert "secretpw" not in repr(settings)


def test_values_are_clamped():
    settings = Settings.from_env(
        {
            **BASE,
            "AVAILABILITY_CRON_LIMIT": "0",
            "AVAILABILITY_CRON_TIME_BUDGET_MS": "999999999",
            "AVAILABILITY_CRON_CONCURRENCY": "1000",
            "AVAILABILITY_CACHE_TTL_MS": "1",
            "AVAILABILITY_CRON_PROVIDER_CONCURRENCY": "0",
        }
    )
    assert settings.provider_concurrency == 1
    assert (settings.limit, settings.time_budget_ms, settings.concurrency, settings.cache_ttl_ms) == (
        1,
        600_000,
        200,
        5_000,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AVAILABILITY_CRON_CONCURRENCY", "abc"),
        ("AVAILABILITY_CRON_LIMIT", "12.5"),
        ("AVAILABILITY_CACHE_TTL_MS", "1e4"),
        ("AVAILABILITY_CRON_LOCK_KEY", "99999999999999999999"),
        ("AVAILABILITY_CRON_LOCK_KEY", str(2**63 - 1)),  # no room for the source and shard keys above it
        ("AVAILABILITY_CRON_PROVIDER_CONCURRENCY", "half"),
        ("CALENDLY_BASE_URL", "ftp://calendly"),
        ("ALLOW_PRIVATE_NETWORK", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://x"),
    ],
)
def test_invalid_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**BASE, name: value})
    assert raised.value.variable == name
    assert value not in str(raised.value) or name == "ALLOW_PRIVATE_NETWORK"


def test_json_logs_on_google_cloud():
    assert Settings.from_env({**BASE, "K_SERVICE": "availability-cron"}).log_format == "json"
    assert Settings.from_env({**BASE, "K_SERVICE": "x", "LOG_FORMAT": "text"}).log_format == "text"


def test_settings_are_parsed_once_per_environment():
    first = current_settings(BASE)
    assert current_settings(dict(BASE)) is first
    assert current_settings({**BASE, "AVAILABILITY_CRON_LIMIT": "5"}) is not first
