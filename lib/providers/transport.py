"""requests sessions for the providers: one that reads the proxy environment once per host (API
calls), and one for tenant URLs whose connections go only to the addresses the guard vetted.

The pinning happens where urllib3 opens the socket: the connection keeps the host *name* (so the
`Host` header, TLS SNI and the certificate check all use it) and connects to an address from the
one resolution the guard judged, never to a second lookup's answer (DNS rebinding).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.poolmanager import PoolManager
from urllib3.util import connection as urllib3_connection

from lib.providers.guard import TenantUrlPolicy, check_prepared_url, vetted_addresses
from lib.providers.watchdog import WatchedHTTPConnection, WatchedHTTPSConnection

if TYPE_CHECKING:
    from requests.sessions import _Settings

USER_AGENT = "availability-cron/1.0 (+calendar availability cache refresher)"
# A name with many addresses is tried on the first few only: each try may take the connect timeout.
MAX_ADDRESSES_TRIED = 2


class EnvironmentCachingSession(requests.Session):
    """A session that reads the proxy environment (HTTP(S)_PROXY, NO_PROXY, CA bundle variables) once
    per host instead of on every request.

    requests scans the whole of os.environ for every request it sends; at a refresh a minute per
    workspace that scan was a third of the run's CPU. Sessions live for one run (one per worker
    thread), so a changed environment still takes effect on the next run.
    """

    def __init__(self) -> None:
        super().__init__()
        self.headers["User-Agent"] = USER_AGENT
        self._environment: dict[tuple[str, bool | None], _Settings] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: bool | None, verify: Any, cert: Any
    ) -> _Settings:
        if proxies or verify is not None or cert is not None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        text = url.decode() if isinstance(url, bytes) else (url or "")
        parts = urlsplit(text)
        key = (f"{parts.scheme}://{parts.netloc}", stream)
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = settings
        copied = settings.copy()
        copied["proxies"] = dict(settings["proxies"])  # requests may adapt it on a redirect
        return copied


class TenantSession(EnvironmentCachingSession):
    """A session for URLs that tenants typed: every request goes direct (never through a proxy, which
    would do its own lookup) over a PinnedAddressAdapter."""

    def __init__(self, policy: TenantUrlPolicy) -> None:
        super().__init__()
        adapter = PinnedAddressAdapter(policy)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: bool | None, verify: Any, cert: Any
    ) -> _Settings:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["proxies"] = {}
        return settings


class PinnedAddressAdapter(HTTPAdapter):
    """An adapter that checks the prepared request's URL and connects only to vetted addresses."""

    def __init__(self, policy: TenantUrlPolicy) -> None:
        self._policy = policy  # read by init_poolmanager, which HTTPAdapter.__init__ calls
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **kwargs: Any) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _PinningPoolManager(self._policy, num_pools=connections, maxsize=maxsize, block=block)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        # The very URL this request is sent to; the host in it is what the pool will connect for.
        check_prepared_url(request.url or "", self._policy)
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None)


class _PinningPoolManager(PoolManager):
    """Hands out pools whose connections resolve through the guard."""

    def __init__(self, policy: TenantUrlPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    def _new_pool(
        self, scheme: str, host: str, port: int, request_context: dict[str, Any] | None = None
    ) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.ConnectionCls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
        pool.conn_kw["policy"] = self._policy
        return pool


class _PinnedHTTPConnection(WatchedHTTPConnection):
    def __init__(self, *args: Any, policy: TenantUrlPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy = policy

    def _new_conn(self) -> socket.socket:
        return open_vetted_socket(self, self._policy)


class _PinnedHTTPSConnection(WatchedHTTPSConnection):
    def __init__(self, *args: Any, policy: TenantUrlPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._policy = policy

    def _new_conn(self) -> socket.socket:
        # HTTPSConnection.connect wraps this socket in TLS for self.host: SNI and the certificate
        # check use the name, while the socket itself goes to the vetted address.
        return open_vetted_socket(self, self._policy)


def open_vetted_socket(conn: HTTPConnection, policy: TenantUrlPolicy) -> socket.socket:
    """A TCP connection to one of the addresses the guard vetted for `conn`'s host, raising the
    errors urllib3 raises for a failed lookup or connection (requests words them as usual)."""
    try:
        # _dns_host is the very name urllib3 would hand the resolver (the host keeps a trailing dot
        # there, which `host` drops for SNI and the certificate check).
        addresses = vetted_addresses(conn._dns_host, conn.port, policy)
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    failure: OSError | None = None
    for address in addresses[:MAX_ADDRESSES_TRIED]:
        try:
            return urllib3_connection.create_connection(
                (address, conn.port),
                conn.timeout,
                source_address=conn.source_address,
                socket_options=conn.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out") from exc
        except OSError as exc:
            failure = exc
    raise NewConnectionError(conn, f"Failed to establish a new connection: {failure}") from failure
