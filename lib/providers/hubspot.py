"""HubSpot's public meetings API: the 30-minute availabilities of a meetings link, month by month."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from lib.errors import ProviderError
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.slots import checked_ms

TIMEOUT_S = 12.0
THIRTY_MINUTES_MS = "1800000"
# A 30-day window touches at most three calendar months (Jan 31 → Mar 2).
MAX_MONTHS = 3
NAME = "HubSpot"


def meeting_slug(url: str) -> str | None:
    """The slug of a meetings link: the path on a meetings host, or what follows /meetings/ elsewhere."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = unquote(parts.path)
    if host.startswith("meetings") and host.endswith(".hubspot.com"):
        slug = path.strip("/")
    elif "/meetings/" in path:
        slug = path.split("/meetings/", 1)[1].strip("/")
    else:
        return None
    return slug or None


def fetch_slots(ctx: FetchContext, url: str) -> ProviderResult:
    """Every 30-minute availability in the window, fetching each calendar month it touches."""
    slug = meeting_slug(url)
    if slug is None:
        raise ProviderError(f"{NAME} link has no meetings slug: {url}")
    months = _months_touched(ctx)
    instants: list[int] = []
    for offset in range(months):
        data = ctx.http.get_json(
            f"{ctx.base_url}/meetings-public/v3/book/availability-page",
            params={"slug": slug, "monthOffset": str(offset), "timezone": "UTC"},
            deadline=ctx.deadline,
            cap_s=TIMEOUT_S,
            what=f"{NAME} availability-page (month {offset})",
        )
        availability = expect_dict(expect_dict(data, NAME).get("linkAvailability"), f"{NAME} linkAvailability")
        instants.extend(_thirty_minute_starts(availability))
        if not availability.get("hasMore"):
            break
    return ProviderResult(instants, {})


def _months_touched(ctx: FetchContext) -> int:
    start, end = ctx.window.start, ctx.window.end
    return min(MAX_MONTHS, (end.year - start.year) * 12 + end.month - start.month + 1)


def _thirty_minute_starts(availability: dict[str, Any]) -> list[int]:
    by_duration = expect_dict(availability.get("linkAvailabilityByDuration") or {}, f"{NAME} durations")
    if not by_duration:
        return []
    if THIRTY_MINUTES_MS not in by_duration:
        raise ProviderError(f"{NAME} link offers no 30-minute meetings")
    bucket = expect_dict(by_duration[THIRTY_MINUTES_MS], f"{NAME} 30-minute availabilities")
    entries = expect_list(bucket.get("availabilities") or [], f"{NAME} availabilities")
    return [checked_ms(expect_dict(entry, f"{NAME} availability").get("startMillisUtc")) for entry in entries]
