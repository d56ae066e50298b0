"""Authentication and the order of checks: method, then secret, then settings, then options."""

from __future__ import annotations

import pytest

from tests.conftest import SECRET, bearer


def test_missing_secret_disables_the_endpoint(client, monkeypatch):
    monkeypatch.delenv("CRON_SECRET")
    response = client.post("/", headers=bearer())
    assert response.status_code == 503
    assert response.get_json() == {"error": "Not configured"}


def test_blank_secret_disables_the_endpoint(client, monkeypatch):
    monkeypatch.setenv("CRON_SECRET", "   ")
    response = client.post("/", headers={"Authorization": "Bearer    "})
    assert response.status_code == 503


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": SECRET},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
        {"Authorization": f"Bearer {SECRET[:-1]}"},
        {"X-Cron-Secret": "wrong"},
        {"X-Cron-Secret": ""},
    ],
)
def test_wrong_credentials_are_unauthorized(client, headers):
    response = client.post("/", headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Unauthorized"}
    assert response.content_type == "application/json"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {SECRET}"},
        {"Authorization": f"bearer {SECRET}"},
        {"X-Cron-Secret": SECRET},
        {"Authorization": "Bearer google-oidc-token-here", "X-Cron-Secret": SECRET},
    ],
)
def test_accepted_credentials_run(client, headers):
    response = client.post("/", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["success"] is True


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_json_before_authentication(client, method):
    response = client.open("/", method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == "Method not allowed"


def test_get_works_like_post(client):
    response = client.get("/", headers=bearer())
    assert response.status_code == 200
    assert response.get_json()["checked"] == 0


def test_invalid_setting_names_the_variable_to_an_authenticated_caller(client, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_CRON_CONCURRENCY", "abc")
    response = client.post("/", headers=bearer())
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "Not configured"
    assert "AVAILABILITY_CRON_CONCURRENCY" in body["detail"]


def test_invalid_setting_is_not_revealed_to_an_unauthenticated_caller(client, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_CRON_CONCURRENCY", "abc")
    response = client.post("/", headers=bearer("nope"))
    assert response.status_code == 401


def test_missing_database_url_is_not_configured(client, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    response = client.post("/", headers=bearer())
    assert response.status_code == 503
    assert "DATABASE_URL" in response.get_json()["detail"]


def test_no_secret_or_password_in_logs(client, seed, capfd, db_url):
    seed.client("c1")
    seed.link("c1", "https://calendly.com/nobody/none")
    for headers in (bearer(), bearer("wrong-secret-value"), {"X-Cron-Secret": "another-wrong-value"}):
        client.post("/", headers=headers)
    output = capfd.readouterr()
    logged = output.out + output.err
    password = db_url.split(":")[2].split("@")[0]
    assert "run_finished" in logged
    for secret in (SECRET, "wrong-secret-value", "another-wrong-value", password):
        assert secret not in logged
