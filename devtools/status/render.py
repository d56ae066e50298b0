"""The status view as text for a terminal: the overview table and one workspace's story."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from devtools.status.overview import STALE_BUCKETS, TOP_FAILURES, Overview, ProviderLine, SourceSummary
from devtools.status.story import SourceStory, Story

_COLUMNS = (
    ("provider", 10),
    ("workspaces", 10),
    ("no row", 6),
    ("fresh", 6),
    *((f"stale {label}", max(7, len(label) + 6)) for label, _ in STALE_BUCKETS),
    ("changed", 7),
    ("erroring", 8),
    ("backoff", 7),
)
LEGEND = (
    "fresh: the application's reader serves the row as it is (origin §3.5); stale <age>: staleAt passed that\n"
    "long ago, the reader refreshes on read and the next run rewrites it; changed: staleAt is ahead but the\n"
    "link or settings changed since the row was written; erroring: lastError set (includes 'No availability\n"
    "slots found'); backoff: the next run skips it (configuration error, 24 h / 2 h)."
)


def duration_text(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if abs(seconds) < 120:
        return f"{seconds:.0f} s"
    if abs(seconds) < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if abs(seconds) < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(moment: datetime, now: datetime) -> str:
    delta = now - moment
    relative = f"{duration_text(delta)} ago" if delta >= timedelta(0) else f"in {duration_text(-delta)}"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({relative})"


def render_overview(overview: Overview, *, where: str) -> str:
    lines = [f"Availability caches at {overview.now:%Y-%m-%d %H:%M:%S} UTC, {where}", ""]
    for summary in overview.sources:
        lines += _source_table(summary)
    lines += [LEGEND, ""]
    lines += _failures(overview)
    lines += _oldest(overview)
    return "\n".join(lines).rstrip() + "\n"


def _source_table(summary: SourceSummary) -> list[str]:
    lines = [summary.source.value]
    if summary.total.workspaces == 0:
        lines.append(
            "  no workspace" + (" has a distinct direct-book calendar" if summary.source.value != "DEFAULT" else "")
        )
    else:
        lines.append(
            "  " + "  ".join(name.rjust(width) if i else name.ljust(width) for i, (name, width) in enumerate(_COLUMNS))
        )
        lines += ["  " + _table_line(line) for line in (*summary.lines, summary.total)]
    if summary.unused_rows:
        lines.append(
            f"  + {summary.unused_rows} rows of workspaces without a distinct direct-book calendar "
            "(the application reads their DEFAULT row)"
        )
    return [*lines, ""]


def _table_line(line: ProviderLine) -> str:
    values: list[Any] = [
        line.provider,
        line.workspaces,
        line.without_row,
        line.fresh,
        *(line.stale[label] for label, _ in STALE_BUCKETS),
        line.changed,
        line.erroring,
        line.in_backoff,
    ]
    cells = [
        str(value).ljust(width) if index == 0 else str(value).rjust(width)
        for index, (value, (_, width)) in enumerate(zip(values, _COLUMNS, strict=True))
    ]
    return "  ".join(cells)


def _failures(overview: Overview) -> list[str]:
    if not overview.failures:
        return ["No row has a lastError.", ""]
    lines = ["Most common failures (lastError with URLs, hosts, ids and numbers replaced)"]
    width = max(len(group.example_client_id) for group in overview.failures[:TOP_FAILURES])
    lines.append(f"  {'count':>5}  {'source':<11}  {'example':<{width}}  reason")
    for group in overview.failures[:TOP_FAILURES]:
        lines.append(
            f"  {group.count:>5}  {group.source.value:<11}  {group.example_client_id:<{width}}  {group.reason}"
        )
    hidden = len(overview.failures) - TOP_FAILURES
    if hidden > 0:
        lines.append(f"  … and {hidden} other reasons (--json lists them all)")
    return [*lines, ""]


def _oldest(overview: Overview) -> list[str]:
    if not overview.oldest_successful:
        return ["No successful row (lastError null) yet."]
    lines = ["Oldest successful refreshes (lastError null, by rangeStart: the provider's last answer)"]
    width = max(len(row.client_id) for row in overview.oldest_successful)
    for row in overview.oldest_successful:
        age = duration_text(timedelta(minutes=row.age_minutes))
        source, started = row.source.value, f"{row.range_start:%Y-%m-%d %H:%M:%S}"
        lines.append(f"  {age:>9}  {source:<11}  {row.provider:<8}  {row.client_id:<{width}}  {started}")
    return lines


def render_story(story: Story) -> str:
    client = story.client
    lines = [
        f"Workspace {client.id}" + (f" ({client.name})" if client.name else ""),
        f"  agency (userId): {client.agency or '(empty)'}; created {when(client.created_at, story.now)}",
    ]
    if story.link is None:
        lines.append(f"  default link: none ({client.links} links, none marked default)")
    else:
        lines.append(f"  default link: {story.link.id}, type {story.link.type!r}, url {story.link.url!r}")
    if client.default_links > 1:
        lines.append(
            f"  warning: {client.default_links} default links; the function reads the latest updated one, "
            "the application's reader takes any one of them"
        )
    lines += _settings(story)
    for source in story.sources:
        lines += ["", *_source_story(source, story.now)]
    return "\n".join(lines) + "\n"


def _settings(story: Story) -> list[str]:
    config = story.config
    if config is None:
        return ["  settings: no WorkspaceSettings row (meeting length 30 min, provider GHL)"]
    lines = [
        f"  settings: meeting length {config.meeting_duration_minutes} min, booking provider {config.booking_provider}"
    ]
    calendars = (
        ("GoHighLevel calendar id", config.ghl_default_calendar_id),
        ("GoHighLevel direct-book calendar id", config.ghl_direct_book_calendar_id),
        ("Calendly event type link", config.calendly_link),
        ("Calendly event type uri", config.calendly_uri),
        ("Calendly direct-book event type link", config.calendly_direct_book_link),
        ("Calendly direct-book event type uri", config.calendly_direct_book_uri),
    )
    lines += [f"    {name}: {value!r}" for name, value in calendars if value]
    if len(lines) == 1:
        lines.append("    no calendar id or event type set (the link alone decides)")
    return lines


def _source_story(source: SourceStory, now: datetime) -> list[str]:
    reading = source.reading
    lines = [source.source.value]
    if reading.eligible and reading.url:
        lines.append(f"  the function reads {reading.url} as {reading.calendar_type!r}")
    lines.append(f"  next run: {source.next_run}")
    row = source.row
    if row is None:
        lines.append("  row: none")
    else:
        lines += [
            f"  row: fetched {when(row.fetched_at, now)}",
            f"       stale at {when(row.stale_at, now)}",
            f"       range {row.range_start:%Y-%m-%d %H:%M:%S} → {row.range_end:%Y-%m-%d %H:%M:%S} UTC",
            f"       {_slots_text(source)}",
            f"       calendarType {row.calendar_type!r}, calendarUrl {row.calendar_url!r}, "
            f"calendarLinkId {row.calendar_link_id!r}, slot length {row.slot_duration_minutes} min",
            f"       providerMeta {json.dumps(row.provider_meta)}",
            f"  lastError: {row.last_error if row.last_error is not None else 'none'}",
        ]
    verdict = source.verdict
    if verdict is None:
        lines.append("  application's reader: never reads this source's row (direct-book requests read DEFAULT)")
    elif verdict.fresh:
        lines.append("  application's reader: FRESH, serves the row as it is")
    else:
        lines.append("  application's reader: NOT FRESH, refreshes before answering: " + "; ".join(verdict.reasons))
    return lines


def _slots_text(source: SourceStory) -> str:
    slots = source.slots
    if slots is None or slots.count is None:
        return "slotsUtc is not an array"
    if slots.count == 0:
        return "0 slots"
    return f"{slots.count} slots ({slots.ahead} still ahead), first {slots.first}, last {slots.last}"
