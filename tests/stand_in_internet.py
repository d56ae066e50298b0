"""A loopback stand-in for the internet, for the SSRF tests: a hostile DNS, a route that delivers
connections to one public address to a local server, and a canary that counts connections.

Unlike an HTTP proxy, the route leaves the client's own resolution and connection in play: the
client resolves names (through `HostileDns`) and opens its sockets itself, exactly as in
production, so a parser or resolver differential really ends at the canary. No packet leaves the
machine: a connection to any other non-loopback address is refused and recorded as `escaped`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.faults_support import RawServer, read_request

# A public address (is_global) whose connections the route delivers to the stand-in server.
PUBLIC_HOST = "93.184.215.14"
PAGE = "/widget/bookings/sales"

Answer = str | Callable[[], str]


class Canary:
    """Counts every connection to a loopback port, IPv4 (127.0.0.1) and IPv6 (::1)."""

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


class Internet:
    """The server behind PUBLIC_HOST: `/r/<n>/…` answers 302 to target n, `/ok…` a 200 page naming
    the Host it was asked for; any other request is answered with a 302 to the very URL it asked for
    (a rebinding name, asked again, must not reach loopback the second time either)."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.requests: list[str] = []
        self.server = RawServer(self._handle)

    def redirect_url(self, target: str) -> str:
        self.targets.append(target)
        return f"http://{PUBLIC_HOST}/r/{len(self.targets) - 1}{PAGE}"

    def _handle(self, connection: socket.socket) -> None:
        head = read_request(connection).decode("latin-1")
        request_line = head.split("\r\n", 1)[0]
        self.requests.append(request_line)
        target = request_line.split(" ")[1] if request_line.count(" ") >= 2 else "/"
        match = re.match(r"^/r/(\d+)/", target)
        found = re.search(r"\r\nHost: *([^\r\n]*)", head, re.IGNORECASE)
        host = found.group(1) if found else PUBLIC_HOST
        if target.startswith("/ok"):
            page = f"public page for {host}".encode()
            head_bytes = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(page)
            connection.sendall(head_bytes + page)
            return
        location = self.targets[int(match.group(1))] if match else f"http://{host}{target}"
        connection.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: "
            + location.encode("utf-8")
            + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )


class HostileDns:
    """Answers names as an attacker's DNS would (`names`: lowercase ASCII name, without a trailing dot,
    to an address or to a function giving the next answer); IP literals and localhost resolve as
    before; any other name does not resolve. `asked` counts the lookups of each name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: dict[str, Answer] = {}
        self.asked: dict[str, int] = {}
        self._lock = threading.Lock()
        resolve = socket.getaddrinfo

        def hostile(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = _wire_name(host).lower().rstrip(".")
            answer = self.names.get(name)
            if answer is None:
                return resolve(host, port, *args, **kwargs)
            with self._lock:
                self.asked[name] = self.asked.get(name, 0) + 1
            address = answer() if callable(answer) else answer
            return resolve(address, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", hostile)

    def rebinding(self, name: str, first: str, then: str) -> None:
        """`name` answers `first` to the first lookup and `then` to every later one."""
        answers = iter([first])
        self.names[name] = lambda: next(answers, then)


def _wire_name(host: Any) -> str:
    """The name as the socket module puts it on the wire: a str is encoded with Python's `idna` codec
    (IDNA 2003: ß becomes ss), as socket.getaddrinfo does before asking the system resolver."""
    if isinstance(host, bytes):
        return host.decode("ascii", "replace")
    text = str(host)
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return text


class Route:
    """Delivers connections to the public `addresses` (any port) to the loopback `port`; refuses and
    records connections to any other non-loopback address, so nothing leaves the machine."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, port: int, addresses: frozenset[str] = frozenset({PUBLIC_HOST})
    ) -> None:
        self.escaped: list[str] = []
        self.delivered = 0
        connect = socket.socket.connect
        route = self

        def routed(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
                host = str(address[0])
                if host in addresses:
                    route.delivered += 1
                    return connect(sock, ("127.0.0.1", port))
                if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
                    route.escaped.append(f"{host}:{address[1]}")
                    raise ConnectionRefusedError(f"the stand-in internet has no route to {host}")
            return connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", routed)


def stand_in_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Internet, Canary, HostileDns, Route]]:
    """Production's guard (no private network), no proxy, and the stand-ins above; for fixtures."""
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORK", "false")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    internet, canary = Internet(), Canary()
    dns = HostileDns(monkeypatch)
    route = Route(monkeypatch, internet.server.port)
    try:
        yield internet, canary, dns, route
    finally:
        internet.server.close()
        canary.close()
