"""The monitoring definitions as deploy.sh renders them: valid for the Logging and Monitoring APIs' formats
(tests/monitoring_api.py), consistent with each other (every metric and label an alert or chart names is
defined), and true to the function's log lines: a real run through the functions-framework app with
LOG_FORMAT=json, read as Cloud Logging would (tests/log_query.py), must hold every field a filter or an
extractor names, so renaming a field in the report fails here."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.pgserver import admin_connection, free_port
from lib.logs import RESERVED_FIELDS
from sandbox.providers import Fault, weekday_slots
from tests import log_query
from tests.conftest import bearer
from tests.fake_gcloud import FUNCTION_URL
from tests.monitoring_api import NUMERIC_FROM_DISTRIBUTION, check_alert_policy, check_dashboard, check_log_metric
from tests.test_deploy import PROJECT, Deployer, existing_state

NAME = "availability-cron"
REGION = "us-central1"
LOCK_KEY = 61061061061  # the default source's unsharded lock (tests/test_lock_and_budget.py)
USER_METRIC = "logging.googleapis.com/user/"
FUNCTION_LOGS = 'resource.type="cloud_run_revision"'


def render(tmp_path: Path, *args: str, dry_run: bool = False) -> dict[str, Any]:
    """The definitions deploy.sh sends, from --monitoring-dir: {metrics: {name: def}, policies: {file: def},
    dashboard: def}."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    deployer = Deployer(tmp_path)
    out = tmp_path / "rendered"
    flags = ["--dry-run"] if dry_run else []
    result = deployer.run("--project", PROJECT, "--monitoring-dir", str(out), *flags, *args)
    assert result.returncode == 0, result.stderr

    def load(path: Path) -> Any:
        return json.loads(path.read_text())

    return {
        "metrics": {load(path)["name"]: load(path) for path in out.glob("metric-*.json")},
        "policies": {path.name.removeprefix("policy-"): load(path) for path in out.glob("policy-*.json")},
        "dashboard": load(out / "dashboard.json"),
        "raw": "".join(path.read_text() for path in sorted(out.iterdir())),
    }


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return render(tmp_path_factory.mktemp("definitions"))


LAYOUTS = {
    "default": (),
    "sharded-with-channels": (
        "--shards",
        "4",
        "--time-budget-ms",
        "30000",
        "--timeout",
        "60",
        "--alert-email",
        "ops@example.com",
        "--notification-channel",
        "42",
    ),
    "renamed-elsewhere": ("--name", "other-cron", "--region", "europe-west1", "--no-direct-book"),
}


# ------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_rendered_definitions_are_valid_for_the_apis(tmp_path: Path, layout: str) -> None:
    args = LAYOUTS[layout]
    rendered = render(tmp_path, *args)
    name = args[args.index("--name") + 1] if "--name" in args else NAME
    assert re.findall(r"\{\{[A-Z_]+\}\}", rendered["raw"]) == []  # every placeholder filled in
    assert len(rendered["metrics"]) == 10 and len(rendered["policies"]) == 6
    for metric_name, metric in rendered["metrics"].items():
        assert metric_name.startswith(f"{name}-")
        assert check_log_metric(metric) == [], metric_name
    for file, policy in rendered["policies"].items():
        assert policy["displayName"].startswith(f"{name}: ")
        assert check_alert_policy(policy) == [], file
    assert check_dashboard(rendered["dashboard"]) == []
    assert rendered["dashboard"]["displayName"] == name
    budget = int(args[args.index("--time-budget-ms") + 1]) if "--time-budget-ms" in args else 55000
    assert budget in [t["value"] for t in _charts(rendered["dashboard"]) for t in t.get("thresholds", [])]
    if "--region" in args:
        assert all('resource.labels.location="europe-west1"' in m["filter"] for m in rendered["metrics"].values())


def test_a_dry_run_renders_the_same_definitions_but_for_new_channel_ids(tmp_path: Path) -> None:
    planned = render(tmp_path / "planned", "--alert-email", "ops@example.com", dry_run=True)
    done = render(tmp_path / "done", "--alert-email", "ops@example.com")
    assert (
        planned["metrics"] == done["metrics"]
        and planned["dashboard"]["mosaicLayout"] == done["dashboard"]["mosaicLayout"]
    )
    for file, policy in planned["policies"].items():
        assert policy["notificationChannels"] == [
            f"projects/{PROJECT}/notificationChannels/NEW_CHANNEL_FOR_ops@example.com"
        ]
        assert {**policy, "notificationChannels": []} == {**done["policies"][file], "notificationChannels": []}


def _charts(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [tile["widget"]["xyChart"] for tile in dashboard["mosaicLayout"]["tiles"] if "xyChart" in tile["widget"]]


def _break(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(body)
    *parents, last = path.split(".")
    target: Any = broken
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return broken


@pytest.mark.parametrize(
    ("kind", "file", "path", "value", "expected"),
    [
        ("policy", "1-no-finished-run.json", "conditions.0.conditionAbsent.duration", "5m", "not a duration"),
        ("policy", "1-no-finished-run.json", "conditions.0.conditionAbsent.duration", "60s", "below the minimum 120s"),
        ("policy", "1-no-finished-run.json", "combiner", "ANY", "is not one of"),
        ("policy", "1-no-finished-run.json", "severity", "PAGE", "is not one of"),
        ("policy", "2-run-failed.json", "conditions.0.conditionThreshold.comparison", ">", "is not one of"),
        ("policy", "2-run-failed.json", "conditions.0.conditionThreshold.thresholdValue", "0", "required number"),
        (
            "policy",
            "2-run-failed.json",
            "conditions.0.conditionThreshold.aggregations.0.perSeriesAligner",
            "ALIGN_P99",
            "is not one of",
        ),
        (
            "policy",
            "2-run-failed.json",
            "conditions.0.conditionThreshold.aggregations.0.alignmentPeriod",
            "30s",
            "below the minimum 60s",
        ),
        (
            "policy",
            "2-run-failed.json",
            "conditions.0.conditionThreshold.aggregations.0.crossSeriesReducer",
            "REDUCE_NONE",
            "needs a crossSeriesReducer",
        ),
        (
            "policy",
            "2-run-failed.json",
            "conditions.0.conditionThreshold.filter",
            'resource.type="x"',
            "needs metric.type",
        ),
        (
            "policy",
            "2-run-failed.json",
            "conditions.0.conditionThreshold.filter",
            'metric.type="x',
            "unbalanced quotes",
        ),
        ("policy", "3-over-budget.json", "conditions.0.displayName", KeyError, "displayName: required"),
        ("policy", "3-over-budget.json", "documentation", {"mimeType": "text/markdown"}, "content: required"),
        ("policy", "3-over-budget.json", "notificationChannels", ["ops@example.com"], "is not projects/P"),
        ("policy", "3-over-budget.json", "alertStrategy.autoClose", "60s", "below the minimum 1800s"),
        ("policy", "3-over-budget.json", "name", "projects/p/alertPolicies/1", "output only"),
        ("dashboard", "", "mosaicLayout.tiles.1.xPos", 3, "overlaps another tile"),
        ("dashboard", "", "mosaicLayout.tiles.1.width", 13, "does not fit"),
        (
            "dashboard",
            "",
            "mosaicLayout.tiles.2.widget.xyChart.thresholds.0.value",
            "{{TIME_BUDGET_MS}}",
            "required number",
        ),
        ("dashboard", "", "mosaicLayout.tiles.1.widget.xyChart.dataSets.0.plotType", "PIE", "is not one of"),
        ("metric", "runs", "labelExtractors.source", "jsonPayload.source", "is not EXTRACT"),
        ("metric", "runs", "metricDescriptor.metricKind", "GAUGE", "is not one of"),
        ("metric", "runs", "name", "has space", "cannot hold"),
        ("metric", "runs", "metricDescriptor.labels.0.key", "Source", "is not a label key"),
        ("metric", "duration-ms", "bucketOptions.explicitBuckets.bounds", [5, 1], "not increasing"),
        ("metric", "duration-ms", "valueExtractor", KeyError, "needs EXTRACT"),
        ("metric", "duration-ms", "filter", 'jsonPayload.event="run_finished', "unbalanced quotes"),
    ],
)
def test_the_format_check_rejects_what_the_api_would_reject(
    definitions: dict[str, Any], kind: str, file: str, path: str, value: Any, expected: str
) -> None:
    """The check above is only worth something if it fails: each broken copy of a valid definition is caught."""
    if kind == "policy":
        body, check = definitions["policies"][file], check_alert_policy
    elif kind == "dashboard":
        body, check = definitions["dashboard"], check_dashboard
    else:
        body, check = definitions["metrics"][f"{NAME}-{file}"], check_log_metric
    assert check(body) == []
    problems = check(_break(body, path, value))
    assert any(expected in problem for problem in problems), problems


def _monitoring_filters(definitions: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]], list[str]]]:
    """(where, filter, aggregations, documentation texts) of every condition and chart."""
    found = []
    for file, policy in definitions["policies"].items():
        for condition in policy["conditions"]:
            body = condition.get("conditionThreshold") or condition["conditionAbsent"]
            found.append((file, body["filter"], body.get("aggregations", []), [policy["documentation"]["content"]]))
    for index, chart in enumerate(_charts(definitions["dashboard"])):
        for data_set in chart["dataSets"]:
            series = data_set["timeSeriesQuery"]["timeSeriesFilter"]
            found.append((f"chart {index}", series["filter"], [series["aggregation"]], [data_set["legendTemplate"]]))
    return found


def test_every_metric_and_label_an_alert_or_chart_names_is_defined(definitions: dict[str, Any]) -> None:
    metrics = definitions["metrics"]
    for where, text, aggregations, texts in _monitoring_filters(definitions):
        [metric_type] = re.findall(r'metric\.type="([^"]+)"', text)
        assert metric_type.startswith(USER_METRIC), where
        metric = metrics[metric_type.removeprefix(USER_METRIC)]
        [resource] = re.findall(r'resource\.type="([^"]+)"', text)
        assert f'resource.type="{resource}"' in metric["filter"], where  # the resource its log entries have
        labels = {label["key"] for label in metric["metricDescriptor"]["labels"]}
        named = set(re.findall(r"metric\.labels?\.([a-z_]+)", text))
        named |= {
            field.rsplit(".", 1)[1] for aggregation in aggregations for field in aggregation.get("groupByFields", [])
        }
        named |= {label for content in texts for label in re.findall(r"\$\{metric\.labels?\.([a-z_]+)\}", content)}
        assert named <= labels, (where, named - labels)
        for aggregation in aggregations:
            aligner = aggregation["perSeriesAligner"]
            if metric["metricDescriptor"]["valueType"] == "DISTRIBUTION":
                assert aligner in NUMERIC_FROM_DISTRIBUTION, (where, aligner)  # a chart or alert of numbers
            else:
                assert "PERCENTILE" not in aligner, (where, aligner)  # percentiles need a distribution
    # Every metric is used by an alert or a chart.
    used = {re.findall(r'metric\.type="([^"]+)"', text)[0] for _, text, _, _ in _monitoring_filters(definitions)}
    assert {USER_METRIC + name for name in metrics} == used


def test_the_six_alerts_watch_what_the_issue_asks(definitions: dict[str, Any]) -> None:
    def condition(file: str) -> tuple[str, dict[str, Any]]:
        [only] = definitions["policies"][file]["conditions"]
        kind = next(key for key in only if key.startswith("condition"))
        return kind, only[kind]

    def metric(body: dict[str, Any]) -> str:
        return re.findall(r'metric\.type="([^"]+)"', body["filter"])[0].removeprefix(USER_METRIC + NAME + "-")

    kind, absent = condition("1-no-finished-run.json")
    assert (kind, metric(absent), absent["duration"]) == ("conditionAbsent", "runs", "300s")
    assert absent["aggregations"][0]["groupByFields"] == ["metric.label.source", "metric.label.shard"]
    kind, failed = condition("2-run-failed.json")
    assert (kind, metric(failed), failed["comparison"], failed["thresholdValue"]) == (
        "conditionThreshold",
        "run-failures",
        "COMPARISON_GT",
        0,
    )
    _, over = condition("3-over-budget.json")
    assert metric(over) == "runs" and 'metric.label.finished_within_budget="false"' in over["filter"]
    assert (over["aggregations"][0]["alignmentPeriod"], over["comparison"], over["thresholdValue"]) == (
        "300s",
        "COMPARISON_GT",
        2,
    )  # 3 or more over-budget runs in a sliding 5 minutes
    _, stale = condition("4-stale-caches.json")
    assert (metric(stale), stale["comparison"], stale["thresholdValue"]) == ("oldest-success-age", "COMPARISON_GT", 15)
    _, cooldown = condition("5-provider-cooldown.json")
    assert (metric(cooldown), cooldown["duration"]) == ("provider-cooldowns", "600s")
    assert cooldown["aggregations"][0]["alignmentPeriod"] == "120s"  # a run every minute: no window is empty
    _, scheduler = condition("6-scheduler-failures.json")
    assert metric(scheduler) == "scheduler-failures" and 'resource.type="cloud_scheduler_job"' in scheduler["filter"]
    for file, policy in definitions["policies"].items():
        content = policy["documentation"]["content"]
        assert "**First check**" in content and len(content) > 200, file


# ------------------------------------------------------------------------------------------- log lines


def field_problems(metrics: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """What the function's log-based metrics name that its log lines do not hold."""
    problems = []
    for name, metric in metrics.items():
        if FUNCTION_LOGS not in metric["filter"]:
            continue
        matched = [entry for entry in entries if log_query.matches(metric["filter"], entry)]
        if not matched:
            problems.append(f"{name}: its filter matches none of the function's log lines")
            continue
        for field in log_query.fields(metric["filter"]):
            if all(log_query.resolve(entry, field) is log_query.MISSING for entry in entries):
                problems.append(f"{name}: the filter's {field} is in no log line")
        for key, extractor in metric.get("labelExtractors", {}).items():
            if all(log_query.extract(extractor, entry) is log_query.MISSING for entry in matched):
                problems.append(f"{name}: label {key}'s {extractor} is in none of the lines it counts")
        if "valueExtractor" in metric:
            values = [log_query.extract(metric["valueExtractor"], entry) for entry in matched]
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if log_query.MISSING in values or not numbers:
                problems.append(f"{name}: {metric['valueExtractor']} is not a number in every line it counts")
    return problems


def _drive_runs(client: Any, seed: Any, sandbox: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Four runs, each of a kind the definitions watch: a completed one with refreshed, failed and held-back
    workspaces and a provider cool-down; a sharded one; one skipped as locked; one failing with a 500."""
    healthy = weekday_slots(datetime.now(UTC), 3)
    for number in range(8):
        slug = f"sick-{number}"
        sandbox.add_hubspot_link(slug, healthy, fault=Fault(status=503, headers=(("Retry-After", "0"),)))
        seed.client(slug)
        seed.link(slug, f"https://meetings.hubspot.com/{slug}")
    for number in range(3):
        calendar = f"healthyCalendar{number:05d}"
        sandbox.add_ghl_calendar(calendar, healthy)
        seed.client(f"ok-{number}")
        seed.link(f"ok-{number}", f"https://api.leadconnectorhq.com/widget/booking/{calendar}")
    responses = [client.post("/?concurrency=2", headers=bearer()), client.post("/?shard=0&shards=2", headers=bearer())]
    holder = admin_connection(db_url)
    try:
        holder.run(f"SELECT pg_advisory_lock({LOCK_KEY})")
        responses.append(client.post("/", headers=bearer()))
    finally:
        holder.close()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://cron:pw@127.0.0.1:{free_port()}/app")
    responses.append(client.post("/", headers=bearer()))
    return responses


def test_every_field_the_definitions_name_is_in_the_functions_log_lines(
    definitions: dict[str, Any], client: Any, seed: Any, sandbox: Any, db_url: str, monkeypatch: Any, capfd: Any
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    finished, sharded, skipped, failed = _drive_runs(client, seed, sandbox, db_url, monkeypatch)
    assert [r.status_code for r in (finished, sharded, skipped, failed)] == [200, 200, 200, 500]
    report, shard_report = finished.get_json(), sharded.get_json()
    assert report["refreshed"] and report["failed"] and report["notStarted"] and report["providerCooldowns"]
    assert shard_report["options"]["shard"] == 0 and skipped.get_json()["reason"] == "locked"
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.strip()]
    entries = [log_query.cloud_run_entry(line, NAME, REGION) for line in lines]
    metrics = definitions["metrics"]

    assert field_problems(metrics, entries) == []

    def matched(suffix: str) -> list[dict[str, Any]]:
        return [e["jsonPayload"] for e in entries if log_query.matches(metrics[f"{NAME}-{suffix}"]["filter"], e)]

    # Each metric counts exactly the lines it is about: completed runs (not the skipped one), the 500, the cool-down.
    completed = [report["invocationId"], shard_report["invocationId"]]
    for suffix in (
        "runs",
        "duration-ms",
        "oldest-success-age",
        "erroring-caches",
        "failed",
        "not-started",
        "refreshed",
    ):
        assert [entry["invocationId"] for entry in matched(suffix)] == completed, suffix
    assert [entry["invocationId"] for entry in matched("run-failures")] == [failed.get_json()["invocationId"]]
    assert [entry["provider"] for entry in matched("provider-cooldowns")] == ["hubspot"]
    # And extracts what the report says.
    for suffix in ("duration-ms", "oldest-success-age", "erroring-caches", "failed", "not-started", "refreshed"):
        metric = metrics[f"{NAME}-{suffix}"]
        path = log_query.extractor_field(metric["valueExtractor"]).removeprefix("jsonPayload.")
        for entry, body in zip(matched(suffix), (report, shard_report), strict=True):
            wrapped = {"jsonPayload": entry}
            assert log_query.extract(metric["valueExtractor"], wrapped) == log_query.resolve(body, path), suffix
    runs = metrics[f"{NAME}-runs"]["labelExtractors"]
    labels = [{key: log_query.extract(x, {"jsonPayload": e}) for key, x in runs.items()} for e in matched("runs")]
    assert labels == [
        {"source": "default", "shard": log_query.MISSING, "finished_within_budget": False},
        {"source": "default", "shard": 0, "finished_within_budget": shard_report["finishedWithinBudget"]},
    ]
    assert (
        log_query.extract(
            metrics[f"{NAME}-run-failures"]["labelExtractors"]["error"], {"jsonPayload": matched("run-failures")[0]}
        )
        == failed.get_json()["error"]
    )

    # A field renamed in the log lines is caught: here the report's durationMs, metrics.erroringCaches, the event.
    for rename in (("durationMs", "durationMillis"), ("erroringCaches", "failingCaches"), ("event", "kind")):
        problems = field_problems(metrics, _renamed(entries, *rename))
        assert any(rename[0] in problem or "matches none" in problem for problem in problems), rename


def _renamed(entries: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {(new if key == old else key): walk(item) for key, item in value.items()}
        return value

    return [walk(entry) for entry in entries]


def test_the_payload_keys_the_filters_name_are_not_ones_cloud_logging_takes_over(definitions: dict[str, Any]) -> None:
    """A key Cloud Logging owns (message, timestamp, ...) never reaches jsonPayload: a filter must not name one."""
    for name, metric in definitions["metrics"].items():
        named = list(log_query.fields(metric["filter"]))
        named += [log_query.extractor_field(x) for x in metric.get("labelExtractors", {}).values()]
        named += [log_query.extractor_field(metric["valueExtractor"])] if "valueExtractor" in metric else []
        for field in named:
            if field.startswith("jsonPayload."):
                assert field.split(".")[1] not in RESERVED_FIELDS, (name, field)


def _attempt(job: str, region: str, failed: bool) -> dict[str, Any]:
    """A Cloud Scheduler AttemptFinished entry as Cloud Logging holds it (cloudscheduler.googleapis.com/executions)."""
    payload = {
        "@type": "type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished",
        "jobName": f"projects/{PROJECT}/locations/{region}/jobs/{job}",
        "targetType": "HTTP",
        "url": FUNCTION_URL.format(name=NAME),
    }
    if failed:
        payload |= {
            "status": "UNAUTHENTICATED",
            "debugInfo": "URL_ERROR-ERROR_AUTHENTICATION. Original HTTP response code number = 401",
        }
    return {
        "logName": f"projects/{PROJECT}/logs/cloudscheduler.googleapis.com%2Fexecutions",
        "resource": {
            "type": "cloud_scheduler_job",
            "labels": {"job_id": job, "location": region, "project_id": PROJECT},
        },
        "severity": "ERROR" if failed else "INFO",
        "httpRequest": {"status": 401 if failed else 200},
        "jsonPayload": payload,
    }


@pytest.mark.parametrize("shards", ["1", "4"])
def test_scheduler_failures_count_exactly_the_failed_attempts_of_this_functions_jobs(
    tmp_path: Path, definitions: dict[str, Any], shards: str
) -> None:
    deployer = Deployer(tmp_path)
    deployer.set_state(existing_state(jobs=[]))
    assert deployer.run("--project", PROJECT, "--shards", shards, "--no-monitoring").returncode == 0
    jobs = deployer.state()["jobs"]
    assert len(jobs) == 2 * int(shards)
    metric = definitions["metrics"][f"{NAME}-scheduler-failures"]
    for job in jobs:
        entry = _attempt(job, REGION, failed=True)
        assert log_query.matches(metric["filter"], entry), job
        labels = {key: log_query.extract(x, entry) for key, x in metric["labelExtractors"].items()}
        assert labels == {"job_id": job, "status": "UNAUTHENTICATED", "http_status": 401}
        assert not log_query.matches(metric["filter"], _attempt(job, REGION, failed=False)), job
        assert not log_query.matches(metric["filter"], _attempt(job, "europe-west1", failed=True)), job
    for stranger in (f"{NAME}-tickle", f"other-{NAME}-tick", f"{NAME}-tick-shard-x-of-2", f"{NAME}-tick2"):
        assert not log_query.matches(metric["filter"], _attempt(stranger, REGION, failed=True)), stranger
