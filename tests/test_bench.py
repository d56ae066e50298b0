"""The benchmark keeps working: a tiny quick run end to end, and the sandbox's payload cache answers
exactly what the uncached sandbox answers."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.fakes import register_calendar
from bench.latency import LatencyModel, drawn_ideal_s
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
    cold = document["cold_start"]
    assert 0 < cold["importtime_total_ms"] < 10_000
    for figure in (cold["first_request"], cold["first_request_google_cloud"]):
        assert 0 < figure["importtime_total_ms"] < 20_000 and figure["wall_ms"] > 0
        assert "functions_framework" in {name for name, _ in figure["slowest_imports"]}
    on_google_cloud = {name for name, _ in cold["first_request_google_cloud"]["slowest_imports"]}
    assert "google.cloud.logging_v2" in on_google_cloud  # lib/logs.py imports the package whole first
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
    assert {run["kind"] for run in scenario["runs"]} == {"changed", "unchanged", "changed-ckpt", "unchanged-ckpt"}
    # After a CHECKPOINT every first change of a page is a full-page image: more WAL than at steady state.
    assert medians["wal_bytes_per_workspace_unchanged_ckpt"] > medians["wal_bytes_per_workspace_unchanged"]
    assert all(run["ideal_s"] > 0 for run in scenario["runs"])
    assert scenario["statements"] and all(row["calls"] > 0 for row in scenario["statements"])


def test_quick_bench_with_drawn_latencies_on_one_core(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    command = [sys.executable, "-m", "bench", "--quick", "-n", "30", "--latency-ms", "5", "-c", "8", "--repeat", "1"]
    command += ["--realistic-latency", "--one-core", "--no-http", "--no-checkpoint-runs"]
    command += ["--cold-start-samples", "1", "--output", str(output)]

    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)

    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    (scenario,) = json.loads(output.read_text())["scenarios"]
    assert scenario["cpus"] == 1 and scenario["latency_model"].startswith("lognormal")
    assert {run["kind"] for run in scenario["runs"]} == {"changed", "unchanged"}
    for run in scenario["runs"]:
        assert run["cpus"] == 1 and run["refreshed"] == 30
        # The ideal comes from the drawn delays (median 5 ms, but a 5 s one in a hundred), not from N·L/C.
        assert run["ideal_s"] > 0 and run["ideal_s"] != round(30 * 0.005 / 8, 3)
    assert scenario["request_efficiency"]["median"] is None  # no fixed L to count requests against
    assert " ln5 " in finished.stdout


def test_latency_model_has_the_asked_median_tail_and_slow_share() -> None:
    model = LatencyModel(median_s=0.2, p99_s=1.5, slow_share=0.01, slow_s=5.0)
    rng = random.Random(5)
    draws = sorted(model.draw(rng) for _ in range(40_000))
    slow = sum(1 for d in draws if d == 5.0)
    assert 0.008 < slow / len(draws) < 0.012
    lognormal = [d for d in draws if d != 5.0]
    assert 0.19 < statistics.median(lognormal) < 0.21
    assert 1.35 < lognormal[int(0.99 * len(lognormal))] < 1.65


def test_drawn_ideal_is_the_larger_of_the_shared_work_and_the_longest_workspace() -> None:
    # Two requests of one workspace (HubSpot's months) run side by side: the workspace costs the longer.
    assert drawn_ideal_s({"a": [0.2, 0.4], "b": [0.2], "c": [0.2]}, concurrency=2) == pytest.approx(0.4)
    assert drawn_ideal_s({"a": [5.0], "b": [0.2], "c": [0.2]}, concurrency=32) == 5.0
    assert drawn_ideal_s({}, concurrency=4) == 0.0


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
