"""Small helpers shared by the HTTP-level tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lib.slots import iso_from_ms, to_ms
from tests.conftest import bearer


def run_cron(client: Any, query: str = "", expect: int = 200) -> dict[str, Any]:
    response = client.post(f"/?{query}", headers=bearer())
    assert response.status_code == expect, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def iso(moment: datetime) -> str:
    return iso_from_ms(to_ms(moment))


def hours_from_now(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def assert_invariants(report: dict[str, Any]) -> None:
    """The report's counting invariants (contract §2.4)."""
    assert report["attempted"] == (
        report["refreshed"] + report["failed"] + report["skippedNoDefault"] + report["skippedUnsupportedDuration"]
    )
    assert report["checked"] == (
        report["attempted"] + report["skippedBackoff"] + report["skippedNotConfigured"] + report["notStarted"]
    )
    assert report["emptySlots"] <= report["refreshed"]
    assert len(report["errors"]) + report["errorsTruncated"] == report["failed"]
