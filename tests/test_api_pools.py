"""The providers' API calls over the shared urllib3 pools (lib/providers/pools.py, issue 12) against real
loopback servers: the URL sent is the one requests would send, the proxy environment is honoured,
redirects are followed as requests followed them, connections are reused, and a body that stalls
is a timeout of its provider, not an unexpected error."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from requests.models import PreparedRequest

from lib.deadline import Deadline
from lib.errors import ProviderError, ProviderTimeout
from lib.providers.http import MAX_API_REDIRECTS, HttpClient
from lib.providers.pools import api_url
from lib.providers.retry import MAX_RETRIES
from tests.local_http import LocalHttpServer, QuietHandler

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

# --- the URL: the same text as requests' PreparedRequest.prepare_url ---------------------------------

HOSTS = st.text(alphabet="abcXYZ019.-_é*[]", min_size=0, max_size=12)
PORTS = st.sampled_from(["", ":80", ":443", ":8080", ":0", ":080", ":65535", ":65536", ":99999", ":x"])
PATHS = st.text(alphabet="aZ09/.-_~%#?:@!$&'()*+,;=[] \\é\x00\n", max_size=24)
PARAMS = st.one_of(
    st.none(),
    st.dictionaries(st.text(alphabet="ab &=é%", max_size=4), st.text(alphabet="aZ09 &=+/:é%-._~", max_size=8)),
)


def requests_url(url: str, params: dict[str, str] | None) -> str | type[BaseException]:
    prepared = PreparedRequest()
    try:
        prepared.prepare_url(url, params)
    except (requests.RequestException, ValueError) as exc:
        return type(exc)
    return prepared.url or ""


def our_url(url: str, params: dict[str, str] | None) -> str | type[BaseException]:
    try:
        return api_url(url, params)
    except (requests.RequestException, ValueError) as exc:
        return type(exc)


@settings(max_examples=600, deadline=None, database=None)
@given(st.sampled_from(["http", "https", "HTTPS", "ftp"]), HOSTS, PORTS, PATHS, PARAMS)
@example("https", "calendly.com", "", "/api/booking/event_types/3f1c-9a/calendar/range", {"timezone": "Europe/Paris"})
@example("https", "api.hubapi.com", "", "/meetings-public/v3/book/availability-page", {"slug": "jörg b"})
@example("http", "127.0.0.1", ":8080", "/calendars/abc/free-slots", {"startDate": "1", "endDate": "2"})
@example("https", "calendly.com", "", "/a/../b", None)
@example("https", "Calendly.com", "", "/x", None)
@example("https", "calendly.com", "", "", {"a": "b"})
def test_the_url_sent_is_the_one_requests_prepares(
    scheme: str, host: str, port: str, path: str, params: dict[str, str] | None
) -> None:
    url = f"{scheme}://{host}{port}{path}"
    assert our_url(url, params) == requests_url(url, params)


# --- the wire: proxies, redirects, connection reuse, a stalled body ------------------------------------


class Recorder:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 answering JSON, recording each request line and the
    client port it came from; `/redirect/N` redirects N more times before answering, `/loop` forever."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.client_ports: set[int] = set()
        recorder = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                recorder.lines.append(self.requestline)
                recorder.client_ports.add(self.client_address[1])
                where = self.path.rsplit("/", 2)
                if self.path.endswith("/loop") or (len(where) == 3 and where[1] == "redirect" and where[2] != "0"):
                    target = "/loop" if self.path.endswith("/loop") else f"/redirect/{int(where[2]) - 1}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"path": self.path, "host": self.headers.get("Host")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = LocalHttpServer(Handler)
        self.base_url = self.server.base_url


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    try:
        yield server
    finally:
        server.server.stop()


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def get(url: str, **params: str) -> object:
    return HttpClient().get_json(url, params=params or None, deadline=Deadline.after(10), cap_s=5, what="API")


def test_an_api_call_goes_through_the_proxy_the_environment_names(
    recorder: Recorder, no_proxy_environment: pytest.MonkeyPatch
) -> None:
    no_proxy_environment.setenv("HTTP_PROXY", recorder.base_url)
    # The "provider" has a name nobody resolves: only the proxy is connected to, and it gets the absolute URL.
    answer = get("http://api.provider.test/v1/slots", q="a b")
    assert answer == {"path": "http://api.provider.test/v1/slots?q=a+b", "host": "api.provider.test"}
    assert recorder.lines == ["GET http://api.provider.test/v1/slots?q=a+b HTTP/1.1"]


def test_no_proxy_sends_the_api_call_direct(recorder: Recorder, no_proxy_environment: pytest.MonkeyPatch) -> None:
    no_proxy_environment.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing answers there
    no_proxy_environment.setenv("NO_PROXY", "127.0.0.1")
    assert get(f"{recorder.base_url}/v1/slots") == {"path": "/v1/slots", "host": f"127.0.0.1:{recorder.server.port}"}


def test_connections_are_kept_and_reused_between_calls(recorder: Recorder, no_proxy_environment: object) -> None:
    client = HttpClient()
    for _ in range(5):
        client.get_json(f"{recorder.base_url}/x", deadline=Deadline.after(10), cap_s=5, what="API")
    assert len(recorder.lines) == 5
    assert len(recorder.client_ports) == 1  # one TCP connection for the five requests


def test_redirects_of_api_calls_are_followed_and_limited_as_requests_did(
    recorder: Recorder, no_proxy_environment: object
) -> None:
    host = f"127.0.0.1:{recorder.server.port}"
    assert get(f"{recorder.base_url}/redirect/3") == {"path": "/redirect/0", "host": host}
    assert len(recorder.lines) == 4
    with pytest.raises(ProviderError, match=rf"^API: request failed \(Exceeded {MAX_API_REDIRECTS} redirects\.\)$"):
        get(f"{recorder.base_url}/loop")
    # requests' count: the first request and 30 redirects; a failed request is asked again (retry.py), as it was
    assert len(recorder.lines) == 4 + (MAX_RETRIES + 1) * (MAX_API_REDIRECTS + 1)


@pytest.fixture
def stalling_server() -> Iterator[str]:
    """Sends its headers and 10 of the 1,000 bytes it announces, then nothing for 30 s."""
    stop = threading.Event()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"x": "aaa')
            self.wfile.flush()
            stop.wait(30)

    server = LocalHttpServer(Handler)
    try:
        yield server.base_url
    finally:
        stop.set()
        server.stop()


def test_a_body_that_stalls_is_a_timeout_of_its_provider(stalling_server: str, no_proxy_environment: object) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderTimeout, match=r"^Stall timed out after 1\.0 s$"):
        HttpClient().get_json(f"{stalling_server}/x", deadline=Deadline.after(30), cap_s=1, what="Stall")
    assert time.monotonic() - started < 6  # the 1 s read timeout, not the server's 30 s


# --- lastError: worded exactly as when requests raised the errors ---------------------------------------


@pytest.fixture
def resetting_server() -> Iterator[int]:
    """Accepts, reads the request and closes with a TCP reset."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                continue
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.recv(65536)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The texts requests' errors produced before the API calls left it (measured on commit dda6777).
WORDING = [
    ("https://127.0.0.1:{plain}/x", {}, "P: connection failed (TLS error: WRONG_VERSION_NUMBER)"),
    ("http://127.0.0.1:{reset}/x", {}, "P: connection failed (connection reset)"),
    (
        "https://exa mple.com/x",
        {},
        "P: request failed (Failed to parse: Host 'exa mple.com' contains invalid character ' ')",
    ),
    (
        "calendly.com/x",
        {},
        "P: request failed (Invalid URL 'calendly.com/x': No scheme supplied. Perhaps you meant https://calendly.com/x?)",
    ),
    ("http://127.0.0.1:99999/x", {}, "P: request failed (Failed to parse: http://127.0.0.1:99999/x)"),
    ("ftp://127.0.0.1/x", {}, "P: request failed (No connection adapters were found for 'ftp://127.0.0.1/x')"),
    (
        "http://127.0.0.1:{plain}/x",
        {"Referer": "a\r\nX: y"},
        "P: request failed (Invalid leading whitespace, reserved character(s), or return character(s) in header value: "
        "'a\\r\\nX: y')",
    ),
    ("http://api.provider.test/x", {"proxy": "http://127.0.0.1:{closed}"}, "P: connection failed (connection refused)"),
    (
        "http://api.provider.test/x",
        {"proxy": "http://:8080"},
        "P: request failed (Please check proxy URL. It is malformed and could be missing the host.)",
    ),
]


@pytest.mark.parametrize(("url", "extra", "expected"), WORDING)
def test_failures_are_worded_as_they_were_with_requests(
    url: str,
    extra: dict[str, str],
    expected: str,
    recorder: Recorder,
    resetting_server: int,
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    ports = {"plain": recorder.server.port, "reset": resetting_server, "closed": closed_port()}
    headers = dict(extra)
    if proxy := headers.pop("proxy", None):
        no_proxy_environment.setenv("HTTP_PROXY", proxy.format(**ports))
    with pytest.raises(ProviderError) as failure:
        HttpClient().get_json(
            url.format(**ports), headers=headers or None, deadline=Deadline.after(20), cap_s=2, what="P"
        )
    assert str(failure.value) == expected
