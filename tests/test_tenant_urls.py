"""Tenant-supplied URLs: GoHighLevel booking pages resolved through __NUXT_DATA__, and the redirect
layer (lib/providers/tenant.py) that applies the SSRF guard to every hop."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from lib.deadline import Deadline
from lib.errors import ProviderError
from lib.providers import tenant
from lib.providers.ghl import extract_nuxt_calendar_id
from lib.providers.guard import BlockedUrlError, TenantUrlPolicy
from lib.providers.http import HttpClient
from lib.providers.tenant import get_tenant_page
from sandbox.providers import weekday_slots
from tests.helpers import run_cron
from tests.local_http import redirector

GHL_ID = "xqwSvxDlit1P0lTnTrfx"


def test_a_slug_booking_link_is_resolved_from_its_page(client, seed, sandbox):
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(datetime.now(UTC), 31))
    sandbox.add_ghl_booking_page("/widget/bookings/growth-team", GHL_ID)
    seed.client("c1")
    page_url = f"{sandbox.base_url}/widget/bookings/growth-team"
    seed.link("c1", page_url, link_type="ghl")
    report = run_cron(client)
    assert report["refreshed"] == 1
    row = seed.row("c1")
    assert row.provider_meta == {"ghlCalendarId": GHL_ID, "resolvedUrl": page_url}
    assert len(row.slots) > 100
    # The id is cached: the next run asks free-slots directly, without the page.
    page_requests = sandbox.requests_for("/widget/bookings/growth-team")
    run_cron(client)
    assert sandbox.requests_for("/widget/bookings/growth-team") == page_requests


def test_a_page_without_a_calendar_id_is_a_clear_failure(client, seed, sandbox):
    seed.client("c1")
    seed.link("c1", f"{sandbox.base_url}/widget/bookings/no-such-page", link_type="ghl")
    report = run_cron(client)
    assert report["failed"] == 1
    assert "GoHighLevel booking page" in seed.row("c1").last_error


def test_nuxt_extraction():
    page = f'<html><script type="application/json" id="__NUXT_DATA__">[{{"a":1,"b":2}},"x",{{"{GHL_ID}":3}}]</script>'
    assert extract_nuxt_calendar_id(page) == GHL_ID
    assert extract_nuxt_calendar_id('<script id="__NUXT_DATA__">[{"short":1}]</script>') is None
    assert extract_nuxt_calendar_id('<script id="__NUXT_DATA__">{not json</script>') is None
    assert extract_nuxt_calendar_id("<html></html>") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/widget/bookings/x",
        "http://10.1.2.3/widget/bookings/x",
        "http://169.254.169.254/computeMetadata/v1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::1]/widget/bookings/x",
        "http://localhost:8080/",
        "http://192.168.0.10/",
        "file:///etc/passwd",
        "gopher://example.com/",
    ],
)
def test_internal_and_non_http_urls_are_blocked(url):
    with pytest.raises(BlockedUrlError, match=r"^Blocked URL: "):
        get_tenant_page(HttpClient(), url, deadline=Deadline.after(5), cap_s=5, what="page", allow_private=False)


def test_a_private_booking_page_is_refused_without_a_request(client, seed, monkeypatch, canary):
    monkeypatch.setenv("ALLOW_PRIVATE_NETWORK", "false")
    seed.client("c1")
    seed.link("c1", f"{canary.base_url}/widget/bookings/sales", link_type="ghl")
    report = run_cron(client)
    assert report["failed"] == 1
    assert "Blocked URL" in seed.row("c1").last_error
    assert canary.hits == []


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("gopher://127.0.0.1:1/_GET", "scheme 'gopher' is not allowed"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal is the metadata server"),
        ("//169.254.169.254/latest/meta-data/", "non-public address (169.254.169.254)"),
    ],
)
def test_every_redirect_hop_is_checked(monkeypatch, target, error):
    # The first hop is a loopback server, so the run allows private networks, which keeps only the
    # scheme check; the second hop is checked again. With private networks off, the same is shown
    # against a public first hop in tests/test_faults_ssrf*.py.
    checked: list[tuple[str, bool]] = []
    real_check = tenant.check_prepared_url

    def recording_check(url: str, policy: TenantUrlPolicy) -> None:
        checked.append((url, policy.allow_private))
        real_check(url, TenantUrlPolicy(allow_private=len(checked) == 1))

    monkeypatch.setattr(tenant, "check_prepared_url", recording_check)
    server = redirector(target)
    start = f"{server.base_url}/book"
    try:
        with pytest.raises(BlockedUrlError, match=re.escape(error)):
            get_tenant_page(HttpClient(), start, deadline=Deadline.after(5), cap_s=5, what="page", allow_private=True)
    finally:
        server.stop()
    assert len(checked) == 2
    assert checked[0][0] == start


def test_a_redirect_loop_ends_after_five_hops():
    server = redirector("/again")
    url = f"{server.base_url}/x"
    try:
        with pytest.raises(ProviderError, match="more than 5 redirects"):
            get_tenant_page(HttpClient(), url, deadline=Deadline.after(5), cap_s=5, what="page", allow_private=True)
    finally:
        server.stop()
