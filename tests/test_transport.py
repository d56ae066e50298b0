"""The tenant transport (lib/providers/transport.py) against real loopback servers: the connection goes
to the address the guard vetted even when the name answers differently later, TLS uses the name for
SNI and the certificate check, and the size cap counts decoded bytes (a gzip bomb fails cleanly)."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lib.deadline import Deadline
from lib.errors import ProviderError, ProviderResponseError
from lib.providers.http import MAX_RESPONSE_BYTES, HttpClient
from lib.providers.tenant import get_tenant_page
from tests.dbtools import Seeder
from tests.helpers import run_cron
from tests.local_http import LocalHttpServer, QuietHandler
from tests.stand_in_internet import PUBLIC_HOST, Canary, HostileDns, Internet, Route, stand_in_internet
from tests.tls_pages import TlsPage, certificate_pair

Stand = tuple[Internet, Canary, HostileDns, Route]


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stand]:
    yield from stand_in_internet(monkeypatch)


def test_the_connection_goes_to_the_vetted_address_when_a_second_lookup_would_say_loopback(internet: Stand) -> None:
    web, canary, dns, route = internet
    dns.rebinding("pin.attacker.test", first=PUBLIC_HOST, then="127.0.0.1")
    url = f"http://pin.attacker.test:{canary.v4.port}/ok"
    page = get_tenant_page(HttpClient(), url, deadline=Deadline.after(10), cap_s=5, what="page", allow_private=False)
    assert page.body == f"public page for pin.attacker.test:{canary.v4.port}".encode()  # the Host header: the name
    assert (dns.asked["pin.attacker.test"], route.delivered, canary.hits) == (1, 1, 0)
    assert web.requests == ["GET /ok HTTP/1.1"]


# --- TLS: the pinned connection still verifies the certificate for the name ---------------------------


@pytest.mark.parametrize(("certified_for", "works"), [("secure.attacker.test", True), ("other.attacker.test", False)])
def test_tls_to_a_pinned_address_uses_the_name_for_sni_and_the_certificate_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, certified_for: str, works: bool
) -> None:
    ca, certificate, key = certificate_pair(tmp_path, certified_for)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    dns = HostileDns(monkeypatch)
    dns.names["secure.attacker.test"] = "127.0.0.1"
    page = TlsPage(certificate, key)
    url = f"https://secure.attacker.test:{page.port}/page"

    def fetch() -> bytes:
        deadline = Deadline.after(10)
        return get_tenant_page(HttpClient(), url, deadline=deadline, cap_s=5, what="page", allow_private=True).body

    try:
        if works:
            assert fetch() == b"ok"
            assert page.hosts == [f"secure.attacker.test:{page.port}"]
        else:
            with pytest.raises(ProviderError, match=r"^page: connection failed \(TLS error: CERTIFICATE_VERIFY"):
                fetch()
            assert page.hosts == []
    finally:
        page.stop()
    assert page.server_names[:1] == ["secure.attacker.test"]
    assert dns.asked["secure.attacker.test"] >= 1


# --- the size cap counts decoded bytes --------------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb_server() -> Iterator[LocalHttpServer]:
    """Serves 200 MB of zeros as a ~200 KB gzip body, declared with its compressed Content-Length."""
    body = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = LocalHttpServer(Handler)
    try:
        yield server
    finally:
        server.stop()


def test_a_gzip_body_that_inflates_past_the_cap_fails_without_inflating(gzip_bomb_server: LocalHttpServer) -> None:
    tracemalloc.start()
    expected = rf"^Bomb answered with more than {MAX_RESPONSE_BYTES} bytes \(decoded\)$"
    url = f"{gzip_bomb_server.base_url}/x"
    try:
        with pytest.raises(ProviderResponseError, match=expected):
            HttpClient().get(url, deadline=Deadline.after(20), cap_s=10, what="Bomb", accept="*/*")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Read in bounded pieces: the peak stays near the cap, far below the 200 MB the body inflates to.
    assert peak < 2 * MAX_RESPONSE_BYTES, peak  # urllib3 2.5.0 peaks at 22 MB here; 2.8.0 at 5.5 MB


def test_a_gzip_bomb_booking_page_fails_its_workspace_with_a_clear_error(
    client: Any, seed: Seeder, gzip_bomb_server: LocalHttpServer
) -> None:
    seed.client("bomb")
    seed.link("bomb", f"{gzip_bomb_server.base_url}/widget/bookings/sales", link_type="ghl")
    report = run_cron(client)
    assert report["failed"] == 1
    expected = f"GoHighLevel booking page answered with more than {MAX_RESPONSE_BYTES} bytes (decoded)"
    assert seed.row("bomb").last_error == expected
