"""HubSpot's public meetings API: the 30-minute availabilities of a meetings link, month by month."""

from __future__ import annotations

import re
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

from lib.config import DEFAULT_HUBSPOT_BASE_URL
from lib.errors import ProviderError, ProviderHTTPError, ProviderTimeout
from lib.providers.base import FetchContext, ProviderResult, expect_dict, expect_list
from lib.providers.weburl import browser_url
from lib.slots import Window, checked_instants, checked_ms, unique_instants

TIMEOUT_S = 12.0
THIRTY_MINUTES_MS = "1800000"
NAME = "HubSpot"
# The public API answered for regional booking hosts. The only pairing the sources show is an EU
# portal read from api-eu1.hubapi.com (providers.md §2a); other regions keep the configured host
# and rely on the Origin/Referer headers below. Used only while HUBSPOT_BASE_URL is the default.
REGIONAL_API_BASE_URLS = {"eu1": "https://api-eu1.hubapi.com"}
_MEETINGS_HOST = re.compile(r"^meetings(?:-(?P<region>[a-z]{2}\d+))?\.hubspot\.com$")


@dataclass(frozen=True)
class AvailabilityPage:
    """One month of a link's availability: 30-minute starts (epoch ms) and whether more months follow."""

    starts_ms: list[int]
    has_more: bool


def meeting_slug(url: str) -> str | None:
    """The slug of a meetings link: the path on a meetings host (team slugs keep their `/`), or what
    follows /meetings/ on any other host (portal custom domains)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = unquote(parts.path)
    if _MEETINGS_HOST.match(host):
        slug = path.strip("/")
    elif "/meetings/" in path:
        slug = path.split("/meetings/", 1)[1].strip("/")
    else:
        return None
    return slug or None


def api_base_url(url: str, configured: str) -> str:
    """Where to ask about a link: a regional API host for a regional booking host, unless
    HUBSPOT_BASE_URL was set to something else, which then wins for every link (tests, proxies)."""
    if configured.rstrip("/") != DEFAULT_HUBSPOT_BASE_URL:
        return configured
    match = _MEETINGS_HOST.match((urlsplit(url).hostname or "").lower())
    region = match.group("region") if match else None
    return REGIONAL_API_BASE_URLS.get(region or "", configured)


def booking_headers(url: str) -> dict[str, str]:
    """Origin and Referer of the booking page, as the browser showing it would send them: ASCII, with
    the host in IDNA and the path percent-encoded; none for a host that no browser could show."""
    try:
        page = urlsplit(browser_url(url))
    except ValueError:
        return {}
    origin = f"{page.scheme}://{page.netloc}"
    return {"Origin": origin, "Referer": f"{origin}{page.path}"}


def fetch_slots(ctx: FetchContext, url: str) -> ProviderResult:
    """Every 30-minute availability in the window: month 0, 1, ... while HubSpot says more follow
    and the window still reaches that month.

    The later months are asked for at the same time as the first (on the HTTP client's helper
    threads), so a window spanning two months costs one round trip of latency, not two; a page
    after one that says `hasMore: false` is ignored, failed or not.
    """
    slug = meeting_slug(url)
    if slug is None:
        raise ProviderError(f"{NAME} link has no meetings slug: {url}")
    base, headers = api_base_url(url, ctx.base_url), booking_headers(url)

    def month(offset: int) -> AvailabilityPage:
        return _month(ctx, base, slug, headers, offset)

    later = [ctx.http.alongside(partial(month, offset)) for offset in range(1, months_touched(ctx.window))]
    instants: list[int] = []
    try:
        page = month(0)
        instants.extend(page.starts_ms)
        for pending in later:
            if not page.has_more:
                break
            page = _result(pending, ctx)
            instants.extend(page.starts_ms)
    finally:
        for pending in later:
            pending.cancel()
    return ProviderResult(unique_instants(instants), {})


def _month(ctx: FetchContext, base: str, slug: str, headers: dict[str, str], offset: int) -> AvailabilityPage:
    try:
        data = ctx.http.get_json(
            f"{base}/meetings-public/v3/book/availability-page",
            params={"slug": slug, "monthOffset": str(offset), "timezone": "UTC"},
            deadline=ctx.deadline,
            cap_s=TIMEOUT_S,
            what=f"{NAME} availability-page (month {offset})",
            headers=headers,
        )
    except ProviderHTTPError as exc:
        if exc.status == 404:  # HubSpot's "slug does not exist"
            raise ProviderError(f"{NAME} meetings link not found: slug {slug!r} does not exist") from exc
        raise
    return parse_availability_page(data)


def _result(pending: Future[AvailabilityPage], ctx: FetchContext) -> AvailabilityPage:
    # The request itself ends by the deadline; the extra second covers the hand-over between threads.
    try:
        return pending.result(timeout=max(0.0, ctx.deadline.remaining()) + 1.0)
    except FutureTimeout as exc:
        raise ProviderTimeout(f"{NAME} availability-page: no answer before the run's deadline") from exc


def months_touched(window: Window) -> int:
    """Calendar months (in UTC, the zone we ask in) from the window's start to its end, both included:
    two for most 30-day windows, three from a 31st, five for a 90-day window starting on a 31st."""
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    return (end.year - start.year) * 12 + end.month - start.month + 1


def parse_availability_page(data: Any) -> AvailabilityPage:
    """The 30-minute starts of one `availability-page` answer. Other durations and the busy times
    (`allUsersBusyTimes`) are never slots; a link without a 30-minute duration is a failure."""
    body = expect_dict(data, f"{NAME} availability-page")
    availability = expect_dict(body.get("linkAvailability"), f"{NAME} linkAvailability")
    has_more = availability.get("hasMore") is True
    by_duration = expect_dict(
        availability.get("linkAvailabilityByDuration"), f"{NAME} linkAvailability.linkAvailabilityByDuration"
    )
    if not by_duration:
        return AvailabilityPage([], has_more)  # nothing offered this month
    if THIRTY_MINUTES_MS not in by_duration:
        raise ProviderError(f"{NAME} link offers no 30-minute meetings")
    bucket = expect_dict(by_duration[THIRTY_MINUTES_MS], f"{NAME} 30-minute availabilities")
    entries = expect_list(bucket.get("availabilities"), f"{NAME} 30-minute availabilities list")
    return AvailabilityPage(_starts(entries), has_more)


def _starts(entries: list[Any]) -> list[int]:
    """Each entry's `startMillisUtc`, checked. The comprehension is the usual case; an entry that is not
    an object, or lacks the field, sends the list through the one-by-one loop, which finds and names
    the first fault in the order the entries came, as a single loop would."""
    try:
        values = [entry["startMillisUtc"] for entry in entries]
    except (KeyError, TypeError):
        return [checked_ms(expect_dict(entry, f"{NAME} availability").get("startMillisUtc")) for entry in entries]
    return checked_instants(values)
