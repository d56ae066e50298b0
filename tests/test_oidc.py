"""Google ID tokens as a credential (contract §2.1), verified against certificates served on 127.0.0.1.

Tokens are signed here with `cryptography` (RS256), independently of the google-auth code under test.
Hostile tokens (a hypothesis fuzz through the real functions-framework app) only ever get a JSON 401,
and an exception that escapes everything else is a 500 JSON `Internal error` logged with its class only.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib import oidc
from lib.config import IdTokenSettings
from lib.logs import configure_logging
from tests.conftest import SECRET, bearer
from tests.local_http import LocalHttpServer, QuietHandler

OPERATOR = "operator@example.com"
SCHEDULER = "cron-invoker@my-project.iam.gserviceaccount.com"
KID = "key-1"
FUNCTION_URL = "https://localhost"  # the test client's host: the default audience
GCLOUD_CLIENT_ID = "32555940559.apps.googleusercontent.com"  # the audience of `gcloud` user ID tokens
ROOT = Path(__file__).resolve().parent.parent


# --- keys, certificates and tokens ---------------------------------------------------------------


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate_pem(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-signer")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def google_key() -> rsa.RSAPrivateKey:
    return _new_key()


@pytest.fixture(scope="session")
def other_key() -> rsa.RSAPrivateKey:
    return _new_key()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: rsa.RSAPrivateKey, claims: dict[str, Any], *, kid: str | None = KID, alg: str = "RS256") -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def claims_for(email: str = OPERATOR, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": FUNCTION_URL,
        "sub": "1234567890",
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


# --- the certificate server ----------------------------------------------------------------------


class CertServer:
    """Serves `{kid: PEM}` like https://www.googleapis.com/oauth2/v1/certs and counts the requests."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.certs = dict(certs)
        self.status = 200
        self.cache_control: str | None = "public, max-age=20000, must-revalidate, no-transform"
        self.requests = 0
        self.delay_s = 0.0
        self._lock = threading.Lock()
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests += 1
                time.sleep(owner.delay_s)
                body = json.dumps(owner.certs).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if owner.cache_control:
                    self.send_header("Cache-Control", owner.cache_control)
                self.end_headers()
                self.wfile.write(body)

        self._server = LocalHttpServer(Handler)
        self.url = f"{self._server.base_url}/oauth2/v1/certs"

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def certs(google_key: rsa.RSAPrivateKey) -> Iterator[CertServer]:
    server = CertServer({KID: _certificate_pem(google_key)})
    oidc.CERTIFICATES.clear()
    try:
        yield server
    finally:
        server.stop()
        oidc.CERTIFICATES.clear()


@pytest.fixture
def oidc_env(client: Any, certs: CertServer, monkeypatch: pytest.MonkeyPatch) -> CertServer:
    """The function with ALLOWED_INVOKERS set, OIDC_AUDIENCES unset, certificates from `certs`."""
    monkeypatch.setenv("ALLOWED_INVOKERS", f" {OPERATOR.upper()} ,{SCHEDULER}")
    monkeypatch.setenv("OIDC_CERTS_URL", certs.url)
    monkeypatch.delenv("OIDC_AUDIENCES", raising=False)
    return certs


def call(client: Any, token: str, **kwargs: Any) -> Any:
    return client.post("/", headers={"Authorization": f"Bearer {token}"}, **kwargs)


# --- through the function -----------------------------------------------------------------------


def test_valid_token_of_an_allowed_account_runs(client, oidc_env, google_key, seed):
    seed.client("c1")
    seed.link("c1", "https://example.com/not-a-booking-page")
    response = call(client, sign(google_key, claims_for()))
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert report["success"] is True
    assert report["checked"] == 1  # the run really happened


@pytest.mark.parametrize(
    "overrides",
    [
        {"email": SCHEDULER, "iss": "accounts.google.com"},  # Cloud Scheduler's service account, bare issuer
        {"email": "Operator@Example.COM"},  # e-mails compare case-insensitively
        {"email_verified": "true"},
        {"aud": f"{FUNCTION_URL}/"},
        {"exp": lambda: int(time.time()) - 30},  # expired 30 s ago, when the test runs: within the clock skew
    ],
)
def test_accepted_token_variants(client, oidc_env, google_key, overrides):
    # Callables are evaluated now, not when the parameters were collected (minutes earlier in a full run).
    overrides = {name: value() if callable(value) else value for name, value in overrides.items()}
    response = call(client, sign(google_key, claims_for(**overrides)))
    assert response.status_code == 200, response.get_data(as_text=True)


def _rejected_tokens(google_key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> dict[str, str]:
    now = int(time.time())
    valid = sign(google_key, claims_for())
    head, body, _ = valid.split(".")
    return {
        "expired": sign(google_key, claims_for(iat=now - 7200, exp=now - 3600)),
        "issued in the future": sign(google_key, claims_for(iat=now + 600, exp=now + 4200)),
        "wrong audience": sign(google_key, claims_for(aud="https://another-function.a.run.app")),
        "unlisted account": sign(google_key, claims_for(email="intruder@example.com")),
        "email not verified": sign(google_key, claims_for(email_verified=False)),
        "email_verified missing": sign(google_key, claims_for(email_verified=None)),
        "no email": sign(google_key, claims_for(email=None)),
        "wrong issuer": sign(google_key, claims_for(iss="https://evil.example.com")),
        "no exp": sign(google_key, claims_for(exp=None)),
        "signed by another key": sign(other_key, claims_for()),
        "unknown kid": sign(google_key, claims_for(), kid="key-unknown"),
        "no kid": sign(google_key, claims_for(), kid=None),
        "alg none": f"{_b64(json.dumps({'alg': 'none', 'kid': KID}).encode())}.{body}.",
        "HS256": sign(google_key, claims_for(), alg="HS256"),
        "tampered claims": f"{head}.{_b64(json.dumps(claims_for(email=SCHEDULER)).encode())}.{valid.split('.')[2]}",
        "signature removed by Cloud Run": f"{head}.{body}.SIGNATURE_REMOVED_BY_GOOGLE",
        "garbage": "not-a-token",
        "three garbage segments": "a.b.c",
        "huge": "x" * 20_000,
    }


REJECTED = [
    "expired",
    "issued in the future",
    "wrong audience",
    "unlisted account",
    "email not verified",
    "email_verified missing",
    "no email",
    "wrong issuer",
    "no exp",
    "signed by another key",
    "unknown kid",
    "no kid",
    "alg none",
    "HS256",
    "tampered claims",
    "signature removed by Cloud Run",
    "garbage",
    "three garbage segments",
    "huge",
]


@pytest.mark.parametrize("case", REJECTED)
def test_unacceptable_tokens_are_unauthorized(client, oidc_env, google_key, other_key, case):
    token = _rejected_tokens(google_key, other_key)[case]
    response = call(client, token)
    assert response.status_code == 401
    assert response.get_json() == {"error": "Unauthorized"}


def test_the_valid_token_used_to_build_the_rejections_is_accepted(client, oidc_env, google_key, other_key):
    # Guards the table above: its tokens fail for the stated reason, not because the base token is bad.
    assert call(client, sign(google_key, claims_for())).status_code == 200


def test_junk_tokens_never_fetch_certificates(client, oidc_env, google_key, other_key):
    tokens = _rejected_tokens(google_key, other_key)
    for case in ("expired", "wrong audience", "unlisted account", "garbage", "alg none", "wrong issuer"):
        assert call(client, tokens[case]).status_code == 401
    assert oidc_env.requests == 0


def test_certificates_are_fetched_once_for_many_requests(client, oidc_env, google_key):
    for email in (OPERATOR, SCHEDULER, OPERATOR):
        assert call(client, sign(google_key, claims_for(email))).status_code == 200
    assert call(client, sign(google_key, claims_for(), kid="rotated-key")).status_code == 401
    assert oidc_env.requests == 1


@pytest.mark.parametrize("failure", ["stopped", "HTTP 500", "not certificates"])
def test_certificate_server_failure_is_unauthorized_with_a_warning(client, oidc_env, google_key, capfd, failure):
    if failure == "stopped":
        oidc_env.stop()
    elif failure == "HTTP 500":
        oidc_env.status = 500
    else:
        oidc_env.certs = {"keys": "a JWK set is not the x509 form"}
    response = call(client, sign(google_key, claims_for()))
    assert response.status_code == 401
    assert response.get_json() == {"error": "Unauthorized"}
    logged = capfd.readouterr().err
    assert "WARNING oidc_certs_unavailable" in logged


def test_audiences_from_oidc_audiences_replace_the_function_url(client, oidc_env, google_key, monkeypatch):
    monkeypatch.setenv("OIDC_AUDIENCES", f"https://fn-abc-uc.a.run.app, {GCLOUD_CLIENT_ID}")
    assert call(client, sign(google_key, claims_for(aud=GCLOUD_CLIENT_ID))).status_code == 200
    assert call(client, sign(google_key, claims_for(aud="https://fn-abc-uc.a.run.app"))).status_code == 200
    assert call(client, sign(google_key, claims_for(aud=FUNCTION_URL))).status_code == 401


def test_gcloud_tokens_pass_by_default_and_not_when_oidc_audiences_leaves_them_out(
    client, oidc_env, google_key, monkeypatch
):
    token = sign(google_key, claims_for(aud=GCLOUD_CLIENT_ID, azp=GCLOUD_CLIENT_ID))
    assert call(client, token).status_code == 200
    monkeypatch.setenv("OIDC_AUDIENCES", FUNCTION_URL)
    assert call(client, token).status_code == 401


def test_default_audience_includes_the_request_path(client, oidc_env, google_key):
    token = sign(google_key, claims_for(aud=f"{FUNCTION_URL}/availability-cron"))
    assert client.post("/availability-cron", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert call(client, token).status_code == 401  # the same token at "/" names another URL


def test_id_tokens_are_refused_without_allowed_invokers(client, oidc_env, google_key, monkeypatch):
    monkeypatch.delenv("ALLOWED_INVOKERS")
    assert call(client, sign(google_key, claims_for())).status_code == 401
    assert oidc_env.requests == 0


def test_the_cron_secret_still_works(client, oidc_env):
    assert client.post("/", headers=bearer()).status_code == 200
    assert client.post("/", headers={"X-Cron-Secret": SECRET}).status_code == 200
    assert client.post("/", headers=bearer("wrong")).status_code == 401
    assert oidc_env.requests == 0


def test_secret_header_with_an_id_token_in_authorization(client, oidc_env):
    # The --auth oidc deployment: Cloud Run hands over its token with the signature removed, plus the secret.
    headers = {"Authorization": "Bearer aaa.bbb.SIGNATURE_REMOVED_BY_GOOGLE", "X-Cron-Secret": SECRET}
    assert client.post("/", headers=headers).status_code == 200


def test_gcloud_functions_call_request_shape(client, oidc_env, google_key, monkeypatch):
    # `gcloud functions call --gen2` POSTs to the function URL, Content-Type JSON, no body, a user ID token.
    monkeypatch.setenv("OIDC_AUDIENCES", GCLOUD_CLIENT_ID)
    token = sign(google_key, claims_for(aud=GCLOUD_CLIENT_ID, azp=GCLOUD_CLIENT_ID))
    response = call(client, token, content_type="application/json")
    assert response.status_code == 200
    assert response.get_json()["success"] is True


def test_invalid_setting_is_revealed_to_a_token_holder_only(client, oidc_env, google_key, monkeypatch):
    monkeypatch.setenv("AVAILABILITY_CRON_CONCURRENCY", "abc")
    response = call(client, sign(google_key, claims_for()))
    assert response.status_code == 503
    assert "AVAILABILITY_CRON_CONCURRENCY" in response.get_json()["detail"]
    assert call(client, sign(google_key, claims_for(email="intruder@example.com"))).status_code == 401


def test_invalid_certs_url_is_not_revealed_to_an_unauthenticated_caller(client, oidc_env, google_key, monkeypatch):
    monkeypatch.setenv("OIDC_CERTS_URL", "ftp://nowhere")
    assert call(client, sign(google_key, claims_for())).status_code == 401
    response = client.post("/", headers=bearer())
    assert response.status_code == 503
    assert "OIDC_CERTS_URL" in response.get_json()["detail"]


def test_tokens_never_appear_in_logs(client, oidc_env, google_key, other_key, capfd):
    accepted = sign(google_key, claims_for())
    rejected = _rejected_tokens(google_key, other_key)
    call(client, accepted)
    for case in ("expired", "signed by another key", "unknown kid", "tampered claims", "three garbage segments"):
        call(client, rejected[case])
    oidc_env.stop()
    oidc.CERTIFICATES.clear()
    call(client, accepted)
    output = capfd.readouterr()
    logged = output.out + output.err
    assert "id_token_accepted" in logged
    assert "id_token_rejected" in logged
    assert "oidc_certs_unavailable" in logged
    for token in [accepted, *(rejected[case] for case in ("expired", "signed by another key", "tampered claims"))]:
        for part in token.split("."):
            assert part not in logged


def test_importing_main_does_not_import_google_auth():
    # Cold start: the secret path must not pay for google-auth and cryptography.
    probe = "import sys, main; print(sorted(m for m in ('google.auth', 'cryptography') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# --- the certificate cache, with a clock of our own ---------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _policy(certs: CertServer) -> IdTokenSettings:
    return IdTokenSettings(allowed_invokers=frozenset({OPERATOR}), audiences=(FUNCTION_URL,), certs_url=certs.url)


def _verify(token: str, certs: CertServer, cache: oidc.CertificateCache) -> oidc.Identity:
    return oidc.verify_id_token(token, _policy(certs), (FUNCTION_URL,), certificates=cache)


def test_cache_control_max_age_is_honoured(certs, google_key):
    certs.cache_control = "public, max-age=300"
    clock = Clock()
    cache = oidc.CertificateCache(clock=clock)
    token = sign(google_key, claims_for())
    assert _verify(token, certs, cache).email == OPERATOR
    clock.now += 299
    _verify(token, certs, cache)
    assert certs.requests == 1
    clock.now += 2
    _verify(token, certs, cache)
    assert certs.requests == 2


def test_without_cache_control_certificates_are_kept_an_hour(certs, google_key):
    certs.cache_control = None
    clock = Clock()
    cache = oidc.CertificateCache(clock=clock)
    token = sign(google_key, claims_for())
    _verify(token, certs, cache)
    clock.now += oidc.DEFAULT_CERTS_MAX_AGE_S - 1
    _verify(token, certs, cache)
    assert certs.requests == 1
    clock.now += 2
    _verify(token, certs, cache)
    assert certs.requests == 2


def test_an_unknown_key_id_refetches_at_most_once_a_minute(certs, google_key, other_key):
    clock = Clock()
    cache = oidc.CertificateCache(clock=clock)
    _verify(sign(google_key, claims_for()), certs, cache)
    certs.certs["key-2"] = _certificate_pem(other_key)  # Google publishes a new key
    rotated = sign(other_key, claims_for(), kid="key-2")
    clock.now += 10
    with pytest.raises(oidc.IdTokenRejected, match="unknown key id"):
        _verify(rotated, certs, cache)
    assert certs.requests == 1
    clock.now += oidc.UNKNOWN_KID_REFETCH_S
    assert _verify(rotated, certs, cache).email == OPERATOR
    assert certs.requests == 2


def test_a_failed_refresh_keeps_the_previous_certificates_and_waits_before_retrying(certs, google_key, capfd):
    configure_logging("INFO", "text")
    certs.cache_control = "max-age=120"
    clock = Clock()
    cache = oidc.CertificateCache(clock=clock)
    token = sign(google_key, claims_for())
    _verify(token, certs, cache)
    certs.status = 503
    clock.now += 121
    assert _verify(token, certs, cache).email == OPERATOR  # stale, but Google's keys outlive a refresh
    assert certs.requests == 2
    assert "WARNING oidc_certs_unavailable" in capfd.readouterr().err
    clock.now += oidc.FAILED_FETCH_RETRY_S - 1
    _verify(token, certs, cache)
    assert certs.requests == 2
    clock.now += oidc.STALE_CERTS_LIMIT_S
    with pytest.raises(oidc.CertificatesUnavailable):
        _verify(token, certs, cache)
    assert certs.requests == 3


@pytest.mark.parametrize(
    ("cache_control", "age", "seconds"),
    [
        ("public, max-age=19790, must-revalidate, no-transform", None, 19790),
        ("max-age=19790", "790", 19000),
        ("no-cache", None, oidc.DEFAULT_CERTS_MAX_AGE_S),
        ("max-age=0", None, oidc.CERTS_MAX_AGE_BOUNDS_S[0]),
        ("max-age=99999999", None, oidc.CERTS_MAX_AGE_BOUNDS_S[1]),
        (None, None, oidc.DEFAULT_CERTS_MAX_AGE_S),
    ],
)
def test_freshness_from_cache_control(cache_control, age, seconds):
    assert oidc.freshness(cache_control, age) == seconds


# --- hostile tokens: every answer is JSON (issue 10 §2) ------------------------------------------

UNAUTHORIZED = {"error": "Unauthorized"}
CLAIM_NAMES = ("iss", "aud", "exp", "iat", "email", "email_verified", "sub", "azp", "nbf")
HEADER_NAMES = ("alg", "kid", "typ", "crit", "jku", "x5u")


# JSON of every type: huge and non-finite numbers, long and odd text, nested containers.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.sampled_from(["RS256", "none", "HS256", KID, "https://accounts.google.com", OPERATOR, "true", "", "\x00"]),
    st.just("x" * 5000),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_mapping(draw: st.DrawFn, base: dict[str, Any], names: tuple[str, ...]) -> Any:
    """`base` with some fields replaced by values of any type, some removed, some added; or no object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # a segment that is JSON but not an object
    mapping = dict(base)
    for name in draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True)):
        if draw(st.booleans()):
            mapping[name] = draw(json_values)
        else:
            mapping.pop(name, None)
    mapping.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    return mapping


def _segment(value: Any) -> str:
    return _b64(json.dumps(value, allow_nan=True).encode())


@st.composite
def jwt_shaped(draw: st.DrawFn) -> str:
    """A bearer value shaped like a JWT, broken in one or more of many ways."""
    header = draw(mutated_mapping({"alg": "RS256", "kid": KID, "typ": "JWT"}, HEADER_NAMES))
    claims = draw(mutated_mapping(claims_for(), CLAIM_NAMES))
    segments = [_segment(header), _segment(claims), draw(st.sampled_from(["c2ln", "", "SIGNATURE_REMOVED_BY_GOOGLE"]))]
    damage = draw(st.sampled_from(["none", "nesting", "base64", "unicode", "split", "huge"]))
    index = draw(st.integers(0, 2))
    if damage == "nesting":
        depth = draw(st.integers(500, 3000))
        segments[index] = _b64(("[" * depth + "]" * depth).encode())
    elif damage == "base64":
        segments[index] = draw(st.text(alphabet="abc-_=+/!.%", min_size=1, max_size=30)).replace(".", "")
    elif damage == "unicode":
        segments[index] = draw(st.text(min_size=1, max_size=20)).replace(".", "")
    elif damage == "split":
        return ".".join(segments + draw(st.lists(st.text(max_size=5), max_size=3)))
    elif damage == "huge":
        segments[index] = "A" * draw(st.integers(5000, 9000))
    return ".".join(segments)


@pytest.mark.slow
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(token=jwt_shaped())
def test_fuzzed_id_tokens_only_ever_get_a_json_401(client, oidc_env, token):
    # As a server hands it over: the header's bytes (UTF-8 here) read as latin-1, no line breaks.
    as_received = token.encode("utf-8", "surrogatepass").decode("latin-1").replace("\r", "").replace("\n", "")
    response = call(client, as_received)
    assert response.status_code == 401, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    assert response.get_json() == UNAUTHORIZED


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", ["https://accounts.google.com"]),  # a list where a string belongs: unhashable in the issuer set
        ("iss", {"a": 1}),
        ("aud", ["https://localhost"]),
        ("email", {"address": OPERATOR}),
        ("email", ["x"]),
        ("email_verified", [True]),
        ("exp", 10**400),  # float() of it overflows
        ("iat", -(10**400)),
        ("exp", "9999999999"),
        ("exp", math.nan),  # NaN compares false with everything: it must not pass as "not expired"
        ("exp", math.inf),
        ("iat", True),
        ("email", "x" * 5000),
    ],
)
def test_a_claim_of_the_wrong_type_is_a_401_with_a_warning(client, oidc_env, google_key, capfd, claim, value):
    # Before the fix several of these escaped as an HTML 500 (TypeError, OverflowError).
    token = sign(google_key, claims_for(**{claim: value}))
    capfd.readouterr()
    response = call(client, token)
    assert (response.status_code, response.get_json()) == (401, UNAUTHORIZED)
    logged = capfd.readouterr().err
    assert " WARNING id_token_rejected " in logged, logged
    for part in token.split("."):
        assert part not in logged
    assert oidc_env.requests == 0  # refused before any certificate fetch


@pytest.mark.parametrize(
    "header",
    [{"alg": "RS256", "kid": ["key-1"]}, {"alg": ["RS256"], "kid": KID}, {"alg": "RS256", "kid": {"k": 1}}],
)
def test_a_header_field_of_the_wrong_type_is_a_401(client, oidc_env, header):
    token = f"{_segment(header)}.{_segment(claims_for())}.c2ln"
    assert (call(client, token).status_code, call(client, token).get_json()) == (401, UNAUTHORIZED)


def test_deeply_nested_claims_are_a_401(client, oidc_env):
    token = f"{_segment({'alg': 'RS256', 'kid': KID})}.{_b64(b'[' * 2500 + b']' * 2500)}.c2ln"
    assert len(token) < oidc.MAX_TOKEN_LENGTH
    response = call(client, token)
    assert (response.status_code, response.get_json()) == (401, UNAUTHORIZED)


def test_a_nan_expiry_is_refused_before_any_certificate_fetch(certs: CertServer, google_key):
    policy = IdTokenSettings(
        allowed_invokers=frozenset({OPERATOR}), audiences=("https://localhost",), certs_url=certs.url
    )
    token = sign(google_key, claims_for(exp=math.nan))
    with pytest.raises(oidc.MalformedIdToken):
        oidc.verify_id_token(token, policy, policy.audiences)
    assert certs.requests == 0


def test_an_escaped_exception_is_a_500_json_logged_with_its_class_only(client, seed, monkeypatch, capfd):
    secret_text = "postgresql://u:hunter2-very-secret@db/x"

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyError(secret_text)  # a bug of ours whose message quotes a secret

    monkeypatch.setattr("lib.run.load_candidates", broken)
    capfd.readouterr()
    response = client.post("/", headers=bearer())
    logged = capfd.readouterr().err
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body == {"success": False, "error": "Internal error", "invocationId": body["invocationId"]}
    assert len(body["invocationId"]) == 36
    failed = [line for line in logged.splitlines() if " run_failed " in line]
    assert len(failed) == 1, logged
    assert " ERROR run_failed " in failed[0]
    assert f"invocationId={body['invocationId']}" in failed[0]
    assert 'error="Internal error"' in failed[0] and "exception=KeyError" in failed[0]
    assert "where=test_oidc.py:" in failed[0]
    assert "hunter2" not in logged and "hunter2" not in response.get_data(as_text=True)


def test_an_escaped_exception_is_still_a_500_json_when_logging_it_fails(client, seed, monkeypatch):
    # The last resort's own log line fails too (a broken handler, as a half-imported Cloud Logging
    # package once made it): the answer must still be the JSON 500, not the framework's HTML page.
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyError("bug")

    def failing_log(*_args: Any, **_kwargs: Any) -> None:
        raise AttributeError("the log handler is broken")

    monkeypatch.setattr("lib.run.load_candidates", broken)
    monkeypatch.setattr("main.log_event", failing_log)
    response = client.post("/", headers=bearer())
    assert (response.status_code, response.mimetype) == (500, "application/json")
    assert response.get_json()["error"] == "Internal error"


def test_time_spent_verifying_an_id_token_counts_toward_the_budget(client, oidc_env, google_key, seed):
    # A slow certificate fetch: the run's budget counts from the request's arrival, not from after
    # authentication (before the fix durationMs left the 2 s out and the answer could overrun by it).
    seed.client("c1")
    oidc_env.delay_s = 2.0
    response = call(client, sign(google_key, claims_for()))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["durationMs"] >= 2000
