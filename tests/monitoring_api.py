"""A small check of monitoring definitions against the formats of the APIs that receive them.

It covers what those APIs reject (required fields, enum values, duration strings such as "300s", the
range rules of absence conditions and aggregations, dashboard tiles that overlap or overflow) and the
basics of the filters; it is not the whole API. Each check returns the problems it found, as
"path: problem" strings; an empty list means none. References:
  LogMetric    https://cloud.google.com/logging/docs/reference/v2/rest/v2/projects.metrics#LogMetric
  AlertPolicy  https://cloud.google.com/monitoring/api/ref_v3/rest/v3/projects.alertPolicies
  Dashboard    https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
METRIC_KINDS = {"DELTA", "GAUGE", "CUMULATIVE"}
LOG_METRIC_KINDS = {"DELTA"}  # a log-based metric is always DELTA
VALUE_TYPES = {"BOOL", "INT64", "DOUBLE", "STRING", "DISTRIBUTION", "MONEY"}
LABEL_TYPES = {"STRING", "BOOL", "INT64"}
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
LOG_METRIC_NAME = re.compile(r"^[A-Za-z0-9_\-.,+!*'()%/]{1,100}$")
EXTRACTOR = re.compile(
    r'^(EXTRACT\((?P<field>[A-Za-z0-9_.@]+)\)|REGEXP_EXTRACT\((?P<rfield>[A-Za-z0-9_.@]+), *"(.+)"\))$'
)
COMBINERS = {"AND", "OR", "AND_WITH_MATCHING_RESOURCE"}
COMPARISONS = {"COMPARISON_GT", "COMPARISON_GE", "COMPARISON_LT", "COMPARISON_LE", "COMPARISON_EQ", "COMPARISON_NE"}
SEVERITIES = {"CRITICAL", "ERROR", "WARNING"}
ALIGNERS = {
    "ALIGN_NONE",
    "ALIGN_DELTA",
    "ALIGN_RATE",
    "ALIGN_INTERPOLATE",
    "ALIGN_NEXT_OLDER",
    "ALIGN_MIN",
    "ALIGN_MAX",
    "ALIGN_MEAN",
    "ALIGN_COUNT",
    "ALIGN_SUM",
    "ALIGN_STDDEV",
    "ALIGN_COUNT_TRUE",
    "ALIGN_COUNT_FALSE",
    "ALIGN_FRACTION_TRUE",
    "ALIGN_PERCENTILE_99",
    "ALIGN_PERCENTILE_95",
    "ALIGN_PERCENTILE_50",
    "ALIGN_PERCENTILE_05",
    "ALIGN_PERCENT_CHANGE",
}
REDUCERS = {
    "REDUCE_NONE",
    "REDUCE_MEAN",
    "REDUCE_MIN",
    "REDUCE_MAX",
    "REDUCE_SUM",
    "REDUCE_STDDEV",
    "REDUCE_COUNT",
    "REDUCE_COUNT_TRUE",
    "REDUCE_COUNT_FALSE",
    "REDUCE_FRACTION_TRUE",
    "REDUCE_PERCENTILE_99",
    "REDUCE_PERCENTILE_95",
    "REDUCE_PERCENTILE_50",
    "REDUCE_PERCENTILE_05",
}
# Aligners whose output is a number when the input is a distribution (an alert compares numbers).
NUMERIC_FROM_DISTRIBUTION = {
    "ALIGN_PERCENTILE_99",
    "ALIGN_PERCENTILE_95",
    "ALIGN_PERCENTILE_50",
    "ALIGN_PERCENTILE_05",
    "ALIGN_MEAN",
    "ALIGN_COUNT",
}
CONDITION_KINDS = (
    "conditionThreshold",
    "conditionAbsent",
    "conditionMatchedLog",
    "conditionMonitoringQueryLanguage",
    "conditionPrometheusQueryLanguage",
    "conditionSql",
)
MIN_ABSENT_DURATION_S = 120
MAX_DOCUMENTATION_BYTES = 10240
MAX_SUBJECT_CHARS = 255
PLOT_TYPES = {"LINE", "STACKED_AREA", "STACKED_BAR", "HEATMAP"}
WIDGET_KINDS = (
    "xyChart",
    "scorecard",
    "text",
    "blank",
    "alertChart",
    "timeSeriesTable",
    "collapsibleGroup",
    "logsPanel",
    "incidentList",
    "pieChart",
    "errorReportingPanel",
    "sectionHeader",
    "singleViewGroup",
)
LAYOUTS = ("gridLayout", "mosaicLayout", "rowLayout", "columnLayout")
MAX_MOSAIC_COLUMNS = 48
CHANNEL_NAME = re.compile(r"^projects/[a-z0-9.:-]+/notificationChannels/[0-9]+$")
MONITORING_SELECTOR = re.compile(
    r"\b(metric\.type|resource\.type|metric\.labels?\.[a-z_]+|resource\.labels?\.[a-z_]+)\s*(=|!=|:)"
)
LOGGING_TERM = re.compile(r"[A-Za-z@][A-Za-z0-9_.@/]*\s*(=~|!~|>=|<=|!=|=|>|<|:)")

Problems = list[str]


def duration_seconds(value: Any) -> float | None:
    return float(value[:-1]) if isinstance(value, str) and DURATION.match(value) else None


def _require(problems: Problems, where: str, body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or (isinstance(value, str | list | dict) and not value):
        problems.append(f"{where}.{key}: required {kind.__name__}, got {value!r}")
        return None
    return value


def _enum(problems: Problems, where: str, value: Any, allowed: set[str]) -> None:
    if value not in allowed:
        problems.append(f"{where}: {value!r} is not one of {sorted(allowed)}")


def _duration(problems: Problems, where: str, value: Any, minimum: float = 0) -> None:
    seconds = duration_seconds(value)
    if seconds is None:
        problems.append(f'{where}: {value!r} is not a duration like "300s"')
    elif seconds < minimum:
        problems.append(f"{where}: {value} is below the minimum {minimum:g}s")


def filter_problems(where: str, text: str, monitoring: bool) -> Problems:
    """Basics both filter languages share (balanced quotes and parentheses, something to compare), and for
    Monitoring filters a metric.type and only the selectors Monitoring knows."""
    problems: Problems = []
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    if unquoted.count('"') % 2:
        problems.append(f"{where}: unbalanced quotes")
    depth = 0
    for char in unquoted:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth:
        problems.append(f"{where}: unbalanced parentheses")
    if monitoring:
        if not re.search(r'metric\.type\s*=\s*"[^"]+"', text):
            problems.append(f'{where}: a Monitoring filter needs metric.type="..."')
        selectors = re.findall(r"\b([a-z_]+)\.[a-z_]+", unquoted)
        unknown = {s for s in selectors if s not in {"metric", "resource", "metadata", "project", "group"}}
        if unknown:
            problems.append(f"{where}: unknown selector(s) {sorted(unknown)}")
        if not MONITORING_SELECTOR.search(text):
            problems.append(f"{where}: no selector comparison")
    elif not LOGGING_TERM.search(text):
        problems.append(f"{where}: no field comparison")
    return problems


def check_log_metric(metric: dict[str, Any]) -> Problems:
    problems: Problems = []
    name = _require(problems, "metric", metric, "name", str)
    if name and not LOG_METRIC_NAME.match(name):
        problems.append(f"metric.name: {name!r} has characters a metric name cannot hold")
    if (text := _require(problems, "metric", metric, "filter", str)) is not None:
        problems += filter_problems("metric.filter", text, monitoring=False)
    descriptor = metric.get("metricDescriptor", {})
    _enum(problems, "metric.metricDescriptor.metricKind", descriptor.get("metricKind"), LOG_METRIC_KINDS)
    value_type = descriptor.get("valueType")
    _enum(problems, "metric.metricDescriptor.valueType", value_type, {"INT64", "DISTRIBUTION", "BOOL", "DOUBLE"})
    keys = []
    for index, label in enumerate(descriptor.get("labels", [])):
        where = f"metric.metricDescriptor.labels[{index}]"
        if not LABEL_KEY.match(str(label.get("key", ""))):
            problems.append(f"{where}.key: {label.get('key')!r} is not a label key")
        _enum(problems, f"{where}.valueType", label.get("valueType", "STRING"), LABEL_TYPES)
        keys.append(label.get("key"))
    extractors = metric.get("labelExtractors", {})
    if sorted(keys) != sorted(extractors):
        problems.append(f"metric.labelExtractors: keys {sorted(extractors)} differ from the labels {sorted(keys)}")
    for key, extractor in extractors.items():
        if not EXTRACTOR.match(extractor):
            problems.append(f"metric.labelExtractors.{key}: {extractor!r} is not EXTRACT(field) or REGEXP_EXTRACT")
    if value_type == "DISTRIBUTION":
        if not EXTRACTOR.match(str(metric.get("valueExtractor", ""))):
            problems.append("metric.valueExtractor: a distribution needs EXTRACT(field) or REGEXP_EXTRACT")
        problems += _bucket_problems(metric.get("bucketOptions"))
    elif "valueExtractor" in metric or "bucketOptions" in metric:
        problems.append("metric: valueExtractor and bucketOptions belong to a DISTRIBUTION metric only")
    return problems


def _bucket_problems(options: Any) -> Problems:
    if not isinstance(options, dict) or len(options) != 1:
        return ["metric.bucketOptions: exactly one of linearBuckets, exponentialBuckets, explicitBuckets"]
    [(kind, spec)] = options.items()
    if kind == "explicitBuckets":
        bounds = spec.get("bounds", [])
        ordered = all(isinstance(b, int | float) for b in bounds) and all(a < b for a, b in itertools.pairwise(bounds))
        return [] if bounds and ordered else ["metric.bucketOptions.explicitBuckets.bounds: not increasing numbers"]
    if kind == "exponentialBuckets":
        good = spec.get("numFiniteBuckets", 0) > 0 and spec.get("growthFactor", 0) > 1 and spec.get("scale", 0) > 0
        return (
            []
            if good
            else ["metric.bucketOptions.exponentialBuckets: numFiniteBuckets > 0, growthFactor > 1, scale > 0"]
        )
    if kind == "linearBuckets":
        good = spec.get("numFiniteBuckets", 0) > 0 and spec.get("width", 0) > 0
        return [] if good else ["metric.bucketOptions.linearBuckets: numFiniteBuckets > 0, width > 0"]
    return [f"metric.bucketOptions: unknown kind {kind!r}"]


def aggregation_problems(where: str, aggregation: dict[str, Any]) -> Problems:
    problems: Problems = []
    aligner = aggregation.get("perSeriesAligner", "ALIGN_NONE")
    reducer = aggregation.get("crossSeriesReducer", "REDUCE_NONE")
    _enum(problems, f"{where}.perSeriesAligner", aligner, ALIGNERS)
    _enum(problems, f"{where}.crossSeriesReducer", reducer, REDUCERS)
    if "alignmentPeriod" in aggregation:
        _duration(problems, f"{where}.alignmentPeriod", aggregation["alignmentPeriod"], minimum=60)
    elif aligner != "ALIGN_NONE":
        problems.append(f"{where}.alignmentPeriod: required with an aligner")
    if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
        problems.append(f"{where}: a crossSeriesReducer needs a perSeriesAligner")
    if aggregation.get("groupByFields") and reducer == "REDUCE_NONE":
        problems.append(f"{where}.groupByFields: needs a crossSeriesReducer")
    for field in aggregation.get("groupByFields", []):
        if not re.match(r"^(metric|resource)\.labels?\.[a-z_]+$|^metadata\.", field):
            problems.append(f"{where}.groupByFields: {field!r} is not a label")
    return problems


def _condition_problems(where: str, condition: dict[str, Any]) -> Problems:
    problems: Problems = []
    _require(problems, where, condition, "displayName", str)
    kinds = [kind for kind in CONDITION_KINDS if kind in condition]
    if len(kinds) != 1:
        return [*problems, f"{where}: exactly one condition kind of {CONDITION_KINDS}, got {kinds}"]
    kind = kinds[0]
    body = condition[kind]
    inner = f"{where}.{kind}"
    if kind in ("conditionThreshold", "conditionAbsent"):
        if (text := _require(problems, inner, body, "filter", str)) is not None:
            problems += filter_problems(f"{inner}.filter", text, monitoring=True)
        minimum = MIN_ABSENT_DURATION_S if kind == "conditionAbsent" else 0
        _duration(problems, f"{inner}.duration", body.get("duration"), minimum)
        for index, aggregation in enumerate(body.get("aggregations", [])):
            problems += aggregation_problems(f"{inner}.aggregations[{index}]", aggregation)
        trigger = body.get("trigger", {})
        if len(trigger) > 1 or (trigger and not (trigger.get("count", 1) >= 1 or 0 < trigger.get("percent", 0) <= 100)):
            problems.append(f"{inner}.trigger: one of count >= 1 or percent in (0, 100]")
    if kind == "conditionThreshold":
        _enum(problems, f"{inner}.comparison", body.get("comparison"), COMPARISONS)
        if not isinstance(body.get("thresholdValue"), int | float):
            problems.append(f"{inner}.thresholdValue: required number")
    return problems


def check_alert_policy(policy: dict[str, Any]) -> Problems:
    problems: Problems = []
    _require(problems, "policy", policy, "displayName", str)
    _enum(problems, "policy.combiner", policy.get("combiner"), COMBINERS)
    if "severity" in policy:
        _enum(problems, "policy.severity", policy["severity"], SEVERITIES)
    conditions = _require(problems, "policy", policy, "conditions", list) or []
    if len(conditions) > 6:
        problems.append("policy.conditions: at most 6")
    for index, condition in enumerate(conditions):
        problems += _condition_problems(f"policy.conditions[{index}]", condition)
    documentation = policy.get("documentation", {})
    content = _require(problems, "policy.documentation", documentation, "content", str) or ""
    if len(content.encode()) > MAX_DOCUMENTATION_BYTES:
        problems.append(f"policy.documentation.content: longer than {MAX_DOCUMENTATION_BYTES} bytes")
    _enum(problems, "policy.documentation.mimeType", documentation.get("mimeType"), {"text/markdown"})
    if len(documentation.get("subject", "")) > MAX_SUBJECT_CHARS:
        problems.append(f"policy.documentation.subject: longer than {MAX_SUBJECT_CHARS} characters")
    for channel in policy.get("notificationChannels", []):
        if not CHANNEL_NAME.match(channel):
            problems.append(f"policy.notificationChannels: {channel!r} is not projects/P/notificationChannels/ID")
    if "autoClose" in policy.get("alertStrategy", {}):
        _duration(problems, "policy.alertStrategy.autoClose", policy["alertStrategy"]["autoClose"], minimum=1800)
    for key, value in policy.get("userLabels", {}).items():
        if not LABEL_KEY.match(key) or not re.match(r"^[a-z0-9_-]{0,63}$", str(value)):
            problems.append(f"policy.userLabels.{key}: keys and values are lowercase, at most 63 characters")
    for read_only in ("name", "creationRecord", "mutationRecord"):
        if read_only in policy:
            problems.append(f"policy.{read_only}: output only; a definition must not set it")
    return problems


def _widget_problems(where: str, widget: dict[str, Any]) -> Problems:
    problems: Problems = []
    kinds = [kind for kind in WIDGET_KINDS if kind in widget]
    if len(kinds) != 1:
        return [f"{where}: exactly one widget kind, got {kinds}"]
    chart = widget.get("xyChart")
    if chart is None:
        return problems
    data_sets = _require(problems, f"{where}.xyChart", chart, "dataSets", list) or []
    for index, data_set in enumerate(data_sets):
        inner = f"{where}.xyChart.dataSets[{index}]"
        _enum(problems, f"{inner}.plotType", data_set.get("plotType", "LINE"), PLOT_TYPES)
        if "minAlignmentPeriod" in data_set:
            _duration(problems, f"{inner}.minAlignmentPeriod", data_set["minAlignmentPeriod"])
        series = data_set.get("timeSeriesQuery", {}).get("timeSeriesFilter")
        if not isinstance(series, dict):
            problems.append(f"{inner}.timeSeriesQuery.timeSeriesFilter: required")
            continue
        if (text := _require(problems, inner, series, "filter", str)) is not None:
            problems += filter_problems(f"{inner}.filter", text, monitoring=True)
        problems += aggregation_problems(f"{inner}.aggregation", series.get("aggregation", {}))
    for index, threshold in enumerate(chart.get("thresholds", [])):
        if not isinstance(threshold.get("value"), int | float):
            problems.append(f"{where}.xyChart.thresholds[{index}].value: required number")
    return problems


def check_dashboard(dashboard: dict[str, Any]) -> Problems:
    problems: Problems = []
    _require(problems, "dashboard", dashboard, "displayName", str)
    layouts = [layout for layout in LAYOUTS if layout in dashboard]
    if layouts != ["mosaicLayout"]:
        return [*problems, f"dashboard: this check knows mosaicLayout only (one layout), got {layouts}"]
    layout = dashboard["mosaicLayout"]
    columns = layout.get("columns", 0)
    if not 1 <= columns <= MAX_MOSAIC_COLUMNS:
        problems.append(f"dashboard.mosaicLayout.columns: {columns} is not in [1, {MAX_MOSAIC_COLUMNS}]")
    taken: set[tuple[int, int]] = set()
    for index, tile in enumerate(layout.get("tiles", [])):
        where = f"dashboard.mosaicLayout.tiles[{index}]"
        x, y, width, height = (tile.get(key, 0) for key in ("xPos", "yPos", "width", "height"))
        if width < 1 or height < 1 or x < 0 or y < 0 or x + width > columns:
            problems.append(f"{where}: does not fit in {columns} columns")
        cells = {(column, row) for column in range(x, x + width) for row in range(y, y + height)}
        if cells & taken:
            problems.append(f"{where}: overlaps another tile")
        taken |= cells
        problems += _widget_problems(f"{where}.widget", tile.get("widget", {}))
    return problems


CHECKS: dict[str, Callable[[dict[str, Any]], Problems]] = {
    "metric": check_log_metric,
    "policy": check_alert_policy,
    "dashboard": check_dashboard,
}
