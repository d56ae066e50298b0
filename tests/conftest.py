"""Shared fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), a fresh database per test
cloned from a template holding lib/schema.sql, the provider sandbox on 127.0.0.1, and the real
functions-framework app."""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.pgserver import EmbeddedPostgres, apply_schema, create_database, database_url, drop_database
from devtools.pgstaging import ServerSetupError
from sandbox.providers import ProviderSandbox
from tests.dbtools import Seeder
from tests.local_http import Canary
from tests.scripted_server import serve  # noqa: F401 - the fixture of test_wire.py and test_urllib3_paths.py

TEMPLATE_DB = "availability_cron_template"
SECRET = "test-cron-secret-6f1d2c"
_database_numbers = itertools.count()


LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


@pytest.fixture(autouse=True)
def no_name_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the internet, not even its DNS: any name but localhost fails to resolve, as
    an unknown name would (IP literals still work: they need no lookup)."""
    resolve = socket.getaddrinfo

    def local_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not _is_address(name) and name.lower().rstrip(".") not in LOCAL_NAMES:
            raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no names ({name!r})")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


def _is_address(name: str) -> bool:
    """An IP literal, including the numeric IPv4 forms inet_aton reads (2130706433, 0x7f.1): no lookup."""
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        try:
            socket.inet_aton(name)
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres | None]:
    """The embedded server of this session, or None when TEST_DATABASE_URL names another one."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    try:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="availability-cron-pg-"))).start()
    except ServerSetupError as error:
        pytest.exit(f"the embedded PostgreSQL cannot start here: {error}", returncode=3)
    try:
        yield server
    finally:
        server.destroy()


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


@pytest.fixture
def canary() -> Iterator[Canary]:
    """A listener on 127.0.0.1 that records every request it gets (none should arrive)."""
    server = Canary()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts TCP connections and never says a word (a database gone mute)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


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
