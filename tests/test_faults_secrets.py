"""Fault 10, secrets: the noisiest scenarios, at DEBUG level, in both log formats, in the function process
(gunicorn included) and in process: no log line or answer holds the cron secret, a database password
or a bearer token. (Every test of the fault suite also scans its own output: see `secret_scan`.)"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.conftest import SECRET
from tests.dbtools import Seeder
from tests.faults_support import (  # noqa: F401 - secret_scan is a fixture
    FunctionProcess,
    leaks_in,
    password_of,
    register_secret,
    secret_scan,
)

pytestmark = pytest.mark.usefixtures("secret_scan")

OTHER_TOKEN = register_secret("someone-elses-token-8c2f7a90")
WRONG_DB_PASSWORD = register_secret("wrong-db-password-4e1b9d")


def seed_noisy_workspaces(seed: Seeder, sandbox: ProviderSandbox) -> None:
    """Failures of every kind, so that every warning path logs."""
    slots = weekday_slots(datetime.now(UTC), 31)
    for number, (slug, fault) in enumerate(
        [
            ("fine", None),
            ("down", Fault(status=500, body='{"message": "Internal Error"}')),
            ("limited", Fault(status=429, headers=(("Retry-After", "120"),))),
            ("garbled", Fault(body="<html>not json</html>", content_type="text/html")),
        ]
    ):
        sandbox.add_hubspot_link(slug, slots, fault=fault)
        seed.client(f"c{number}", f"agency-{number}")
        seed.link(f"c{number}", f"https://meetings.hubspot.com/{slug}")
    seed.client("page", "agency-page")
    seed.link("page", f"{sandbox.base_url}/widget/bookings/missing", link_type="ghl")


def noisy_requests(post: Any) -> list[tuple[int, str]]:
    """Right and wrong credentials, bad options echoing secret-looking values, real runs."""
    answers = []
    for headers, query in [
        ({"Authorization": f"Bearer {SECRET}"}, ""),
        ({"X-Cron-Secret": SECRET}, "mode=due"),
        ({"Authorization": f"Bearer {OTHER_TOKEN}"}, ""),
        ({"Authorization": f"Bearer {SECRET[:-1]}"}, ""),
        ({"X-Cron-Secret": OTHER_TOKEN, "Authorization": f"Basic {OTHER_TOKEN}"}, ""),
        ({"Authorization": f"Bearer {SECRET}"}, f"mode={OTHER_TOKEN}"),
        ({"Authorization": f"Bearer {SECRET}"}, f"limit={OTHER_TOKEN}"),
        ({"Authorization": f"Bearer {SECRET}"}, "clientId=c0"),
    ]:
        status, text = post(headers, query)
        answers.append((status, text))
    return answers


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_function_process_at_debug_level_prints_no_secret(
    env: dict[str, str],
    seed: Seeder,
    sandbox: ProviderSandbox,
    monkeypatch: pytest.MonkeyPatch,
    log_format: str,
) -> None:
    seed_noisy_workspaces(seed, sandbox)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOG_FORMAT", log_format)
    monkeypatch.setenv("GUNICORN_LOG_LEVEL", "debug")
    password = password_of(env["DATABASE_URL"])
    outputs: list[str] = []
    answers: list[tuple[int, str]] = []

    def post_to(function: FunctionProcess) -> Any:
        def post(headers: dict[str, str], query: str) -> tuple[int, str]:
            answer = requests.post(f"{function.url}?{query}", headers=headers, timeout=30)
            return answer.status_code, answer.text

        return post

    function = FunctionProcess(env["DATABASE_URL"], sandbox.base_url)
    with function:
        answers += noisy_requests(post_to(function))
    outputs.append(function.output())
    statuses = [status for status, _ in answers]
    assert statuses == [200, 200, 401, 401, 401, 400, 400, 200]
    # The database refuses the password, or its URL does not parse: 500 and 503, both logged.
    wrong = env["DATABASE_URL"].replace(password, WRONG_DB_PASSWORD)
    broken = env["DATABASE_URL"].replace("@127.0.0.1:", "@127.0.0.1:notaport").replace(password, WRONG_DB_PASSWORD)
    for url, expected in ((wrong, 500), (broken, 503)):
        failing = FunctionProcess(url, sandbox.base_url)
        with failing:
            status, text = post_to(failing)({"Authorization": f"Bearer {SECRET}"}, "")
        assert status == expected, text
        answers.append((status, text))
        outputs.append(failing.output())
    text = "\n".join(outputs + [body for _, body in answers])
    # The scenarios did log: warnings for the failed workspaces and the failed runs.
    assert "workspace_failed" in text
    assert "run_failed" in text or "Database authentication failed" in text
    assert "not_configured" in text
    secrets = {SECRET, password, OTHER_TOKEN, WRONG_DB_PASSWORD}
    assert not leaks_in(text, secrets), leaks_in(text, secrets)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_in_process_logs_at_debug_level_hold_no_secret(
    client: Any,
    seed: Seeder,
    sandbox: ProviderSandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    db_url: str,
    log_format: str,
) -> None:
    seed_noisy_workspaces(seed, sandbox)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LOG_FORMAT", log_format)
    caplog.set_level(logging.DEBUG)  # third-party loggers (urllib3, werkzeug) too

    def post(headers: dict[str, str], query: str) -> tuple[int, str]:
        answer = client.post(f"/?{query}", headers=headers)
        return answer.status_code, answer.get_data(as_text=True)

    answers = noisy_requests(post)
    monkeypatch.setenv("DATABASE_URL", db_url.replace(password_of(db_url), WRONG_DB_PASSWORD))
    answers.append(post({"Authorization": f"Bearer {SECRET}"}, ""))
    monkeypatch.delenv("CRON_SECRET")
    answers.append(post({"Authorization": f"Bearer {SECRET}"}, ""))
    assert [status for status, _ in answers] == [200, 200, 401, 401, 401, 400, 400, 200, 500, 503]
    out, err = capfd.readouterr()
    text = out + err + caplog.text + "\n".join(body for _, body in answers)
    assert "workspace_failed" in text and "run_failed" in text and "not_configured" in text
    secrets = {SECRET, password_of(db_url), OTHER_TOKEN, WRONG_DB_PASSWORD}
    assert not leaks_in(text, secrets), leaks_in(text, secrets)
    print(out)  # back into the capture, for secret_scan and for a failing test's report


def test_the_scan_finds_what_it_looks_for() -> None:
    """The detector itself, so that a clean scan means something."""
    assert leaks_in(f"config loaded secret={SECRET}", {SECRET})
    assert leaks_in("headers: {'Authorization': 'Bearer eyJhbGciOiJSUzI1NiJ9.payload.sig'}", set())
    assert leaks_in("authorization=bearer abcdefgh12345678", set())
    assert not leaks_in("Unauthorized: the bearer token was refused", set())
    assert not leaks_in("workspace_failed clientId=c1 error=HTTP 500", {SECRET})
