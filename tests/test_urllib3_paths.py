"""The urllib3 paths (tenant pages, API URLs the lean client leaves to urllib3) against a scripted
server: a server dripping its headers a byte at a time, each byte inside the read timeout, is cut
off at the request's time by lib/providers/watchdog.py instead of holding the worker for hours;
requests that end in time keep their kept-alive connections; a truncated answer is a clear failure."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lib.deadline import Deadline
from lib.errors import ProviderTimeout, ProviderUnreachable
from lib.providers.http import HttpClient, Response
from lib.providers.tenant import get_tenant_page
from lib.providers.watchdog import WATCHDOG
from tests.scripted_server import ScriptedServer, answer

# 200 header bytes at 0.2 s each: 40 s if only each recv is timed (1 s), about 1 s when the whole is.
DRIPPED_HEAD = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200
CAP_S = 1.0


def dripped(_: bytes, __: int) -> list[bytes]:
    return [DRIPPED_HEAD[i : i + 1] for i in range(len(DRIPPED_HEAD))]


def page(url: str, *, client: HttpClient | None = None, cap_s: float = CAP_S, what: str = "Page") -> Response:
    """A tenant page, read as the GoHighLevel provider reads one (private addresses allowed: 127.0.0.1)."""
    return get_tenant_page(
        client or HttpClient(), url, deadline=Deadline.after(30), cap_s=cap_s, what=what, allow_private=True
    )


def test_a_tenant_page_dripping_its_headers_is_cut_off_at_its_time(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(dripped, drip_s=0.2)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=r"^Page timed out after 1\.0 s$"):
        page(f"http://127.0.0.1:{server.port}/widget/bookings/sales")
    assert time.monotonic() - started < 6  # not the 40 s the dripped headers take


def test_an_api_url_off_the_lean_path_dripping_its_headers_is_cut_off_at_its_time(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(dripped, drip_s=0.2)
    # The lean client takes only URLs urllib3 would send unchanged; urllib3 drops a fragment.
    url = f"http://127.0.0.1:{server.port}/calendars/c1/free-slots#part"
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=r"^API timed out after 1\.0 s$"):
        HttpClient().get(url, deadline=Deadline.after(30), cap_s=CAP_S, what="API", accept="application/json")
    assert time.monotonic() - started < 6
    assert server.requests and server.requests[0].startswith(b"GET /calendars/c1/free-slots ")


@pytest.fixture
def dripping_tls_server() -> Iterator[int]:
    """Accepts TCP, then sends a TLS record header announcing 2,000 bytes and drips them at 0.2 s each:
    the client's handshake waits for the whole record, and each byte comes inside its read timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def drip(connection: socket.socket) -> None:
        with connection:
            try:
                connection.sendall(b"\x16\x03\x03\x07\xd0")  # handshake record, TLS 1.2, 2,000 bytes follow
                while not stop.wait(0.2):
                    connection.sendall(b"\x00")
            except OSError:  # the client gave up
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_a_tenant_page_dripping_its_tls_handshake_is_cut_off_at_its_time(dripping_tls_server: int) -> None:
    # CPython times a TLS handshake as a whole (the socket's timeout is its deadline), so this holds
    # with or without the watchdog; it is here so that it keeps holding.
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=r"^Page timed out after 1\.0 s$"):
        page(f"https://127.0.0.1:{dripping_tls_server}/widget/bookings/sales")
    assert time.monotonic() - started < 6


def test_a_page_answered_in_time_keeps_its_connection_after_its_time_has_passed(
    serve: Callable[..., ScriptedServer],
) -> None:
    server = serve(lambda _, __: [answer(b"<html></html>", "Content-Length: 13", "Content-Type: text/html")])
    client = HttpClient()
    url = f"http://127.0.0.1:{server.port}/widget/bookings/sales"
    for _ in range(2):
        assert page(url, client=client, cap_s=1.0).body == b"<html></html>"
        time.sleep(1.3)  # past the request's 1 s: the watchdog must leave its kept-alive socket alone
    assert server.connections == 1 and len(server.requests) == 2


def test_the_watchdog_shuts_down_only_sockets_of_a_bound_still_open() -> None:
    left, right = socket.socketpair()
    with left, right:
        with WATCHDOG.bound(time.monotonic() + 0.2):
            WATCHDOG.adopt(left)
        time.sleep(0.5)
        right.sendall(b"x")
        assert left.recv(1) == b"x"  # the bound had ended: the socket was not touched
        with WATCHDOG.bound(time.monotonic() + 0.2) as watch:
            WATCHDOG.adopt(left)
            left.settimeout(5)
            started = time.monotonic()
            assert left.recv(1) == b""  # woken by the shutdown, long before the 5 s timeout
            assert watch.fired and time.monotonic() - started < 2


def test_bounds_leave_no_descriptor_behind(serve: Callable[..., ScriptedServer]) -> None:
    server = serve(lambda _, __: [answer(b"<p>", "Content-Length: 3")])
    client = HttpClient()
    url = f"http://127.0.0.1:{server.port}/widget/bookings/sales"
    page(url, client=client, cap_s=5)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        page(url, client=client, cap_s=5)
    # A bound keeps a duplicate descriptor per socket, and bounds wait in the watchdog's queue until their
    # time (5 s here): one not released when its request ends adds one a request (50). Other tests'
    # threads may open a few meanwhile.
    assert len(os.listdir("/proc/self/fd")) < before + 10


@pytest.mark.parametrize("path", ["/widget/bookings/sales", "/calendars/c1/free-slots#part"], ids=["tenant", "api"])
def test_a_truncated_answer_is_a_failure_of_the_provider_worded_as_the_lean_client_words_it(
    serve: Callable[..., ScriptedServer], path: str
) -> None:
    # Before: urllib3's ProtocolError escaped the tenant path, and lastError read "Unexpected error: ...".
    server = serve(lambda _, __: [answer(b"<ht", "Content-Length: 50")], close_after_answer=True)
    url = f"http://127.0.0.1:{server.port}{path}"

    def get() -> object:
        if path.startswith("/widget/"):
            return page(url, cap_s=5, what="P")
        return HttpClient().get(url, deadline=Deadline.after(30), cap_s=5, what="P", accept="application/json")

    with pytest.raises(
        ProviderUnreachable, match=r"^P: connection failed \(the connection closed before the answer was complete\)$"
    ):
        get()
