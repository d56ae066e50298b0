"""The benchmark keeps working: a tiny quick run end to end, and the sandbox's payload cache answers
exactly what the uncached sandbox answers."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.fakes import register_calendar
from bench.workload import PROVIDER_ZONES, slot_starts, workspaces
from sandbox.providers import ProviderSandbox

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 30, 15, 7, tzinfo=UTC)


def test_quick_bench_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    command = [sys.executable, "-m", "bench", "--quick", "-n", "50", "--latency-ms", "5", "-c", "4,8", "--repeat", "1"]
    command += ["--probe-seconds", "0.5", "--cold-start-samples", "1", "--output", str(output)]

    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)

    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    document = json.loads(output.read_text())
    assert [s["concurrency"] for s in document["scenarios"]] == [4, 8]
    for scenario in document["scenarios"]:
        _check_scenario(scenario)
    http = document["http"]["run"]
    assert http["kind"] == "http" and http["refreshed"] == 50 and http["db_round_trips"] > 0
    assert document["sandbox_probe"]["requests"] > 0
    assert 0 < document["cold_start"]["importtime_total_ms"] < 10_000
    assert Path(document["plot"]).stat().st_size > 1_000
    assert "ws/s" in finished.stdout


def _check_scenario(scenario: dict[str, Any]) -> None:
    medians = {name: value["median"] for name, value in scenario.items() if isinstance(value, dict)}
    assert scenario["workspaces"] == 50
    assert scenario["refreshed_min"] == 50 and scenario["failed_max"] == 0
    assert scenario["finished_within_budget"] is True
    assert 600 <= scenario["slots_per_workspace"] <= 720  # 32 a weekday over 29 days
    assert medians["wall_s"] > 0 and medians["wall_unchanged_s"] > 0
    assert medians["workspaces_per_s"] > 0 and 0 < medians["efficiency"] <= 1.2
    assert medians["cpu_ms_per_workspace"] > 0
    assert medians["db_round_trips_per_workspace"] > 0 and medians["db_statements_per_workspace"] > 0
    assert medians["wal_bytes_per_workspace_changed"] > 0 and medians["wal_bytes_per_workspace_unchanged"] > 0
    assert 20 < medians["peak_rss_mb"] < 2_000
    assert 1 <= medians["provider_requests_per_workspace"] <= 3
    assert medians["sandbox_cpu_share"] >= 0
    assert {run["kind"] for run in scenario["runs"]} == {"changed", "unchanged"}
    assert scenario["statements"] and all(row["calls"] > 0 for row in scenario["statements"])


def test_cached_payloads_equal_rendered_ones() -> None:
    specs = workspaces(3)  # one workspace on each provider
    plain, cached = ProviderSandbox(clock=lambda: NOW), ProviderSandbox(clock=lambda: NOW, cache_payloads=True)
    with plain, cached, requests.Session() as session:
        for sandbox in (plain, cached):
            _register(sandbox, specs)
        for path in _paths(specs):
            for _ in range(2):  # the second answer of the cached sandbox comes from its cache
                answers = [session.get(s.base_url + path, timeout=5) for s in (plain, cached)]
                bodies = [_without_trace_id(answer.json()) for answer in answers]
                assert answers[0].status_code == answers[1].status_code == 200
                assert bodies[0] == bodies[1]
        ghl = _paths(specs)[-1]
        trace_ids = {session.get(cached.base_url + ghl, timeout=5).json()["traceId"] for _ in range(2)}
        assert len(trace_ids) == 2


def _register(sandbox: ProviderSandbox, specs: list[Any]) -> None:
    for workspace in specs:
        zone = PROVIDER_ZONES[workspace.provider]
        register_calendar(sandbox, workspace, slot_starts(zone, today=NOW.date(), variant=1, slots_per_day=32))


def _paths(specs: list[Any]) -> list[str]:
    calendly, hubspot, ghl = specs
    end = NOW + timedelta(days=30)
    start_ms, end_ms = int(NOW.timestamp() * 1000), int(end.timestamp() * 1000)
    return [
        f"/api/booking/event_types/{calendly.key}/calendar/range?timezone=America%2FNew_York"
        f"&range_start={NOW.date()}&range_end={end.date()}",
        f"/meetings-public/v3/book/availability-page?slug={hubspot.key}&monthOffset=0&timezone=UTC",
        f"/meetings-public/v3/book/availability-page?slug={hubspot.key}&monthOffset=1&timezone=UTC",
        f"/calendars/{ghl.key}/free-slots?startDate={start_ms}&endDate={end_ms}&timezone=UTC",
    ]


def _without_trace_id(body: Any) -> Any:
    return {key: value for key, value in body.items() if key != "traceId"} if isinstance(body, dict) else body
