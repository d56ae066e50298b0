"""Database connection: URL forms, Prisma parameters, and 500 JSON (without passwords) on failure."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devtools.pgserver import SCHEMA_FILE, admin_connection, create_database, database_url, drop_database, free_port
from lib.db import connect
from lib.dburl import parse_database_url
from lib.errors import ConfigError
from lib.model import Source
from lib.outcome import Outcome, RefreshOutcome
from lib.store import write_outcomes
from tests.conftest import bearer
from tests.helpers import run_cron


def password_of(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_database_down_gives_500_json_quickly(client, monkeypatch, db_url):
    dead = f"postgresql://postgres:{password_of(db_url)}@127.0.0.1:{free_port()}/nothing"
    monkeypatch.setenv("DATABASE_URL", dead)
    started = time.monotonic()
    response = client.post("/", headers=bearer())
    assert time.monotonic() - started < 3
    assert response.status_code == 500
    body = response.get_json()
    assert body["success"] is False
    assert body["error"] == "Database unreachable"
    assert body["invocationId"]
    assert password_of(db_url) not in response.get_data(as_text=True)


def test_a_database_that_never_answers_times_out_within_the_connect_timeout(client, monkeypatch, mute_port):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:hunter2secret@127.0.0.1:{mute_port}/db?connect_timeout=2")
    started = time.monotonic()
    response = client.post("/", headers=bearer())
    assert time.monotonic() - started < 4
    assert response.status_code == 500
    assert response.get_json()["error"] == "Database unreachable"
    assert "hunter2secret" not in response.get_data(as_text=True)


def test_wrong_password_is_an_authentication_failure_without_the_password(client, monkeypatch, db_url):
    wrong = db_url.replace(password_of(db_url), "not-the-password-123")
    monkeypatch.setenv("DATABASE_URL", wrong)
    response = client.post("/", headers=bearer())
    assert response.status_code == 500
    assert response.get_json()["error"] == "Database authentication failed"
    assert "not-the-password-123" not in response.get_data(as_text=True)


def test_missing_tables_give_500_schema_missing(client, monkeypatch, pg_admin_url):
    drop_database(pg_admin_url, "empty_db")
    create_database(pg_admin_url, "empty_db")
    try:
        monkeypatch.setenv("DATABASE_URL", database_url(pg_admin_url, "empty_db"))
        response = client.post("/", headers=bearer())
        assert response.status_code == 500
        assert response.get_json()["error"] == "Database schema missing"
    finally:
        drop_database(pg_admin_url, "empty_db")


def test_direct_url_wins_over_database_url(client, monkeypatch, db_url):
    monkeypatch.setenv("DIRECT_URL", db_url)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://x:y@127.0.0.1:{free_port()}/pooled")
    assert run_cron(client)["success"] is True


def test_unix_socket_url_form(client, monkeypatch, pg_server, db_url):
    if pg_server is None:
        pytest.skip("needs the embedded server's socket folder")
    name = db_url.rsplit("/", 1)[1]
    monkeypatch.setenv("DATABASE_URL", pg_server.socket_url(name))
    assert run_cron(client)["success"] is True


def test_prisma_parameters_are_understood_and_schema_sets_the_search_path(client, monkeypatch, db_url, seed, capfd):
    seed.run('ALTER TABLE "Client" RENAME TO "ClientMoved"')  # the public tables are now incomplete
    connection = admin_connection(db_url)
    try:
        connection.run("CREATE SCHEMA app")
        connection.run("SET search_path TO app")
        connection.run(SCHEMA_FILE.read_text())
    finally:
        connection.close()
    url = f"{db_url}?schema=app&connection_limit=1&pool_timeout=0&sslmode=prefer&pgbouncer=true&statement_cache_size=0"
    monkeypatch.setenv("DATABASE_URL", url)
    assert run_cron(client)["success"] is True
    assert "transaction_pooler" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u:p%40ss@db.example.com:6000/app?sslmode=require",
            {"host": "db.example.com", "port": 6000, "password": "p@ss", "ssl_mode": "require", "unix_socket": None},
        ),
        (
            "postgresql://u:p@/app?host=/cloudsql/proj:region:inst",
            {"host": None, "unix_socket": "/cloudsql/proj:region:inst/.s.PGSQL.5432", "database": "app"},
        ),
        (
            "postgres://u@h/app?schema=tenant&pgbouncer=true",
            {"search_path": "tenant", "behind_transaction_pooler": True, "password": None},
        ),
        ("postgresql://u:p@h:6543/app", {"behind_transaction_pooler": True}),
        (
            "postgresql://u:p@h/app?connect_timeout=3&application_name=x",
            {"connect_timeout_s": 3.0, "application_name": "x"},
        ),
    ],
)
def test_database_url_forms(url, expected):
    target = parse_database_url(url, variable="DATABASE_URL")
    for name, value in expected.items():
        assert getattr(target, name) == value
    assert "p@ss" not in repr(target)


@pytest.mark.parametrize(
    "url",
    ["mysql://u:p@h/db", "postgresql://u:p@h:notaport/db", "postgresql:///db", "postgresql://h/db?sslmode=sometimes"],
)
def test_invalid_database_urls_name_the_variable_not_the_value(url):
    with pytest.raises(ConfigError) as raised:
        parse_database_url(url, variable="DIRECT_URL")
    assert raised.value.variable == "DIRECT_URL"
    assert url not in str(raised.value)


def test_text_postgresql_cannot_store_never_fails_a_batch(seed, db_url):
    now = datetime.now(UTC)
    for client_id in ("bad", "good"):
        seed.client(client_id)
    hostile = "nul\x00 and a lone \ud800 surrogate"
    outcomes = [
        RefreshOutcome(
            client_id=client_id,
            outcome=Outcome.FAILED,
            fetched_at=now,
            stale_at=now + timedelta(minutes=1),
            range_end=now + timedelta(days=30),
            error=error,
            calendar_link_id=None,
            calendar_type="ghl",
            calendar_url=url,
            slot_duration_minutes=30,
            slots=(),
            provider_meta=meta,
            keeps_previous_slots=keeps,
        )
        for client_id, error, url, meta, keeps in (
            ("bad", hostile, "https://x/" + hostile, {"ghlCalendarId": hostile, hostile: [hostile]}, False),
            ("good", "HTTP 503", "https://x/y", None, True),
        )
    ]
    with connect(parse_database_url(db_url, variable="DATABASE_URL"), timeout_s=5) as db:
        assert write_outcomes(db, Source.DEFAULT, outcomes) == {"bad", "good"}
    bad = seed.row("bad")
    assert bad.last_error == "nul and a lone ? surrogate"
    assert bad.provider_meta == {"ghlCalendarId": bad.last_error, bad.last_error: [bad.last_error]}
    assert "\x00" not in bad.calendar_url and seed.row("good").last_error == "HTTP 503"
