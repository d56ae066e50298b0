"""Fault 7, SSRF, tried as an attacker would: hundreds of generated hostile links (tests/hostile_urls.py)
and DNS rebinding, through the real refresh path of GoHighLevel `/widget/bookings/` links, with
private networks disallowed. The client resolves and connects by itself (tests/stand_in_internet.py
routes one public address to a local server and refuses every other non-loopback address), so any
differential between the guard and the client would end at the loopback canary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.dbtools import Seeder
from tests.faults_support import secret_scan  # noqa: F401 - fixture
from tests.helpers import assert_invariants, run_cron
from tests.hostile_urls import ATTACKER_DNS, hostile_urls, rebinding_urls
from tests.stand_in_internet import PUBLIC_HOST, Canary, HostileDns, Internet, Route, stand_in_internet

pytestmark = pytest.mark.usefixtures("secret_scan")
REBINDING_NAMES = 8
MIN_VARIANTS = 300
Stand = tuple[Internet, Canary, HostileDns, Route]


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[Stand]:
    yield from stand_in_internet(monkeypatch)


def test_hostile_links_and_rebinding_names_never_reach_the_canary(client: Any, seed: Seeder, internet: Stand) -> None:
    web, canary, dns, route = internet
    dns.names.update(ATTACKER_DNS)
    v6_port = canary.v6.port if canary.v6 else canary.v4.port
    links: dict[str, str] = {}
    for hostile in hostile_urls(canary.v4.port, v6_port):
        links[hostile.name] = web.redirect_url(hostile.url) if hostile.via_redirect else hostile.url
    for number, (name, url) in enumerate(rebinding_urls(canary.v4.port, REBINDING_NAMES).items()):
        dns.rebinding(name, first=PUBLIC_HOST, then="127.0.0.1")
        links[f"rebind-{number}"] = url
    assert len(links) >= MIN_VARIANTS
    for number, (name, url) in enumerate(links.items()):
        seed.client(name, f"agency-{number % 17}")
        seed.link(name, url, link_type="ghl")

    report = run_cron(client, "timeBudgetMs=120000&concurrency=32")

    assert_invariants(report)
    assert canary.hits == 0, f"{canary.hits} connections reached the loopback canary"
    assert route.escaped == [], route.escaped
    assert report["failed"] == len(links), report
    rows = seed.rows()
    not_blocked = {name: rows[name].last_error for name in links if "Blocked URL" not in (rows[name].last_error or "")}
    assert not_blocked == {}, "\n".join(f"{name}: {error}" for name, error in sorted(not_blocked.items()))
    # The redirect links really were fetched from the public page before their next hop was refused,
    # and each rebinding name was looked up twice: once for the public hop, once for its redirect.
    assert route.delivered >= sum(1 for name in links if name.startswith("r-")) + REBINDING_NAMES
    assert all(dns.asked[name] == 2 for name in rebinding_urls(canary.v4.port, REBINDING_NAMES)), dns.asked
    for name in (f"rebind-{n}" for n in range(REBINDING_NAMES)):
        assert "resolves to a non-public address (127.0.0.1)" in rows[name].last_error


def test_the_stand_in_internet_is_reached_and_nothing_else_is(
    internet: Stand,
) -> None:
    """Checks the harness: a connection to the public address reaches the stand-in server, one to
    another public address is refused and recorded, one to loopback is left alone."""
    import socket

    web, canary, _, route = internet
    with socket.create_connection((PUBLIC_HOST, 80), timeout=5) as sock:
        sock.sendall(b"GET /elsewhere HTTP/1.1\r\nHost: x.test\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 302")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("8.8.8.8", 53), timeout=5)
    socket.create_connection(("127.0.0.1", canary.v4.port), timeout=5).close()
    assert (route.delivered, route.escaped, web.requests) == (1, ["8.8.8.8:53"], ["GET /elsewhere HTTP/1.1"])
