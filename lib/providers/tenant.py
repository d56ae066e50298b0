"""Pages at URLs that tenants typed (GoHighLevel white-label and `/widget/bookings/` pages): redirects
are followed here, one hop at a time, and every hop is judged by the guard before it is sent."""

from __future__ import annotations

import contextlib
from urllib.parse import urljoin, urlsplit

import requests

from lib.deadline import Deadline
from lib.errors import ProviderError
from lib.providers.guard import BlockedUrlError, TenantUrlPolicy, check_host, check_prepared_url
from lib.providers.http import REDIRECT_STATUSES, HttpClient, Response

MAX_REDIRECTS = 5


def get_tenant_page(
    http: HttpClient, url: str, *, deadline: Deadline, cap_s: float, what: str, allow_private: bool
) -> Response:
    """GET a tenant's page, following up to MAX_REDIRECTS redirects by hand.

    Each hop is prepared as requests will send it and refused here when its scheme or host is not
    allowed (a clear `Blocked URL: …` before any connection); the transport then checks the URL it
    really sends and connects only to addresses the guard vetted (TenantSession).
    """
    policy = TenantUrlPolicy(allow_private=allow_private)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_prepared_url(prepared_url(current), policy)
        response = http.get(current, deadline=deadline, cap_s=cap_s, what=what, accept="text/html", tenant=policy)
        location = redirect_target(response)
        if location is None:
            return response
        current = urljoin(response.url, location)
    raise ProviderError(f"{what}: more than {MAX_REDIRECTS} redirects")


def prepared_url(url: str) -> str:
    """`url` as requests will send it (IDNA host, percent-encoded path), or BlockedUrlError when
    requests cannot parse it. The text of the URL stays out of the message: it may hold a password."""
    try:
        return requests.Request("GET", url).prepare().url or ""
    except (requests.RequestException, ValueError) as exc:
        with contextlib.suppress(ValueError):  # name the host when it is what cannot be parsed
            check_host(urlsplit(url).hostname or "", TenantUrlPolicy(allow_private=True))
        raise BlockedUrlError(f"Blocked URL: the URL cannot be parsed ({type(exc).__name__})") from exc


def redirect_target(response: Response) -> str | None:
    """The Location of a redirect, read as UTF-8 when its bytes are (http.client hands them over as
    Latin-1), or None when `response` is not a redirect."""
    location = response.headers.get("Location")
    if response.status not in REDIRECT_STATUSES or not location:
        return None
    try:
        return location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return location
