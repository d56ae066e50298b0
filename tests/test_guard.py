"""The tenant-URL guard on its own (lib/providers/guard.py): which prepared URLs, host names and
resolved addresses it lets through, with and without private networks."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from lib.providers.guard import (
    BlockedUrlError,
    TenantUrlPolicy,
    check_prepared_url,
    ip_literal,
    is_public_address,
    vetted_addresses,
)
from lib.providers.tenant import prepared_url
from tests.stand_in_internet import HostileDns

PUBLIC = TenantUrlPolicy(allow_private=False)
PRIVATE_OK = TenantUrlPolicy(allow_private=True)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",  # shared address space (carrier NAT)
        "0.0.0.0",
        "224.0.0.1",  # multicast: Python calls it global
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fec0::1",  # site-local: Python calls it global
        "ff02::1",  # multicast: Python calls it global
        "::ffff:127.0.0.1",
        "::127.0.0.1",  # IPv4-compatible: Python calls it global
        "2002:7f00:1::",  # 6to4 of 127.0.0.1: Python calls it global
        "2002:a00:1::",  # 6to4 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1: Python calls it global
        "64:ff9b:1::a00:1",
        "2001::1",  # Teredo
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.215.14", "2002:5db8:d70e::"]
)
def test_public_addresses_pass(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("ftp://example.com/", "scheme 'ftp' is not allowed"),
        ("http:///path-only", "no host"),
        ("http://127.0.0.1/", "non-public address (127.0.0.1)"),
        ("http://[::ffff:10.0.0.1]/", "non-public address (::ffff:a00:1)"),
        ("http://metadata.google.internal./x", "metadata.google.internal is the metadata server"),
        ("http://METADATA/x", "metadata is the metadata server"),
        ("http://localhost./", "localhost is a loopback name"),
        ("http://app.localhost/", "app.localhost is a loopback name"),
        ("http://under_score.example/", "the host name 'under_score.example' is not valid"),
        ("http://a..b/", "the host name 'a..b' is not valid"),
    ],
)
def test_prepared_urls_that_are_refused_and_why(url: str, error: str) -> None:
    with pytest.raises(BlockedUrlError, match=f"^Blocked URL: .*{error.replace('(', '.').replace(')', '.')}"):
        check_prepared_url(url, PUBLIC)


@pytest.mark.parametrize(
    "url",
    ["https://booking.example.com/widget/bookings/x", "http://93.184.215.14:8080/", "HTTPS://XN--BCHER-KVA.EXAMPLE./"],
)
def test_public_urls_pass_the_syntax_and_literal_checks(url: str) -> None:
    check_prepared_url(url, PUBLIC)


def test_private_networks_allowed_keep_the_scheme_and_syntax_checks() -> None:
    check_prepared_url("http://127.0.0.1:8080/", PRIVATE_OK)
    check_prepared_url("http://localhost/", PRIVATE_OK)
    with pytest.raises(BlockedUrlError, match="scheme 'gopher'"):
        check_prepared_url("gopher://127.0.0.1/", PRIVATE_OK)
    with pytest.raises(BlockedUrlError, match="is not valid"):
        check_prepared_url("http://evil\x00.example/", PRIVATE_OK)


def test_the_guard_reads_the_host_requests_will_connect_to() -> None:
    # urllib reads the raw text's host as 93.184.215.14; requests sends the request to 127.0.0.1.
    raw = "http://127.0.0.1:8080\\@93.184.215.14/widget/bookings/x"
    with pytest.raises(BlockedUrlError, match=r"127\.0\.0\.1"):
        check_prepared_url(prepared_url(raw), PUBLIC)
    # requests decodes a percent-encoded host; so does the guard, because it reads the prepared URL.
    with pytest.raises(BlockedUrlError, match=r"127\.0\.0\.1"):
        check_prepared_url(prepared_url("http://127.0.0.%31/"), PUBLIC)


def test_numeric_spellings_are_names_to_the_literal_check_and_loopback_to_the_resolver() -> None:
    assert ip_literal("2130706433") is None and ip_literal("0x7f.1") is None
    assert ip_literal("127.0.0.1.") == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(BlockedUrlError, match=r"non-public address \(127\.0\.0\.1\)"):
        vetted_addresses("2130706433", 80, PUBLIC)
    with pytest.raises(BlockedUrlError, match=r"non-public address \(127\.0\.0\.1\)"):
        vetted_addresses("0x7f.1", 80, PUBLIC)


def test_a_name_is_resolved_once_and_refused_when_any_answer_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = HostileDns(monkeypatch)
    dns.names["public.attacker.test"] = "93.184.215.14"
    dns.names["loop.attacker.test"] = "127.0.0.1"
    assert vetted_addresses("public.attacker.test", 80, PUBLIC) == ["93.184.215.14"]
    assert dns.asked["public.attacker.test"] == 1
    with pytest.raises(BlockedUrlError, match=r"^Blocked URL: loop\.attacker\.test resolves to a non-public"):
        vetted_addresses("loop.attacker.test.", 80, PUBLIC)
    assert vetted_addresses("loop.attacker.test", 80, PRIVATE_OK) == ["127.0.0.1"]


def test_one_private_answer_among_public_ones_refuses_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    public, private = ("93.184.215.14", 80), ("127.0.0.1", 80)
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address) for address in (public, private)]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    with pytest.raises(BlockedUrlError, match=r"non-public address \(127\.0\.0\.1\)"):
        vetted_addresses("mixed.attacker.test", 80, PUBLIC)


def test_a_name_that_does_not_resolve_is_a_lookup_error_not_a_block() -> None:
    with pytest.raises(socket.gaierror):
        vetted_addresses("nowhere.example", 80, PUBLIC)
