"""Fault 7, SSRF: calendar links (and redirects) to loopback, private, link-local and metadata
addresses or to other schemes never reach them, and lastError says why.

Only GoHighLevel booking pages are fetched at a URL a tenant typed (HubSpot and Calendly links only
give slugs to their providers' API hosts). ALLOW_PRIVATE_NETWORK is off here, as in production; the
providers' API hosts (the sandbox on 127.0.0.1) are configuration, not tenant input, so they still
work. A loopback HTTP proxy stands in for the internet: a public address in a link reaches it
without any packet leaving the machine, and any request that would escape elsewhere is caught there.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from sandbox.providers import ProviderSandbox, weekday_slots
from tests.dbtools import Seeder
from tests.faults_support import RawServer, read_request, secret_scan  # noqa: F401 - secret_scan: fixture
from tests.helpers import assert_invariants, run_cron

pytestmark = pytest.mark.usefixtures("secret_scan")

# A public address (is_global) whose requests the loopback proxy below answers.
PUBLIC_HOST = "93.184.215.14"
GHL_ID = "ssrfHealthyCalendar0"
BLOCKED = r"Blocked URL"


class Internet:
    """The loopback proxy: `http://PUBLIC_HOST/r/<n>` redirects to target n; anything else escaped."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.redirected: list[str] = []
        self.escaped: list[str] = []
        self.server = RawServer(self._handle)

    def redirect_url(self, target: str) -> str:
        self.targets.append(target)
        return f"http://{PUBLIC_HOST}/r/{len(self.targets) - 1}/widget/bookings/sales"

    def _handle(self, connection: socket.socket) -> None:
        head = read_request(connection).decode("latin-1")
        parts = head.split(" ", 2)
        target = parts[1] if len(parts) > 1 else ""
        match = re.match(rf"^http://{re.escape(PUBLIC_HOST)}/r/(\d+)/", target)
        if match:
            self.redirected.append(target)
            location = self.targets[int(match.group(1))].encode("latin-1")
            connection.sendall(
                b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        self.escaped.append(head.split("\r\n", 1)[0])
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


class Canary:
    """Counts every connection to a loopback port (IPv4 and, where there is one, IPv6)."""

    def __init__(self) -> None:
        def answer(connection: socket.socket) -> None:
            read_request(connection)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

        self.v4 = RawServer(answer)
        self.v6 = RawServer(answer, family=socket.AF_INET6) if socket.has_ipv6 else None

    @property
    def hits(self) -> int:
        return self.v4.accepted + (self.v6.accepted if self.v6 else 0)

    def close(self) -> None:
        self.v4.close()
        if self.v6:
            self.v6.close()


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[tuple[Internet, Canary]]:
    """Production's guard (no private network) and the loopback stand-ins for the internet."""
    internet, canary = Internet(), Canary()
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORK", "false")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", internet.server.url)
    monkeypatch.setenv("https_proxy", internet.server.url)
    # The sandbox (the providers' API hosts) and loopback links go direct: these reach the canary.
    monkeypatch.setenv("no_proxy", "127.0.0.1,::1,localhost")
    try:
        yield internet, canary
    finally:
        internet.server.close()
        canary.close()


@dataclass(frozen=True)
class Link:
    name: str
    url: str
    link_type: str
    error: str  # what lastError must match


def test_tenant_links_and_redirects_to_internal_addresses_never_reach_them(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, guarded: tuple[Internet, Canary]
) -> None:
    internet, canary = guarded
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
        Link("direct-file", "file:///etc/passwd", "ghl", r"Blocked URL|Could not resolve"),
        Link("direct-gopher", f"gopher://127.0.0.1:{c4}/_GET", "ghl", r"Blocked URL|Could not resolve"),
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
    assert internet.escaped == [], internet.escaped
    # Every redirect's first hop really was fetched (through the stand-in internet) and then refused.
    redirect_names = [link for link in links if link.name.startswith("redirect-")]
    assert len(internet.redirected) == len(redirect_names) + 1  # redirect-twice has two public hops
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


def test_the_proxy_stand_in_does_reach_a_public_address(guarded: tuple[Internet, Canary]) -> None:
    """Checks the harness: without the guard, a request to the public address lands at the proxy."""
    import requests

    internet, _ = guarded
    url = internet.redirect_url("http://example.invalid/")
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert (answer.status_code, answer.headers["Location"]) == (302, "http://example.invalid/")
    assert internet.redirected == [url]


def test_a_redirect_to_a_host_with_a_nul_byte_fails_only_its_workspace(
    client: Any, seed: Seeder, sandbox: ProviderSandbox, guarded: tuple[Internet, Canary]
) -> None:
    internet, canary = guarded
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(datetime.now(UTC), 31))
    seed.client("nul", "agency-1")
    seed.link("nul", internet.redirect_url("http://evil\x00.127.0.0.1.example/"), link_type="ghl")
    seed.client("healthy", "agency-2")
    seed.link("healthy", f"https://api.leadconnectorhq.com/widget/booking/{GHL_ID}", link_type="ghl")
    report = run_cron(client)
    assert (report["failed"], report["refreshed"]) == (1, 1)
    assert seed.row("nul").last_error.startswith("Blocked URL: the host name 'evil\\x00")
    assert canary.hits == 0
