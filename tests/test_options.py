"""Request options: validation (400 naming the parameter), clamping, defaults and the JSON body."""

from __future__ import annotations

import json

import pytest

from lib.config import Settings
from lib.errors import InvalidParameter
from lib.model import Mode, Source
from lib.options import parse_options
from tests.conftest import bearer

SETTINGS = Settings.from_env({"DATABASE_URL": "postgresql://u:p@localhost/db"})


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("mode=sometimes", "mode"),
        ("mode=", "mode"),
        ("limit=ten", "limit"),
        ("limit=5e4", "limit"),
        ("limit=", "limit"),
        ("timeBudgetMs=55000abc", "timeBudgetMs"),
        ("timeBudgetMs=1.5", "timeBudgetMs"),
        ("concurrency=0x10", "concurrency"),
        ("concurrency=%20", "concurrency"),
        ("clientId=", "clientId"),
        ("clientId=%20%20", "clientId"),
        ("source=other", "source"),
    ],
)
def test_malformed_option_gets_400_naming_it(client, query, param):
    response = client.post(f"/?{query}", headers=bearer())
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "Invalid parameter"
    assert body["param"] == param
    assert body["detail"]


def test_out_of_range_values_are_clamped_and_echoed(client):
    response = client.post("/?limit=100000&timeBudgetMs=5&concurrency=-3&mode=due", headers=bearer())
    assert response.status_code == 200
    options = response.get_json()["options"]
    assert options == {"mode": "due", "limit": 500, "timeBudgetMs": 10000, "concurrency": 1, "source": "default"}
    assert response.get_json()["timeBudgetMs"] == 10000


def test_defaults_come_from_the_environment(client, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_CRON_LIMIT", "7")
    monkeypatch.setenv("AVAILABILITY_CRON_TIME_BUDGET_MS", "20000")
    monkeypatch.setenv("AVAILABILITY_CRON_CONCURRENCY", "3")
    options = client.post("/", headers=bearer()).get_json()["options"]
    assert options["limit"] == 7
    assert options["timeBudgetMs"] == 20000
    assert options["concurrency"] == 3


def test_json_body_is_read_and_the_query_string_wins(client):
    response = client.post(
        "/?limit=9",
        headers={**bearer(), "Content-Type": "application/json"},
        data=json.dumps({"mode": "due", "limit": 3, "timeBudgetMs": "15000", "ignored": True}),
    )
    assert response.status_code == 200
    options = response.get_json()["options"]
    assert (options["mode"], options["limit"], options["timeBudgetMs"]) == ("due", 9, 15000)


def test_malformed_json_body_is_a_400(client):
    response = client.post("/", headers={**bearer(), "Content-Type": "application/json"}, data="{not json")
    assert response.status_code == 400
    assert response.get_json()["param"] == "body"


def test_a_non_json_body_from_the_scheduler_is_ignored(client):
    response = client.post("/", headers={**bearer(), "Content-Type": "text/plain"}, data="tick")
    assert response.status_code == 200


def test_unknown_parameters_are_ignored(client):
    assert client.post("/?foo=bar&shard_hint=3", headers=bearer()).status_code == 200


def test_parse_options_values():
    options = parse_options({"mode": "due", "clientId": " c-1 ", "source": "directBook"}, b"", "", SETTINGS)
    assert options.mode is Mode.DUE
    assert options.client_id == "c-1"
    assert options.source is Source.DIRECT_BOOK
    assert options.concurrency is None


@pytest.mark.parametrize("value", [True, 1.5, [], {}, "1_000"])
def test_body_integers_must_be_integers(value):
    with pytest.raises(InvalidParameter) as raised:
        parse_options({}, json.dumps({"limit": value}).encode(), "application/json", SETTINGS)
    assert raised.value.param == "limit"


@pytest.mark.parametrize(
    ("workspaces", "expected"),
    [(0, 1), (1, 1), (5, 5), (8, 8), (50, 8), (100, 10), (1000, 100), (5000, 200)],
)
def test_automatic_concurrency(workspaces, expected):
    options = parse_options({}, b"", "", SETTINGS)
    assert options.with_concurrency(workspaces).concurrency == expected
