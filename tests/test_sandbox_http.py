"""The provider sandbox's HTTP/1.1 on the wire (sandbox/server.py, sandbox/http11.py), over raw sockets.

Clients like urllib3 only ever send one well-formed request at a time; these tests send what they
never do (split writes, pipelines, bodies, half-closes, garbage) and check the framing holds.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
import requests

from sandbox.dispatch import parse_query
from sandbox.http11 import BadRequest, chunked_end, parse_head
from sandbox.providers import Fault, ProviderSandbox, weekday_slots

NOW = datetime(2026, 10, 26, 14, 0, tzinfo=UTC)
TIMEOUT = 5.0
PAGE = "/meetings-public/v3/book/availability-page?slug={slug}&monthOffset=0&timezone=UTC"


@pytest.fixture
def sandbox() -> Iterator[ProviderSandbox]:
    with ProviderSandbox(clock=lambda: NOW) as running:
        running.add_hubspot_link("rep", weekday_slots(NOW, 5))
        yield running


def connect(sandbox: ProviderSandbox) -> socket.socket:
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def read_response(client: socket.socket, pending: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response off `client` (Content-Length framed); bytes past it stay in `pending`."""
    while b"\r\n\r\n" not in pending:
        chunk = client.recv(65536)
        assert chunk, f"connection closed mid-head after {bytes(pending)!r}"
        pending += chunk
    head, _, _ = bytes(pending).partition(b"\r\n\r\n")
    del pending[: len(head) + 4]
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers["content-length"])
    while len(pending) < length:
        chunk = client.recv(65536)
        assert chunk, "connection closed mid-body"
        pending += chunk
    body = bytes(pending[:length])
    del pending[:length]
    return status, headers, body


def closed_by_server(client: socket.socket) -> bool:
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True


def get_request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: sandbox\r\n{extra}\r\n".encode()


def test_a_request_split_across_writes_is_answered_once_whole(sandbox: ProviderSandbox) -> None:
    request = get_request(PAGE.format(slug="rep"), "User-Agent: split-test\r\n")
    # Mid request line, mid header name, and between the CR and LF of the blank line.
    cuts = [0, 9, request.index(b"User-Agent") + 4, len(request) - 1, len(request)]
    with connect(sandbox) as client:
        for low, high in itertools.pairwise(cuts):
            client.sendall(request[low:high])
            time.sleep(0.05)
            if high < len(request):
                assert sandbox.total_requests == 0  # nothing is answered from part of a head
        status, headers, body = read_response(client, bytearray())
    assert status == 200
    assert int(headers["content-length"]) == len(body) and body.startswith(b'{"linkAvailability"')
    assert sandbox.total_requests == 1
    assert sandbox.request_headers[-1][1]["User-Agent"] == "split-test"


def test_pipelined_requests_are_answered_in_order_after_their_latency() -> None:
    with ProviderSandbox(latency_s=0.05, clock=lambda: NOW) as sandbox:
        sandbox.add_hubspot_link("rep", weekday_slots(NOW, 5))
        sandbox.add_hubspot_link("team/intro", weekday_slots(NOW, 5))
        with connect(sandbox) as client:
            started = time.monotonic()
            client.sendall(
                get_request(PAGE.format(slug="rep"))
                + get_request("/nowhere")
                + get_request(PAGE.format(slug="team%2Fintro"))
            )
            pending = bytearray()
            answers = [read_response(client, pending) for _ in range(3)]
            elapsed = time.monotonic() - started
            assert pending == b""
        assert [status for status, _, _ in answers] == [200, 404, 200]
        assert answers[0][2].count(b'"userId"') == 1 and answers[2][2].count(b'"userId"') == 2
        assert elapsed >= 0.15  # one after the other, each after its own latency
        assert sandbox.request_log == [
            ("GET", PAGE.format(slug="rep")),
            ("GET", "/nowhere"),
            ("GET", PAGE.format(slug="team%2Fintro")),
        ]


def test_request_bodies_are_skipped_without_desynchronising_the_connection(sandbox: ProviderSandbox) -> None:
    with connect(sandbox) as client:
        pending = bytearray()
        client.sendall(b"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello")
        time.sleep(0.05)
        client.sendall(b" world" + get_request(PAGE.format(slug="rep")))
        assert read_response(client, pending)[0] == 405
        assert read_response(client, pending)[0] == 200
        chunked = b"PUT /anything HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        client.sendall(chunked + b"5\r\nhello\r\n6;ext=1\r\n world\r\n")
        time.sleep(0.05)
        client.sendall(b"0\r\nX-Trailer: t\r\n\r\n" + get_request("/nowhere"))
        assert read_response(client, pending)[0] == 405
        assert read_response(client, pending)[0] == 404
    assert [method for method, _ in sandbox.request_log] == ["POST", "GET", "PUT", "GET"]


def test_expect_continue_gets_an_interim_answer_before_the_body(sandbox: ProviderSandbox) -> None:
    with connect(sandbox) as client:
        client.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert client.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.sendall(b"{}")
        assert read_response(client, bytearray())[0] == 405


def test_other_methods_get_501_and_head_gets_no_body(sandbox: ProviderSandbox) -> None:
    with connect(sandbox) as client:
        pending = bytearray()
        client.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n" + get_request("/nowhere"))
        # Framed by Content-Length, a HEAD answer's body would be read as the next response here.
        while b"\r\n\r\n" not in pending:
            pending += client.recv(65536)
        head, _, rest = bytes(pending).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 501 ")
        pending[:] = rest
        assert read_response(client, pending)[0] == 404
    assert sandbox.request_log == [("GET", "/nowhere")]  # 501s never reach the providers


def test_http_1_0_and_connection_close_end_the_connection_after_the_answer(sandbox: ProviderSandbox) -> None:
    for request in (b"GET /nowhere HTTP/1.0\r\n\r\n", get_request("/nowhere", "Connection: close\r\n")):
        with connect(sandbox) as client:
            client.sendall(request)
            status, headers, _ = read_response(client, bytearray())
            assert (status, headers["connection"]) == (404, "close")
            assert closed_by_server(client)


@pytest.mark.parametrize(
    "garbage",
    [b"NONSENSE\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n"],
)
def test_malformed_requests_get_an_error_and_a_closed_connection(sandbox: ProviderSandbox, garbage: bytes) -> None:
    with connect(sandbox) as client:
        client.sendall(garbage)
        status, headers, _ = read_response(client, bytearray())
        assert status in (400, 505) and headers["connection"] == "close"
        assert closed_by_server(client)
    assert sandbox.total_requests == 0


def test_a_client_that_leaves_mid_wait_does_not_disturb_the_others() -> None:
    with ProviderSandbox(latency_s=0.3, clock=lambda: NOW) as sandbox:
        sandbox.add_hubspot_link("rep", weekday_slots(NOW, 5))
        sandbox.add_hubspot_link("stuck", weekday_slots(NOW, 5), fault=Fault(hang=True))
        for path in (PAGE.format(slug="rep"), PAGE.format(slug="stuck")):
            with connect(sandbox) as leaving:
                leaving.sendall(get_request(path))
                # Closes at once, with its request still waiting out the latency (or hung).
        half_closed = connect(sandbox)
        half_closed.sendall(get_request(PAGE.format(slug="rep")))
        half_closed.shutdown(socket.SHUT_WR)  # the answer is still owed to a client that stopped sending
        with requests.Session() as http:
            responses = [http.get(sandbox.base_url + PAGE.format(slug="rep"), timeout=TIMEOUT) for _ in range(2)]
        assert [r.status_code for r in responses] == [200, 200]
        with half_closed:
            assert read_response(half_closed, bytearray())[0] == 200
            assert closed_by_server(half_closed)
        assert sandbox.requests_for("rep") == 4 and sandbox.requests_for("stuck") == 1


def test_stop_closes_connections_that_wait_or_hang_at_once() -> None:
    sandbox = ProviderSandbox(latency_s=30, clock=lambda: NOW).start()
    sandbox.add_hubspot_link("rep", weekday_slots(NOW, 5))
    sandbox.add_hubspot_link("stuck", weekday_slots(NOW, 5), fault=Fault(hang=True))
    clients = [connect(sandbox) for _ in range(2)]
    try:
        for client, slug in zip(clients, ("rep", "stuck"), strict=True):
            client.sendall(get_request(PAGE.format(slug=slug)))
        deadline = time.monotonic() + TIMEOUT
        while sandbox.total_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        sandbox.stop()
        assert time.monotonic() - started < 5.0
        assert all(closed_by_server(client) for client in clients)
    finally:
        for client in clients:
            client.close()


def test_many_concurrent_connections_each_get_their_own_answer() -> None:
    with ProviderSandbox(latency_s=0.1, clock=lambda: NOW) as sandbox:
        slugs = [f"rep-{n}" if n % 2 else f"team/rep-{n}" for n in range(48)]
        for slug in slugs:
            sandbox.add_hubspot_link(slug, weekday_slots(NOW, 5))
        bodies: dict[str, bytes] = {}

        def fetch(slug: str) -> None:
            bodies[slug] = requests.get(
                sandbox.base_url + "/meetings-public/v3/book/availability-page", params={"slug": slug}, timeout=TIMEOUT
            ).content

        threads = [threading.Thread(target=fetch, args=(slug,)) for slug in slugs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(bodies) == sorted(slugs)
        assert all(sandbox.requests_for(slug) == 1 for slug in slugs)


@pytest.mark.parametrize("slug", ["rep", "team/intro-call"])
def test_cached_hubspot_pages_match_the_rendered_ones_byte_for_byte(slug: str) -> None:
    slots = weekday_slots(NOW, 40)
    pages: list[bytes] = []
    for cache in (False, True, True):  # the second cached fetch is served from the cache
        with ProviderSandbox(clock=lambda: NOW, cache_payloads=cache) as sandbox, requests.Session() as http:
            sandbox.add_hubspot_link("other/link" if "/" in slug else "other", slots)
            sandbox.add_hubspot_link(slug, slots)
            for offset in (0, 1):
                params = {"slug": "other/link" if "/" in slug else "other", "monthOffset": offset}
                http.get(
                    sandbox.base_url + "/meetings-public/v3/book/availability-page", params=params, timeout=TIMEOUT
                )
                params["slug"] = slug
                response = http.get(
                    sandbox.base_url + "/meetings-public/v3/book/availability-page", params=params, timeout=TIMEOUT
                )
                assert response.status_code == 200
                pages.append(response.content)
    assert pages[0:2] == pages[2:4] == pages[4:6]
    assert pages[0].count(b'"userId"') == (2 if "/" in slug else 1)


def test_head_parser_keeps_header_case_and_last_repeated_value() -> None:
    head = parse_head(
        b"GET //double/slash?q=1 HTTP/1.1\r\nHost: a\r\nX-Thing: one\r\nX-Thing: two\r\n"
        b"Folded: first\r\n  second\r\nAuthorization:  Bearer t \r\n\r\n"
    )
    assert head.target == "/double/slash?q=1"
    assert head.headers == {"Host": "a", "X-Thing": "two", "Folded": "first second", "Authorization": "Bearer t "}
    assert head.keep_alive and not head.chunked and head.content_length == 0
    with pytest.raises(BadRequest):
        parse_head(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")


def test_chunked_framing_waits_for_the_whole_body() -> None:
    body = b"4\r\nwiki\r\n0\r\n\r\nNEXT"
    assert chunked_end(body, 0) == len(body) - 4
    for cut in range(len(body) - 4):
        assert chunked_end(body[:cut], 0) is None
    with pytest.raises(BadRequest):
        chunked_end(b"zz\r\n", 0)


@pytest.mark.parametrize(
    "query",
    [
        *("", "a=1&b=2", "a=1&a=2", "flag", "x=&y", "&&a=%2F+b&", "slug=team%2Fintro&monthOffset=1", "a+b=c+d"),
        *("%zz=1", "a=1;b=2", "=v", "k=v=w", "tz=America%2FNew_York&caf%C3%A9=%E2%82%AC"),
    ],
)
def test_query_parser_agrees_with_parse_qs(query: str) -> None:
    assert parse_query(query) == parse_qs(query, keep_blank_values=True)
