"""Fault 7, SSRF: calendar links (and redirects) to loopback, private, link-local and metadata
addresses or to other schemes never reach them, and lastError says why.

Only GoHighLevel booking pages are fetched at a URL a tenant typed (HubSpot and Calendly links only
give slugs to their providers' API hosts). ALLOW_PRIVATE_NETWORK is off here, as in production; the
providers' API hosts (the sandbox on 127.0.0.1) are configuration, not tenant input, so they still
work. tests/stand_in_internet.py stands in for the internet: connections to a public address reach
a local server without any packet leaving the machine, and any other would-be escape is refused
and recorded. The generated hostile set is in tests/test_faults_ssrf_hostile.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from sandbox.providers import ProviderSandbox, weekday_slots
from tests.dbtools import Seeder
from tests.faults_support import secret_scan  # noqa: F401 - fixture
from tests.helpers import assert_invariants, run_cron
from tests.stand_in_internet import Canary, HostileDns, Internet, Route, stand_in_internet

pytestmark = pytest.mark.usefixtures("secret_scan")

GHL_ID = "ssrfHealthyCalendar0"
BLOCKED = r"Blocked URL"
Stand = tuple[Internet, Canary, HostileDns, Route]


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[Stand]:
    """Production's guard (no private network) and the loopback stand-ins for the internet."""
    yield from stand_in_internet(monkeypatch)


@dataclass(frozen=True)
class Link:
    name: str
    url: str
    link_type: str
    error: str  # what lastError must match


def test_tenant_links_and_redirects_to_internal_addresses_never_reach_them(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, guarded: Stand
) -> None:
    internet, canary, _, route = guarded
    c4 = canary.v4.port
    c6 = canary.v6.port if canary.v6 else c4
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(datetime.now(UTC), 31))
    sandbox.add_hubspot_link("alice", weekday_slots(datetime.now(UTC), 31))
    page = "/widget/bookings/sales"
    internal = {
        "loop4": f"http://127.0.0.1:{c4}{page}",
        "localhost": f"http://localhost:{c4}{page}",
        "ten": f"http://10.1.2.3{page}",
        "metaip": "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
        "metaname": "http://metadata.google.internal/computeMetadata/v1/",
        "v6": f"http://[::1]:{c6}{page}",
        "zero": f"http://0.0.0.0:{c4}{page}",
        "decimal": f"http://2130706433:{c4}{page}",
        "mapped": f"http://[::ffff:127.0.0.1]:{c4}{page}",
    }
    links = [Link(f"direct-{name}", url, "ghl", BLOCKED) for name, url in internal.items()]
    # Stored links in other schemes get https:// put in front (as the application does), which
    # leaves a host named "file" or "gopher": refused before any connection.
    links += [
        Link("direct-file", "file:///etc/passwd", "ghl", r"Blocked URL|does not resolve"),
        Link("direct-gopher", f"gopher://127.0.0.1:{c4}/_GET", "ghl", r"Blocked URL|does not resolve"),
    ]
    redirect_targets = {
        **internal,
        "file": "file:///etc/passwd",
        "gopher": f"gopher://127.0.0.1:{c4}/_GET%20/",
        "relative-loop": f"//127.0.0.1:{c4}/",
    }
    links += [
        Link(f"redirect-{name}", internet.redirect_url(target), "ghl", BLOCKED)
        for name, target in redirect_targets.items()
    ]
    two_hops = internet.redirect_url(internet.redirect_url(internal["metaip"]))
    links.append(Link("redirect-twice", two_hops, "ghl", BLOCKED))
    # Links of the other providers pointing at the canary: only their slugs are used, never the host.
    links += [
        Link("hubspot-domain", f"http://127.0.0.1:{c4}/meetings/alice", "hubspot", ""),
        Link("calendly-lookalike", f"http://127.0.0.1:{c4}/calendly.com/intro", "calendly", r".+"),
        Link("healthy", f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}", "ghl", ""),
    ]
    for number, link in enumerate(links):
        seed.client(link.name, f"agency-{number}")
        seed.link(link.name, link.url, link_type=link.link_type)
    report = run_cron(client, "timeBudgetMs=10000&concurrency=40")
    assert_invariants(report)
    assert canary.hits == 0, "a request reached the canary"
    assert route.escaped == [], route.escaped
    # Every redirect's first hop really was fetched (through the stand-in internet) and then refused.
    redirect_names = [link for link in links if link.name.startswith("redirect-")]
    redirected = [line for line in internet.requests if line.startswith("GET /r/")]
    assert len(redirected) == len(redirect_names) + 1  # redirect-twice has two public hops
    rows = seed.rows()
    failing = [link for link in links if link.error]
    assert report["failed"] == len(failing)
    assert report["refreshed"] == len(links) - len(failing)
    for link in failing:
        error = rows[link.name].last_error
        assert error and re.search(link.error, error), (link.name, error)
    assert rows["direct-metaname"].last_error.startswith("Blocked URL: metadata.google.internal is the metadata")
    assert "scheme 'file'" in rows["redirect-file"].last_error
    assert "scheme 'gopher'" in rows["redirect-gopher"].last_error
    assert rows["hubspot-domain"].last_error is None and len(rows["hubspot-domain"].slots) > 20


def test_a_redirect_to_a_host_with_a_nul_byte_fails_only_its_workspace(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, guarded: Stand
) -> None:
    internet, canary, _, _ = guarded
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(datetime.now(UTC), 31))
    seed.client("nul", "agency-1")
    seed.link("nul", internet.redirect_url("http://evil\x00.127.0.0.1.example/"), link_type="ghl")
    seed.client("healthy", "agency-2")
    seed.link("healthy", f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}", link_type="ghl")
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 1)
    assert seed.row("nul").last_error.startswith("Blocked URL: the host name 'evil\\x00")
    assert canary.hits == 0
