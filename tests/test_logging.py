"""What the function writes to its log (contract §6): Cloud Logging JSON lines on Google Cloud, text locally.

Everything here goes through the real functions-framework app and reads what it wrote to stdout/stderr.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.pgserver import free_port
from lib import logs
from lib.run import MAX_WARNINGS_PER_RUN
from tests.conftest import SECRET, bearer
from tests.local_http import LocalHttpServer, QuietHandler

PROJECT = "acme-prod"
TRACE_ID = "105445aa7843bc8bf206b12000100000"
UNSUPPORTED_LINK = "https://example.com/not-a-booking-page"
DB_PASSWORD = "pw-9f8e7d6c5b4a"


def entries(text: str) -> list[dict[str, Any]]:
    """Every non-empty line, parsed as JSON (fails the test on a line that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def events(parsed: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in parsed if entry.get("event") == name]


@pytest.fixture(autouse=True)
def _fresh_metadata_lookup() -> Iterator[None]:
    logs._metadata_project.cache_clear()
    yield
    logs._metadata_project.cache_clear()


@pytest.fixture
def json_logs(client: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app with LOG_FORMAT=json and a project, as on Google Cloud."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.delenv("K_SERVICE", raising=False)
    return client


def seed_failing(seed: Any, count: int) -> None:
    for number in range(count):
        seed.client(f"c{number:03d}", user_id=f"agency-{number % 3}")
        seed.link(f"c{number:03d}", UNSUPPORTED_LINK)


def test_every_json_line_has_a_severity(json_logs, seed, capfd):
    seed_failing(seed, 2)
    assert json_logs.post("/", headers=bearer()).status_code == 200
    assert json_logs.post("/", headers=bearer("wrong")).status_code == 401
    output = capfd.readouterr()
    parsed = entries(output.out)
    assert parsed
    assert all(entry["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") for entry in parsed)
    assert "run_finished" not in output.err  # one handler, not a second copy in text


def test_one_run_finished_entry_per_run_carries_the_report(json_logs, seed, capfd):
    seed_failing(seed, 3)
    reports = [json_logs.post("/", headers=bearer()).get_json() for _ in range(2)]
    finished = events(entries(capfd.readouterr().out), "run_finished")
    assert [entry["invocationId"] for entry in finished] == [report["invocationId"] for report in reports]
    for entry, report in zip(finished, reports, strict=True):
        assert entry["severity"] == "INFO"
        assert entry["message"] == "run_finished"
        # Cloud Logging owns `timestamp`; the report's own is kept under `timestamp_`.
        assert entry["timestamp_"] == report["timestamp"]
        for key, value in report.items():
            if key != "timestamp":
                assert entry[key] == value, key
        assert (entry["checked"], entry["failed"], entry["durationMs"]) == (3, 3, report["durationMs"])


def test_workspace_failures_are_warnings_up_to_a_bound(json_logs, seed, capfd):
    seed_failing(seed, MAX_WARNINGS_PER_RUN + 5)
    report = json_logs.post("/", headers=bearer()).get_json()
    assert report["failed"] == MAX_WARNINGS_PER_RUN + 5
    parsed = entries(capfd.readouterr().out)
    warnings = events(parsed, "workspace_failed")
    assert len(warnings) == MAX_WARNINGS_PER_RUN
    assert {entry["severity"] for entry in warnings} == {"WARNING"}
    assert all(entry["clientId"].startswith("c") and "Unsupported" in entry["error"] for entry in warnings)
    # The failures beyond the bound are counted in one more warning, and all of them in the summary.
    [rest] = events(parsed, "workspace_failures_not_logged")
    assert (rest["severity"], rest["count"]) == ("WARNING", 5)
    assert events(parsed, "run_finished")[0]["failed"] == MAX_WARNINGS_PER_RUN + 5


def test_a_database_failure_is_an_error_entry(json_logs, monkeypatch, capfd):
    monkeypatch.setenv("DATABASE_URL", f"postgresql://cron:{DB_PASSWORD}@127.0.0.1:{free_port()}/app")
    response = json_logs.post("/", headers=bearer())
    assert response.status_code == 500
    body = response.get_json()
    failed = events(entries(capfd.readouterr().out), "run_failed")
    assert len(failed) == 1
    entry = failed[0]
    assert entry["severity"] == "ERROR"
    assert (entry["invocationId"], entry["error"]) == (body["invocationId"], body["error"])
    # The failure's detail survives under `message_` (Cloud Logging's `message` is the event name).
    assert entry["message_"] == body["message"]
    assert DB_PASSWORD not in json.dumps(entry)


def test_the_trace_header_links_entries_to_the_request(json_logs, seed, capfd):
    seed_failing(seed, 2)
    headers = {**bearer(), "X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"}
    assert json_logs.post("/", headers=headers).status_code == 200
    parsed = entries(capfd.readouterr().out)
    ours = events(parsed, "run_finished") + events(parsed, "workspace_failed")
    assert len(ours) == 3
    for entry in ours:
        assert entry["logging.googleapis.com/trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
        assert entry["logging.googleapis.com/spanId"] == "0000000000000001"
        assert entry["logging.googleapis.com/trace_sampled"] is True


class MetadataServer:
    """The metadata server's project-id endpoint, as Cloud Run answers it (only with Metadata-Flavor)."""

    def __init__(self, project: str) -> None:
        self.requests = 0
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                good = self.path == logs.METADATA_PROJECT_PATH and self.headers.get("Metadata-Flavor") == "Google"
                body = project.encode() if good else b"forbidden"
                self.send_response(200 if good else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = LocalHttpServer(Handler)
        self.host = f"127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        self._server.stop()


def test_on_cloud_run_without_a_project_variable_the_metadata_server_names_it(client, monkeypatch, capfd):
    metadata = MetadataServer("from-metadata")
    try:
        for name in ("LOG_FORMAT", *logs.PROJECT_VARIABLES):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("K_SERVICE", "availability-cron")
        monkeypatch.setenv("GCE_METADATA_HOST", metadata.host)
        headers = {**bearer(), "X-Cloud-Trace-Context": f"{TRACE_ID}/7;o=1"}
        for _ in range(3):
            assert client.post("/", headers=headers).status_code == 200
    finally:
        metadata.stop()
    finished = events(entries(capfd.readouterr().out), "run_finished")
    assert [entry["logging.googleapis.com/trace"] for entry in finished] == [
        f"projects/from-metadata/traces/{TRACE_ID}"
    ] * 3
    assert metadata.requests == 1  # once per process, not per request


def test_text_format_locally_is_readable(client, seed, monkeypatch, capfd):
    monkeypatch.delenv("LOG_FORMAT")
    monkeypatch.delenv("K_SERVICE", raising=False)
    seed_failing(seed, 1)
    report = client.post("/", headers=bearer()).get_json()
    output = capfd.readouterr()
    assert "run_finished" not in output.out
    [line] = [line for line in output.err.splitlines() if " run_finished " in line]
    assert line.split(" ")[2:4] == ["INFO", "run_finished"]
    assert f"invocationId={report['invocationId']}" in line
    assert "checked=1 attempted=1" in line
    assert not line.startswith("{")
    [warning] = [line for line in output.err.splitlines() if " workspace_failed " in line]
    assert " WARNING workspace_failed clientId=c000 error=" in warning


@pytest.mark.parametrize(
    ("k_service", "log_format", "expect_json"),
    [
        ("availability-cron", None, True),  # auto: on Google Cloud
        (None, None, False),  # auto: elsewhere
        ("availability-cron", "text", False),  # the variable wins over detection
        (None, "json", True),
        (None, "JSON", True),
    ],
)
def test_log_format_variable_overrides_detection(client, monkeypatch, capfd, k_service, log_format, expect_json):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)  # no metadata lookup
    for name, value in (("K_SERVICE", k_service), ("LOG_FORMAT", log_format)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert client.post("/", headers=bearer()).status_code == 200
    output = capfd.readouterr()
    if expect_json:
        assert len(events(entries(output.out), "run_finished")) == 1
        assert "run_finished" not in output.err
    else:
        assert "run_finished" not in output.out
        assert " INFO run_finished " in output.err


def test_a_missing_secret_is_a_json_warning_on_google_cloud(json_logs, monkeypatch, capfd):
    monkeypatch.delenv("CRON_SECRET")
    assert json_logs.post("/", headers=bearer()).status_code == 503
    [entry] = events(entries(capfd.readouterr().out), "not_configured")
    assert entry["severity"] == "WARNING"
    assert "CRON_SECRET" in entry["detail"]


def test_an_invalid_log_format_is_reported_and_logs_still_work(client, monkeypatch, capfd):
    monkeypatch.setenv("LOG_FORMAT", "xml")
    response = client.post("/", headers=bearer())
    assert response.status_code == 503
    assert "LOG_FORMAT" in response.get_json()["detail"]
    assert "WARNING not_configured detail=" in capfd.readouterr().err


def test_no_secret_password_or_token_in_any_line(json_logs, seed, monkeypatch, capfd):
    seed_failing(seed, 1)
    token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJlbWFpbCI6ImFAYi5jIn0.c2lnbmF0dXJlLXZhbHVlLXh5eg"
    monkeypatch.setenv("ALLOWED_INVOKERS", "a@b.c")
    json_logs.post("/", headers=bearer())
    json_logs.post("/", headers=bearer("wrong-secret-1a2b3c"))
    json_logs.post("/", headers={"X-Cron-Secret": "wrong-secret-4d5e6f"})
    json_logs.post("/", headers={"Authorization": f"Bearer {token}"})
    monkeypatch.setenv("DATABASE_URL", f"postgresql://cron:{DB_PASSWORD}@127.0.0.1:{free_port()}/app")
    json_logs.post("/", headers={**bearer(), "X-Cloud-Trace-Context": f"{TRACE_ID}/1;o=1"})
    output = capfd.readouterr()
    logged = output.out + output.err
    for event in ("run_finished", "id_token_rejected", "run_failed"):
        assert event in logged
    for secret in (SECRET, "wrong-secret-1a2b3c", "wrong-secret-4d5e6f", DB_PASSWORD, *token.split(".")):
        assert secret not in logged


# --- log_event itself -------------------------------------------------------------------------------


def test_fields_json_cannot_encode_are_written_as_text(monkeypatch, capsys):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    logs.configure_logging("INFO", "json")
    moment = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)
    logs.log_event(logging.getLogger("lib.test"), logging.INFO, "probe", at=moment, tags={"a"})
    [entry] = events(entries(capsys.readouterr().out), "probe")
    assert entry["at"] == str(moment)


def test_text_values_cannot_forge_a_line(capsys):
    logs.configure_logging("INFO", "text")
    # No space, so only the control character can make it quoted.
    logs.log_event(logging.getLogger("lib.test"), logging.WARNING, "probe", error="x\nWARNING\tforged")
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    assert lines[0].endswith('WARNING probe error="x\\nWARNING\\tforged"')
