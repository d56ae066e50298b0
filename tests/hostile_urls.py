"""A generated set of hostile tenant URLs, each of which the HTTP client (requests/urllib3) would send
to a loopback canary: parser differentials (backslashes, userinfo, percent-encoded and IDNA host
spellings), numeric and IPv4-mapped hosts, trailing dots, names an attacker's DNS points at
loopback, and DNS rebinding. Table-driven: host spellings × authority tricks × ports × delivery."""

from __future__ import annotations

from dataclasses import dataclass

from tests.stand_in_internet import PAGE, PUBLIC_HOST

# Names the attacker's DNS answers (HostileDns.names); the IDNA 2003 reading of a name (what
# Python's own `idna` codec and a guard using it would look up) points somewhere public, the UTS #46
# reading (what requests sends) points at loopback.
ATTACKER_DNS: dict[str, str] = {
    "loop.attacker.test": "127.0.0.1",
    "loop6.attacker.test": "::1",
    "mapped.attacker.test": "::ffff:127.0.0.1",
    "strasse.attacker.test": PUBLIC_HOST,
    "xn--strae-oqa.attacker.test": "127.0.0.1",
    "fass.attacker.test": PUBLIC_HOST,
    "xn--fa-hia.attacker.test": "127.0.0.1",
    "metadata.attacker.test": "169.254.169.254",
}


@dataclass(frozen=True)
class HostSpelling:
    label: str
    host: str  # as written in the URL (brackets included for IPv6)
    v6: bool = False  # the client connects over IPv6 (to the canary's ::1 port)


def _v4_spellings() -> list[HostSpelling]:
    hosts = {
        "dotted": "127.0.0.1",
        "decimal": "2130706433",
        "hex": "0x7f000001",
        "hex-dotted": "0x7f.0.0.1",
        "hex-short": "0x7f.1",
        "octal": "0177.0.0.1",
        "octal-long": "017700000001",
        "octal-padded": "0177.0000.0000.0001",
        "short": "127.1",
        "short3": "127.0.1",
        "other-loopback": "127.0.0.2",
        "zero": "0.0.0.0",
        "zero-short": "0",
        "trailing-dot": "127.0.0.1.",
        "localhost": "localhost",
        "localhost-dot": "localhost.",
        "localhost-upper": "LOCALHOST",
        "localhost-mixed": "LocalHost.",
        "pct-digit": "127.0.0.%31",
        "pct-all": "%31%32%37.%30.%30.%31",
        "pct-dot": "127%2e0%2e0%2e1",
        "pct-localhost": "local%68ost",
        "fullwidth-digits": "\uff11\uff12\uff17.0.0.1",
        "fullwidth-dots": "127\uff0e0\uff0e0\uff0e1",
        "ideographic-dots": "127\u30020\u30020\u30021",
        "fullwidth-all": "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11",
        "fullwidth-localhost": "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54",
        "circled-localhost": "\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3",
        "soft-hyphen-localhost": "local\u00adhost",
        "soft-hyphen-digits": "12\u00ad7.0.0.1",
        "zwj-localhost": "local\u200dhost",
        "attacker-name": "loop.attacker.test",
        "attacker-upper": "LOOP.Attacker.TEST",
        "attacker-dot": "loop.attacker.test.",
        "attacker-fullwidth-dots": "loop\uff0eattacker\uff0etest",
        "attacker-pct": "loop.attacker%2etest",
        "attacker-soft-hyphen": "lo\u00adop.attacker.test",
        "idna-sharp-s": "stra\u00dfe.attacker.test",
        "idna-sharp-s-upper": "STRA\u00dfE.attacker.test",
        "idna-sharp-s-fa": "fa\u00df.attacker.test",
        "mapped-name": "mapped.attacker.test",
        "attacker-metadata": "metadata.attacker.test",
        "v6-mapped": "[::ffff:127.0.0.1]",
        "v6-mapped-hex": "[::ffff:7f00:1]",
        "v6-mapped-long": "[0:0:0:0:0:ffff:127.0.0.1]",
        "v6-mapped-upper": "[::FFFF:7F00:0001]",
    }
    return [HostSpelling(label, host) for label, host in hosts.items()]


def _v6_spellings() -> list[HostSpelling]:
    hosts = {
        "v6-loopback": "[::1]",
        "v6-loopback-long": "[0:0:0:0:0:0:0:1]",
        "v6-loopback-padded": "[0000::0001]",
        "v6-attacker-name": "loop6.attacker.test",
        # Python's `is_global` (and so `is_private`) misjudges these: a gateway or the kernel may
        # deliver them inside. The route refuses and records any connection to them.
        "v6-ipv4-compatible": "[::127.0.0.1]",
        "v6-site-local": "[fec0::1]",
        "v6-6to4": "[2002:7f00:1::]",
        "v6-nat64": "[64:ff9b::7f00:1]",
        "v6-multicast": "[ff02::1]",
    }
    return [HostSpelling(label, host, v6=True) for label, host in hosts.items()]


def host_spellings() -> list[HostSpelling]:
    return _v4_spellings() + _v6_spellings()


# Authority tricks: (label, template) with {host} the canary's host and port, {public} a public host
# a naive parser reads instead. Every one of them makes requests/urllib3 connect to {host}.
AUTHORITY_TRICKS: dict[str, str] = {
    "plain": "http://{host}",
    "upper-scheme": "HTTP://{host}",
    "userinfo-public": "http://{public}@{host}",
    "userinfo-public-port": "http://{public}:80@{host}",
    "userinfo-double-at": "http://x@{public}@{host}",
    "backslash-at": "http://{host}\\@{public}",
    "backslash-at-path": "http://{host}\\@{public}/x",
}


@dataclass(frozen=True)
class HostileUrl:
    name: str  # unique, usable as a clientId
    url: str
    via_redirect: bool = False


def hostile_urls(v4_port: int, v6_port: int) -> list[HostileUrl]:
    """Every host spelling under every authority trick, with a plain and a zero-padded port, delivered
    directly (the stored link) or as the Location of a public page's redirect (marked via_redirect;
    the caller turns it into a redirect URL)."""
    found: dict[str, HostileUrl] = {}
    for spelling in host_spellings():
        port = v6_port if spelling.v6 else v4_port
        for port_label, port_text in (("port", f":{port}"), ("port0", f":0{port}")):
            for trick_label, template in AUTHORITY_TRICKS.items():
                basic = trick_label in ("plain", "backslash-at")
                if port_label == "port0" and not basic:
                    continue  # the padded port only needs the two basic authorities
                url = template.format(host=f"{spelling.host}{port_text}", public=PUBLIC_HOST) + PAGE
                # Redirects are checked hop by hop: the basic authorities suffice to show it.
                for via_redirect in (False, True) if basic and port_label == "port" else (False,):
                    name = f"{'r' if via_redirect else 'd'}-{spelling.label}-{trick_label}-{port_label}"
                    found[name] = HostileUrl(name, url, via_redirect)
    return list(found.values())


def rebinding_urls(v4_port: int, count: int) -> dict[str, str]:
    """`count` links to names that answer PUBLIC_HOST once, then 127.0.0.1 (name -> link); the
    caller registers each with HostileDns.rebinding."""
    return {f"rebind{n}.attacker.test": f"http://rebind{n}.attacker.test:{v4_port}{PAGE}" for n in range(count)}
