"""Odd but legal links (issue 10 §7): internationalised host names and non-ASCII paths refresh, through
the sandbox, with the request URL and the Origin/Referer headers in proper IDNA and percent-encoding
(what a browser showing the booking page would send), instead of failing with "Unexpected error"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lib.providers.hubspot import booking_headers
from lib.providers.weburl import browser_url
from sandbox.providers import ProviderSandbox, weekday_slots
from tests.dbtools import Seeder
from tests.helpers import run_cron


@pytest.mark.parametrize(
    ("link", "slug", "origin", "referer"),
    [
        (
            "https://bücher.example/meetings/jörg",
            "jörg",
            "https://xn--bcher-kva.example",
            "https://xn--bcher-kva.example/meetings/j%C3%B6rg",
        ),
        (
            "https://例え.テスト/meetings/営業",
            "営業",
            "https://xn--r8jz45g.xn--zckzah",
            "https://xn--r8jz45g.xn--zckzah/meetings/%E5%96%B6%E6%A5%AD",
        ),
        (
            "BÜCHER.example/meetings/Zoë",
            "Zoë",
            "https://xn--bcher-kva.example",
            "https://xn--bcher-kva.example/meetings/Zo%C3%AB",
        ),
        (
            "https://meetings.hubspot.com/zoë",
            "zoë",
            "https://meetings.hubspot.com",
            "https://meetings.hubspot.com/zo%C3%AB",
        ),
        (
            "https://straße.example:8443/meetings/a%20b",
            "a b",
            "https://xn--strae-oqa.example:8443",
            "https://xn--strae-oqa.example:8443/meetings/a%20b",
        ),
    ],
)
def test_hubspot_links_with_international_hosts_and_paths_refresh(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, link: str, slug: str, origin: str, referer: str
) -> None:
    free = weekday_slots(datetime.now(UTC), 31, timezone="UTC")
    sandbox.add_hubspot_link(slug, free)
    seed.client("c1")
    seed.link("c1", link)
    report = run_cron(client)
    row = seed.row("c1")
    assert (report["refreshed"], row.last_error) == (1, None)
    assert row.slots
    sent = [headers for target, headers in sandbox.request_headers if "availability-page" in target]
    assert sent
    assert {(h.get("Origin"), h.get("Referer")) for h in sent} == {(origin, referer)}


def test_calendly_links_with_non_ascii_slugs_refresh(client: Any, seed: Seeder, sandbox: ProviderSandbox) -> None:
    free = weekday_slots(datetime.now(UTC), 31, timezone="UTC")
    sandbox.add_calendly_event("jörg", "erstgespräch", free)
    seed.client("c1")
    seed.link("c1", "https://calendly.com/jörg/erstgespräch")
    assert run_cron(client)["refreshed"] == 1
    assert seed.row("c1").last_error is None


def test_ghl_booking_pages_with_non_ascii_paths_refresh(client: Any, seed: Seeder, sandbox: ProviderSandbox) -> None:
    calendar_id = "idnCalendarXXXXXXXXXX1"
    sandbox.add_ghl_calendar(calendar_id, weekday_slots(datetime.now(UTC), 31))
    sandbox.add_ghl_booking_page("/widget/bookings/beratung-für-zoë", calendar_id)
    seed.client("c1")
    seed.link("c1", f"{sandbox.base_url}/widget/bookings/beratung-für-zoë", link_type="ghl")
    assert run_cron(client)["refreshed"] == 1
    row = seed.row("c1")
    assert (row.last_error, row.provider_meta["ghlCalendarId"]) == (None, calendar_id)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://bücher.example/x y/ü?q=ä#frag", "https://xn--bcher-kva.example/x%20y/%C3%BC?q=%C3%A4"),
        ("https://EXAMPLE.com./a%2Fb", "https://example.com./a%2Fb"),
        ("https://user:pw@bücher.example/", "https://xn--bcher-kva.example/"),
        ("http://[2001:db8::1]:8080/ö", "http://[2001:db8::1]:8080/%C3%B6"),
    ],
)
def test_browser_url_is_ascii_with_idna_hosts_and_percent_encoded_paths(url: str, expected: str) -> None:
    assert browser_url(url) == expected


def test_booking_headers_for_an_unencodable_host_are_left_out() -> None:
    # A host IDNA refuses (a zero-width joiner between Latin letters) cannot be a page's origin.
    assert booking_headers("https://bad\u200dhost.example/meetings/x") == {}
