"""TLS to the database (issue 10 §7): sslmode=verify-ca / verify-full with sslrootcert verify the server's
certificate (verify-full its host name too), Prisma's sslaccept=strict verifies like verify-full, and
sslmode=require encrypts without verifying, as before.

A PostgreSQL server of its own (the embedded one, ssl on) presents a certificate for `localhost` signed
by a CA generated here; a second, unrelated CA stands for "untrusted".
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lib.db import CERTIFICATE_REJECTED, connect
from lib.dburl import VERIFY_CA, VERIFY_FULL, VERIFY_NONE, parse_database_url
from lib.errors import ConfigError, DatabaseError
from tests.conftest import bearer
from tests.helpers import run_cron
from tests.tls_front import PostgresTlsFront


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _authority(folder: Path, common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )  # digitalSignature, keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{common_name.replace(' ', '-')}.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return Authority(key, certificate, path)


def _server_certificate(authority: Authority, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """A certificate for the name `localhost` only (not for 127.0.0.1), signed by `authority`."""
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )


@dataclass(frozen=True)
class TlsServer:
    """The TLS front, the CA that signed its certificate, and an unrelated one."""

    front: PostgresTlsFront
    trusted: Authority
    untrusted: Authority
    certificate: x509.Certificate
    database_url: str

    def url(self, host: str, query: str) -> str:
        """The test database behind the front, reached as `host`, with `query`."""
        target = parse_database_url(self.database_url, variable="url")
        credentials = f"{quote(target.user, safe='')}:{quote(target.password or '', safe='')}"
        return f"postgresql://{credentials}@{host}:{self.front.port}/{quote(target.database, safe='')}?{query}"

    @property
    def password(self) -> str:
        return parse_database_url(self.database_url, variable="url").password or ""


@pytest.fixture(scope="module")
def tls_front(pg_admin_url: str) -> Iterator[tuple[PostgresTlsFront, Authority, Authority, x509.Certificate]]:
    folder = Path(tempfile.mkdtemp(prefix="availability-cron-tls-"))
    trusted = _authority(folder, "trusted test CA")
    untrusted = _authority(folder, "untrusted test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _server_certificate(trusted, key)
    (folder / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "server.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    backend = parse_database_url(pg_admin_url, variable="url")
    front = PostgresTlsFront((backend.host or "127.0.0.1", backend.port), folder / "server.crt", folder / "server.key")
    try:
        yield front, trusted, untrusted, certificate
    finally:
        front.stop()


@pytest.fixture
def tls_server(tls_front: tuple[PostgresTlsFront, Authority, Authority, x509.Certificate], db_url: str) -> TlsServer:
    return TlsServer(*tls_front, database_url=db_url)


def _session(tls_server: TlsServer, url: str) -> str:
    """Connect as the function does and run a statement; how the front saw the session ("plain", "TLSv1.3")."""
    before = len(tls_server.front.sessions)
    with connect(parse_database_url(url, variable="DATABASE_URL"), timeout_s=10) as db:
        assert db.run("SELECT 1") == [[1]]
    assert len(tls_server.front.sessions) == before + 1
    return tls_server.front.sessions[-1]


def _encrypted(tls_server: TlsServer, url: str) -> bool:
    return _session(tls_server, url).startswith("TLS")


def _rejected(tls_server: TlsServer, url: str) -> DatabaseError:
    before = len(tls_server.front.sessions)
    with pytest.raises(DatabaseError) as raised:
        _session(tls_server, url)
    # Nothing reached the database: no session got past the handshake, none went on in plain text.
    assert all(session == "rejected" for session in tls_server.front.sessions[before:])
    return raised.value


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verification_against_the_trusted_ca_connects_encrypted(tls_server, mode):
    session = _session(tls_server, tls_server.url("localhost", f"sslmode={mode}&sslrootcert={tls_server.trusted.path}"))
    assert session in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_a_certificate_from_an_untrusted_ca_is_rejected(tls_server, mode):
    error = _rejected(
        tls_server, tls_server.url("localhost", f"sslmode={mode}&sslrootcert={tls_server.untrusted.path}")
    )
    assert error.kind == CERTIFICATE_REJECTED
    assert "certificate" in str(error) and tls_server.password not in str(error)


def test_verify_ca_checks_the_chain_but_not_the_host_name(tls_server):
    # The certificate names `localhost`; 127.0.0.1 is the same server under a name it does not carry.
    url = tls_server.url("127.0.0.1", f"sslmode=verify-ca&sslrootcert={tls_server.trusted.path}")
    assert _encrypted(tls_server, url)


def test_verify_full_checks_the_host_name_too(tls_server):
    error = _rejected(
        tls_server, tls_server.url("127.0.0.1", f"sslmode=verify-full&sslrootcert={tls_server.trusted.path}")
    )
    assert error.kind == CERTIFICATE_REJECTED
    assert "mismatch" in str(error).lower() or "127.0.0.1" in str(error)


def test_require_still_encrypts_without_verifying(tls_server):
    # Today's behaviour, kept: libpq's require does not verify (the untrusted CA is not even read).
    url = tls_server.url("127.0.0.1", f"sslmode=require&sslrootcert={tls_server.untrusted.path}")
    assert _encrypted(tls_server, url)


def test_prisma_sslaccept_strict_verifies_with_sslcert_as_the_ca(tls_server):
    assert _encrypted(
        tls_server, tls_server.url("localhost", f"sslmode=require&sslaccept=strict&sslcert={tls_server.trusted.path}")
    )
    error = _rejected(
        tls_server, tls_server.url("localhost", f"sslmode=require&sslaccept=strict&sslcert={tls_server.untrusted.path}")
    )
    assert error.kind == CERTIFICATE_REJECTED
    # strict checks the host name as well, like Prisma (and verify-full).
    error = _rejected(tls_server, tls_server.url("127.0.0.1", f"sslaccept=strict&sslcert={tls_server.trusted.path}"))
    assert error.kind == CERTIFICATE_REJECTED


def test_prisma_sslaccept_strict_under_prefer_never_falls_back_to_plain_text(tls_server):
    # sslmode=prefer may go without TLS when the server has it off, never because a certificate failed.
    error = _rejected(
        tls_server, tls_server.url("localhost", f"sslmode=prefer&sslaccept=strict&sslcert={tls_server.untrusted.path}")
    )
    assert error.kind == CERTIFICATE_REJECTED


def test_accept_invalid_certs_is_prismas_default_no_verification(tls_server):
    url = tls_server.url("127.0.0.1", f"sslaccept=accept_invalid_certs&sslcert={tls_server.untrusted.path}")
    assert _encrypted(tls_server, url)


def test_sslmode_disable_means_plain_text_even_when_the_server_offers_tls(tls_server):
    assert _session(tls_server, tls_server.url("localhost", "sslmode=disable")) == "plain"


def test_an_unreadable_ca_file_is_a_clear_error(tls_server, tmp_path):
    error = _rejected(
        tls_server, tls_server.url("localhost", f"sslmode=verify-full&sslrootcert={tmp_path / 'missing.crt'}")
    )
    assert error.kind == CERTIFICATE_REJECTED and "sslrootcert" in str(error)


def test_through_the_function_a_trusted_server_runs_and_an_untrusted_one_is_a_500(client, monkeypatch, tls_server):
    monkeypatch.setenv(
        "DATABASE_URL", tls_server.url("localhost", f"sslmode=verify-full&sslrootcert={tls_server.trusted.path}")
    )
    assert run_cron(client)["success"] is True
    monkeypatch.setenv(
        "DATABASE_URL", tls_server.url("localhost", f"sslmode=verify-full&sslrootcert={tls_server.untrusted.path}")
    )
    response = client.post("/", headers=bearer())
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == CERTIFICATE_REJECTED
    assert tls_server.password not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "verify", "root_cert"),
    [
        ("sslmode=require", VERIFY_NONE, None),
        ("sslmode=require&sslrootcert=/ca.crt", VERIFY_NONE, None),
        ("sslmode=verify-ca&sslrootcert=/ca.crt", VERIFY_CA, "/ca.crt"),
        ("sslmode=verify-full", VERIFY_FULL, None),  # the system's trusted CAs
        ("sslaccept=strict", VERIFY_FULL, None),
        ("sslaccept=strict&sslcert=/prisma/ca.crt", VERIFY_FULL, "/prisma/ca.crt"),
        ("sslaccept=strict&sslcert=/prisma/ca.crt&sslrootcert=/ca.crt", VERIFY_FULL, "/ca.crt"),
        ("sslmode=verify-ca&sslaccept=strict&sslrootcert=/ca.crt", VERIFY_CA, "/ca.crt"),
        ("sslmode=disable&sslaccept=strict", VERIFY_NONE, None),
        ("sslaccept=accept_invalid_certs&sslcert=/x.crt", VERIFY_NONE, None),
        ("sslcert=/client.crt", VERIFY_NONE, None),  # libpq's client certificate: not a CA
    ],
)
def test_what_each_url_verifies(query, verify, root_cert):
    target = parse_database_url(f"postgresql://u:p@h/db?{query}", variable="DATABASE_URL")
    assert (target.ssl_verify, target.ssl_root_cert) == (verify, root_cert)


def test_an_unknown_sslaccept_is_a_config_error():
    with pytest.raises(ConfigError) as raised:
        parse_database_url("postgresql://u:p@h/db?sslaccept=sometimes", variable="DATABASE_URL")
    assert raised.value.variable == "DATABASE_URL"


def test_the_local_server_certificate_names_localhost_only(tls_server):
    # Guards the premise of the host-name tests above.
    names = tls_server.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ip_address("127.0.0.1") not in names.get_values_for_type(x509.IPAddress)
