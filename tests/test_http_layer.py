"""The shared HTTP layer against real loopback servers: retries, 429 handling, size and time caps."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from lib.deadline import Deadline
from lib.errors import ProviderError, ProviderRateLimited, ProviderResponseError, ProviderTimeout
from lib.providers.http import HttpClient
from sandbox.providers import Fault, ProviderSandbox, weekday_slots
from tests.helpers import run_cron

HUBSPOT_PATH = "/meetings-public/v3/book/availability-page"


def get_json(sandbox: ProviderSandbox, slug: str, *, budget_s: float = 20, client: HttpClient | None = None):
    return (client or HttpClient()).get_json(
        f"{sandbox.base_url}{HUBSPOT_PATH}",
        params={"slug": slug, "monthOffset": "0", "timezone": "UTC"},
        deadline=Deadline.after(budget_s),
        cap_s=12,
        what="HubSpot",
    )


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_server_errors_are_retried(sandbox, status):
    sandbox.add_hubspot_link("flaky", weekday_slots(datetime.now(UTC), 31), fault=Fault(status=status, times=2))
    assert "linkAvailability" in get_json(sandbox, "flaky")
    assert sandbox.requests_for("flaky") == 3


def test_retries_stop_after_two(sandbox):
    sandbox.add_hubspot_link("down", [], fault=Fault(status=503))
    with pytest.raises(ProviderError, match="HTTP 503"):
        get_json(sandbox, "down")
    assert sandbox.requests_for("down") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
def test_other_errors_are_not_retried(sandbox, status):
    sandbox.add_hubspot_link("bad", [], fault=Fault(status=status))
    with pytest.raises(ProviderError, match=f"HTTP {status}"):
        get_json(sandbox, "bad")
    assert sandbox.requests_for("bad") == 1


def test_a_short_retry_after_on_429_is_waited_out(sandbox):
    sandbox.add_hubspot_link("busy", [], fault=Fault(status=429, headers=(("Retry-After", "1"),), times=1))
    started = time.monotonic()
    get_json(sandbox, "busy")
    assert 0.9 <= time.monotonic() - started < 3
    assert sandbox.requests_for("busy") == 2


def test_calendly_style_rate_limit_reset_is_understood(sandbox):
    sandbox.add_hubspot_link("reset", [], fault=Fault(status=429, headers=(("X-RateLimit-Reset", "1"),), times=1))
    get_json(sandbox, "reset")
    assert sandbox.requests_for("reset") == 2


def test_a_long_retry_after_fails_at_once_as_rate_limited(sandbox):
    sandbox.add_hubspot_link("limited", [], fault=Fault(status=429, headers=(("Retry-After", "120"),)))
    started = time.monotonic()
    with pytest.raises(ProviderRateLimited, match="rate limited \\(retry after 120 s\\)"):
        get_json(sandbox, "limited")
    assert time.monotonic() - started < 5  # not the 120 s asked for
    assert sandbox.requests_for("limited") == 1


def test_a_wait_that_does_not_fit_the_budget_is_not_taken(sandbox):
    sandbox.add_hubspot_link("late", [], fault=Fault(status=503, headers=(("Retry-After", "3"),)))
    with pytest.raises(ProviderError, match="HTTP 503"):
        get_json(sandbox, "late", budget_s=2.5)
    assert sandbox.requests_for("late") == 1


def test_a_body_over_the_size_cap_is_refused(sandbox):
    sandbox.add_hubspot_link("huge", [], fault=Fault(body=b"[" + b"1," * 400_000 + b"1]"))
    with pytest.raises(ProviderResponseError, match=r"limit|more than"):
        get_json(sandbox, "huge", client=HttpClient(max_bytes=100_000))


@pytest.fixture
def dripping_server() -> Iterator[str]:
    """Answers with headers at once, then one body byte every 0.3 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
                try:
                    while not stop.wait(0.3):
                        connection.sendall(b" ")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def test_a_server_dripping_its_body_cannot_hold_the_worker_past_its_timeout(dripping_server):
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        HttpClient().get_json(f"{dripping_server}/x", deadline=Deadline.after(30), cap_s=2, what="Drip")
    assert time.monotonic() - started < 6  # the 2 s cap, not the 30 s deadline nor the body's 1000 s


def test_connection_refused_is_retried_then_reported(sandbox):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ProviderError, match=r"^Nowhere: connection failed \(connection refused\)$"):
        HttpClient().get_json(f"http://127.0.0.1:{port}/x", deadline=Deadline.after(10), cap_s=2, what="Nowhere")


def test_a_host_name_that_does_not_resolve_is_said_in_words():
    # No lookup leaves the machine: the tests' resolver knows no names but localhost.
    with pytest.raises(ProviderError, match=r"^Nowhere: connection failed \(the host name does not resolve\)$"):
        HttpClient().get_json("http://calendar.example/x", deadline=Deadline.after(10), cap_s=2, what="Nowhere")


def test_a_run_with_a_rate_limited_provider_fails_only_that_workspace(client, seed, sandbox):
    sandbox.add_hubspot_link("limited", [], fault=Fault(status=429, headers=(("Retry-After", "120"),)))
    sandbox.add_hubspot_link("fine", weekday_slots(datetime.now(UTC), 31))
    for client_id, slug in (("c1", "limited"), ("c2", "fine")):
        seed.client(client_id)
        seed.link(client_id, f"https://meetings.hubspot.com/{slug}")
    report = run_cron(client)
    assert (report["refreshed"], report["failed"]) == (1, 1)
    assert "rate limited" in seed.row("c1").last_error


def test_a_header_that_is_not_ascii_is_a_provider_error_not_an_unexpected_one(sandbox):
    # The providers build their headers in ASCII (lib/providers/weburl.py); this is the last line.
    with pytest.raises(ProviderError, match=r"^HubSpot: request failed \(a header is not ASCII: UnicodeEncodeError\)$"):
        HttpClient().get_json(
            f"{sandbox.base_url}{HUBSPOT_PATH}",
            params={"slug": "x"},
            deadline=Deadline.after(10),
            cap_s=5,
            what="HubSpot",
            headers={"Referer": "https://例え.テスト/meetings/x"},
        )
