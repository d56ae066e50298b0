"""Shared fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), a fresh database per test
cloned from a template holding lib/schema.sql, the provider sandbox on 127.0.0.1, and the real
functions-framework app."""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.pgserver import EmbeddedPostgres, apply_schema, create_database, database_url, drop_database
from sandbox.providers import ProviderSandbox
from tests.dbtools import Seeder

TEMPLATE_DB = "availability_cron_template"
SECRET = "test-cron-secret-6f1d2c"
_database_numbers = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres | None]:
    """The embedded server of this session, or None when TEST_DATABASE_URL names another one."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="availability-cron-pg-")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_admin_url(pg_server: EmbeddedPostgres | None) -> str:
    """An admin URL of a running server: TEST_DATABASE_URL, or the embedded server."""
    return pg_server.url() if pg_server else os.environ["TEST_DATABASE_URL"]


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> str:
    drop_database(pg_admin_url, TEMPLATE_DB)
    create_database(pg_admin_url, TEMPLATE_DB)
    url = database_url(pg_admin_url, TEMPLATE_DB)
    apply_schema(url)
    return url


@pytest.fixture
def db_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A fresh database with the schema, dropped after the test."""
    name = f"t_{os.getpid()}_{next(_database_numbers)}"
    create_database(pg_admin_url, name, template=TEMPLATE_DB)
    try:
        yield database_url(pg_admin_url, name)
    finally:
        drop_database(pg_admin_url, name)


@pytest.fixture
def seed(db_url: str) -> Iterator[Seeder]:
    seeder = Seeder(db_url)
    try:
        yield seeder
    finally:
        seeder.close()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[ProviderSandbox]:
    with ProviderSandbox() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: ProviderSandbox) -> ProviderSandbox:
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, db_url: str, sandbox: ProviderSandbox) -> dict[str, str]:
    """The function's environment for a test: its own database, the sandbox as every provider."""
    values = {
        "CRON_SECRET": SECRET,
        "DATABASE_URL": db_url,
        "CALENDLY_BASE_URL": sandbox.base_url,
        "HUBSPOT_BASE_URL": sandbox.base_url,
        "GHL_BASE_URL": sandbox.base_url,
        "ALLOW_PRIVATE_NETWORK": "true",
        "LOG_FORMAT": "text",
    }
    for name in ("DIRECT_URL", "AVAILABILITY_CRON_CONCURRENCY", "AVAILABILITY_CRON_TIME_BUDGET_MS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture(scope="session")
def app() -> Any:
    import functions_framework

    source = Path(__file__).resolve().parent.parent / "main.py"
    return functions_framework.create_app(target="availability_cron", source=str(source))


@pytest.fixture
def client(app: Any, env: dict[str, str]) -> Any:
    return app.test_client()


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
