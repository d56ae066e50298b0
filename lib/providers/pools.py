"""urllib3 connection pools for the providers' API calls, shared by every thread, without requests'
per-request machinery.

requests prepares each request from scratch: it re-parses and re-quotes the URL, merges header
dictionaries, checks a runtime Protocol (`SupportsRead`) on the body, looks for a .netrc and the CA
bundle on disk (four `stat` calls), builds a Response with its cookie jar. At a refresh a minute per
workspace that was the largest CPU cost of a run (bench/README.md, issue 12). Here each of those is
done once, with requests' own functions where its behaviour matters:

- the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else requests' certifi bundle) when the pools
  are made; certificates are always verified;
- the proxy of each origin (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY, read by requests' functions) on the
  first request to it; a proxy is used through requests' own HTTPAdapter.proxy_manager_for;
- the URL: a plain one is sent as given (api_url below), anything else is prepared by requests.

What is not carried over, on purpose: no cookie jar (a provider's cookie is not sent with the next
workspace's request), no .netrc credentials.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, urljoin, urlsplit

from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidProxyURL, InvalidSchema
from requests.models import PreparedRequest
from requests.utils import (
    DEFAULT_ACCEPT_ENCODING,
    DEFAULT_CA_BUNDLE_PATH,
    check_header_validity,
    extract_zipped_paths,
    get_environ_proxies,
    prepend_scheme_if_needed,
    requote_uri,
    select_proxy,
)
from urllib3 import PoolManager, ProxyManager
from urllib3.util import Retry, Timeout, parse_url
from urllib3.util.ssl_ import create_urllib3_context

from lib.providers.body import Answer, BodyLimit, read_body
from lib.providers.transport import USER_AGENT
from lib.providers.watchdog import WATCHDOG, WATCHED_POOL_CLASSES
from lib.providers.wire import WirePools, plain_target

# Keep-alive connections kept per host: every worker (at most 200, lib/config.py) and every helper
# thread (lib/providers/http.py) may hold one at once; a smaller pool would close the extra ones and
# log a warning for each.
CONNECTIONS_PER_HOST = 264
# Distinct hosts kept open: three providers, their regional API hosts, a few proxies' targets.
HOSTS_KEPT = 32
# requests' own policy: no retry inside urllib3 (lib/providers/retry.py decides), a failed read raised as is.
NO_RETRIES = Retry(0, read=False, redirect=False)
# The headers requests sends by default (requests.utils.default_headers), with our User-Agent.
BASE_HEADERS: Mapping[str, str] = {
    "User-Agent": USER_AGENT,
    "Accept-Encoding": DEFAULT_ACCEPT_ENCODING,
    "Accept": "*/*",
    "Connection": "keep-alive",
}

# A URL that requests' prepare_url leaves exactly as it is: lower-case ASCII host (not starting with a
# dot), a port without leading zeros, and a path of characters that need no quoting (RFC 3986 pchar
# without `%`). Dot segments are excluded separately (urllib3 would remove them).
_PLAIN_URL = re.compile(r"https?://[a-z0-9][a-z0-9.-]*(?::([1-9][0-9]{0,4}))?/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")
_MAX_PORT = 65535
# What quote_plus leaves as it is (letters, digits and "_.-~"): such a text is its own quoting.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
# Headers that are not carried to another host on a redirect (requests drops Authorization).
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


def api_url(url: str, params: Mapping[str, str] | None) -> str:
    """`url` with `params` as requests sends them (`PreparedRequest.prepare_url`: the same text).

    A plain URL (see _PLAIN_URL) gets the query appended directly, as requests would; any other URL
    (IDNA host, characters to quote, a query already there…) goes through requests itself, which may
    raise its InvalidURL or MissingSchema.
    """
    plain = _PLAIN_URL.fullmatch(url)
    if plain and "/." not in url and int(plain.group(1) or 0) <= _MAX_PORT and _all_text(params):
        query = _query(params) if params else ""
        return f"{url}?{query}" if query else url
    prepared = PreparedRequest()
    prepared.prepare_url(url, params)
    return prepared.url or ""


def _query(params: Mapping[str, str]) -> str:
    """urlencode(params): the same text, without quote_plus's work for the names and values that need
    no quoting (nearly all of them: dates, ids, "UTC")."""
    return "&".join(f"{_quoted(name)}={_quoted(value)}" for name, value in params.items())


def _quoted(text: str) -> str:
    return text if _UNRESERVED.fullmatch(text) else quote_plus(text)


def _all_text(params: Mapping[str, str] | None) -> bool:
    # requests drops a None value and sends a list as repeated keys: leave those to requests.
    return params is None or all(isinstance(value, str) for value in params.values())


def api_headers(headers: Mapping[str, str] | None, accept: str) -> dict[str, str]:
    """requests' default headers, the caller's and Accept, merged without regard to case as requests
    merges them; a value requests would refuse (a line break, leading space) is refused the same way."""
    merged = {name.lower(): (name, value) for name, value in BASE_HEADERS.items()}
    for name, value in (headers or {}).items():
        check_header_validity((name, value))
        merged[name.lower()] = (name, value)
    merged["accept"] = ("Accept", accept)
    return dict(merged.values())


def next_hop(current: str, location: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Where a redirect of an API call leads, resolved as requests resolves it (SessionRedirectMixin),
    and the headers for it: credentials are not carried to another host."""
    with contextlib.suppress(UnicodeError):  # http.client hands it over as Latin-1; requests reads UTF-8
        location = location.encode("latin-1").decode("utf-8")
    if location.startswith("//"):
        location = f"{urlsplit(current).scheme}:{location}"
    target = urlsplit(location)._replace(fragment="")
    hop = requote_uri(target.geturl()) if target.netloc else urljoin(current, requote_uri(target.geturl()))
    if urlsplit(hop).hostname != urlsplit(current).hostname:
        headers = {name: value for name, value in headers.items() if name.lower() not in _CREDENTIALS}
    return hop, headers


def ca_bundle() -> str:
    """The CA bundle requests would verify with: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or its own."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH


class ApiPools:
    """The connections of the API calls: lib/providers/wire.py's for a plain URL sent direct (nearly
    every call), a urllib3 PoolManager for any other direct URL, one more per proxy in use."""

    def __init__(self) -> None:
        bundle: str = extract_zipped_paths(ca_bundle())  # type: ignore[no-untyped-call]  # requests' helper, untyped
        self._tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        self._tls["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
        self._direct = PoolManager(HOSTS_KEPT, maxsize=CONNECTIONS_PER_HOST, block=False, **self._tls)
        self._direct.pool_classes_by_scheme = WATCHED_POOL_CLASSES
        self._wire = WirePools(_tls_context(bundle), per_origin=CONNECTIONS_PER_HOST)
        # Proxy managers with requests' handling of the proxy URL (credentials, SOCKS).
        self._proxies = HTTPAdapter(pool_connections=HOSTS_KEPT, pool_maxsize=CONNECTIONS_PER_HOST)
        self._routes: dict[tuple[str, str], PoolManager] = {}
        self._lock = threading.Lock()

    def get(
        self, url: str, headers: Mapping[str, str], *, connect_timeout: float, read_timeout: float, limit: BodyLimit
    ) -> Answer:
        """GET `url` and read its body under `limit`; a redirect is returned, not followed.

        Raises OSError (TimeoutError for a timeout), lib/providers/wire.py's errors, urllib3's errors
        as urllib3 raises them, or the limit's ProviderError (lib/providers/http.py words them)."""
        if not url.lower().startswith(("https://", "http://")):  # requests' own refusal (Session.get_adapter)
            raise InvalidSchema(f"No connection adapters were found for {url!r}")
        manager = self._manager(url)
        plain = plain_target(url) if manager is self._direct else None
        if plain is not None:
            origin, target = plain
            return self._wire.get(
                origin, target, headers, connect_timeout=connect_timeout, read_timeout=read_timeout, limit=limit
            )
        with WATCHDOG.bound(limit.read_by):  # http.client alone times each recv, not the answer
            raw = manager.urlopen(
                "GET",
                url,
                headers=headers,
                redirect=False,
                retries=NO_RETRIES,
                timeout=Timeout(connect=connect_timeout, read=read_timeout),
                preload_content=False,
                decode_content=True,
            )
            try:
                return Answer(raw.status, raw.headers, read_body(raw, raw.headers, limit))
            finally:
                raw.close()  # a no-op once the body was read whole: the connection is back in its pool
                raw.release_conn()

    def _manager(self, url: str) -> PoolManager:
        scheme, _, rest = url.partition("://")
        origin = (scheme.lower(), rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0])
        manager = self._routes.get(origin)
        if manager is None:
            with self._lock:
                manager = self._routes.get(origin)
                if manager is None:
                    manager = self._routes[origin] = self._route(url)
        return manager

    def _route(self, url: str) -> PoolManager:
        # As requests.Session.merge_environment_settings and HTTPAdapter.get_connection_with_tls_context do.
        proxy = select_proxy(url, get_environ_proxies(url, no_proxy=None))
        if not proxy:
            return self._direct
        proxy = prepend_scheme_if_needed(proxy, "http")  # type: ignore[no-untyped-call]  # requests' helper, untyped
        if not parse_url(proxy).host:
            raise InvalidProxyURL("Please check proxy URL. It is malformed and could be missing the host.")
        manager: PoolManager = self._proxies.proxy_manager_for(proxy, **self._tls)
        if type(manager) is ProxyManager:  # a SOCKS proxy's manager keeps its own connection classes
            manager.pool_classes_by_scheme = WATCHED_POOL_CLASSES
        return manager


def _tls_context(bundle: str) -> ssl.SSLContext:
    """urllib3's TLS settings, verifying against `bundle` with the host name checked."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if os.path.isdir(bundle):
        context.load_verify_locations(capath=bundle)
    else:
        context.load_verify_locations(cafile=bundle)
    context.check_hostname = True
    context.set_alpn_protocols(["http/1.1"])
    return context
