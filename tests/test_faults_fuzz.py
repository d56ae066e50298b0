"""Fault 8, fuzzing with hypothesis: arbitrary requests get only 200, 400, 401, 405 or 503 from the real
app, and arbitrary provider payloads give slots or a ProviderError whose text PostgreSQL can store."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from lib.deadline import Deadline
from lib.errors import ProviderError
from lib.providers import calendly, ghl, hubspot
from lib.providers.base import FetchContext, ProviderResult
from lib.providers.http import HttpClient
from lib.slots import Window
from sandbox.providers import Fault, ProviderSandbox
from tests.conftest import SECRET
from tests.dbtools import Seeder
from tests.faults_support import register_secret, secret_scan  # noqa: F401 - secret_scan: fixture

pytestmark = pytest.mark.usefixtures("secret_scan")

ALLOWED_STATUSES = {200, 400, 401, 405, 503}
# Bounded so the whole file runs in well under a minute on a busy two-core machine.
HTTP_EXAMPLES = 150
PARSER_EXAMPLES = 400
FETCH_EXAMPLES = 40
MIN_MS, MAX_MS = 946_684_800_000, 4_102_444_800_000
WRONG_TOKEN = register_secret("wrong-token-5b9e0c1d")
FUZZ = settings(
    max_examples=HTTP_EXAMPLES,
    deadline=None,
    database=None,  # nothing written to .hypothesis/
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- requests -------------------------------------------------------------------------------------------

OPTION_NAMES = ["mode", "limit", "timeBudgetMs", "concurrency", "clientId", "source", "shard", "shards"]
TRICKY_VALUES = [
    "",
    " ",
    "all",
    "due",
    "default",
    "directBook",
    "0",
    "-1",
    "1",
    "10000",
    "+5",
    " 12 ",
    "1e3",
    "0x10",
    "1_000",
    "١٢",
    "１０",
    "99999999999999999999999999",
    "NaN",
    "null",
    "true",
    "[]",
    "c1",
    "%00",
    "\u202e",
]
latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
option_value = st.one_of(st.sampled_from(TRICKY_VALUES), st.text(max_size=30), st.integers().map(str))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.sampled_from(TRICKY_VALUES),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
body_strategy = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from(OPTION_NAMES) | st.text(max_size=10), json_value, max_size=5).map(
        lambda values: json.dumps(values).encode()
    ),
    json_value.map(lambda value: json.dumps(value).encode()),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
)
auth_strategy = st.sampled_from(
    [{"Authorization": f"Bearer {SECRET}"}] * 6
    + [
        {"Authorization": f"bearer   {SECRET}  "},
        {"X-Cron-Secret": SECRET},
        {"Authorization": f"Bearer {WRONG_TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
        {},
    ]
)
method_strategy = st.sampled_from(["POST"] * 8 + ["GET"] * 4 + ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"])
content_types = (
    st.sampled_from(
        ["", "application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
    )
    | latin1_text
)
environments = st.sampled_from(["normal", "normal", "normal", "no secret", "bad setting"])


@st.composite
def requests_(draw: st.DrawFn) -> dict[str, Any]:
    pairs = draw(st.lists(st.tuples(st.sampled_from(OPTION_NAMES) | st.text(max_size=8), option_value), max_size=6))
    if draw(st.booleans()):
        pairs.append(("clientId", draw(st.sampled_from(["c1", "nobody", "c1 "]))))
    query = urlencode(pairs) + draw(st.sampled_from(["", "&", "&&=", "&%ZZ", "&a=%ff%fe", "&mode"]))
    headers = dict(draw(auth_strategy))
    extra = draw(
        st.dictionaries(
            st.sampled_from(["X-Cron-Secret", "X-Custom", "Accept", "X-CloudScheduler"]), latin1_text, max_size=2
        )
    )
    headers.update({name: value.strip() for name, value in extra.items() if value.strip()})
    return {
        "method": draw(method_strategy),
        "query_string": query,
        "data": draw(body_strategy),
        "content_type": draw(content_types),
        "headers": headers,
        "environment": draw(environments),
    }


@pytest.fixture
def one_workspace(seed: Seeder) -> Seeder:
    """A workspace whose refresh needs no provider (an unsupported link), so fuzzed runs stay fast."""
    seed.client("c1")
    seed.link("c1", "https://example.com/not-a-calendar")
    return seed


@FUZZ
@given(request=requests_())
def test_arbitrary_requests_get_only_documented_statuses(
    client: Any, one_workspace: Seeder, request: dict[str, Any]
) -> None:
    environment = request.pop("environment")
    saved = {name: os.environ.get(name) for name in ("CRON_SECRET", "AVAILABILITY_CRON_CONCURRENCY")}
    try:
        if environment == "no secret":
            os.environ.pop("CRON_SECRET", None)
        elif environment == "bad setting":
            os.environ["AVAILABILITY_CRON_CONCURRENCY"] = "abc"
        response = client.open("/", **request)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    event(f"HTTP {response.status_code}")
    assert response.status_code in ALLOWED_STATUSES, (response.status_code, response.get_data(as_text=True))
    if request["method"] != "HEAD":  # every answer of the function is JSON, errors included
        assert response.content_type == "application/json", response.content_type
        body = response.get_json()
        assert isinstance(body, dict)
        if response.status_code == 200:
            assert body["success"] is True


def test_a_client_id_postgresql_cannot_encode_is_a_400(client: Any) -> None:
    response = client.post(
        "/",
        data=b'{"clientId": "c\\ud800"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["param"] == "clientId"


# --- provider payloads ----------------------------------------------------------------------------------

KEYS = [
    "days",
    "date",
    "status",
    "spots",
    "start_time",
    "uuid",
    "public",
    "availability_timezone",
    "linkAvailability",
    "linkAvailabilityByDuration",
    "1800000",
    "3600000",
    "availabilities",
    "startMillisUtc",
    "hasMore",
    "slots",
    "startTime",
    "traceId",
    "_dates_",
    "statusCode",
    "message",
    "2026-12-01",
    "2026-12-02",
]
STRINGS = [
    "available",
    "unavailable",
    "",
    "\x00",
    "\ud800",
    "a\x00b",
    "2026-12-01",
    "2026-12-01T09:00:00",
    "2026-12-01T09:00:00Z",
    "2026-12-01T09:00:00+05:30",
    "2026-13-45T99:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2026-12-01T09:00:00.123456789+00:00",
    "1800000",
    "UTC",
    "Mars/Olympus",
]
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
instants_text = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.none() | st.just(UTC) | offsets
).map(lambda moment: moment.isoformat())
plausible_ms = st.integers(MIN_MS - 10, MAX_MS + 10)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    plausible_ms,
    st.floats(),
    st.text(max_size=20),
    st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=5),  # control characters too
    st.sampled_from(STRINGS),
    instants_text,
)
keys = st.sampled_from(KEYS) | st.text(max_size=8)
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)
timestamps = st.one_of(instants_text, st.sampled_from(STRINGS), leaves)
calendly_shaped = st.fixed_dictionaries(
    {
        "days": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "date": leaves,
                    "status": st.sampled_from(["available", "unavailable"]) | leaves,
                    "spots": st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={"status": st.sampled_from(["available", "x"]) | leaves, "start_time": timestamps},
                        )
                        | trees,
                        max_size=4,
                    )
                    | trees,
                },
            )
            | trees,
            max_size=4,
        )
        | trees
    }
)
hubspot_shaped = st.fixed_dictionaries(
    {
        "linkAvailability": st.fixed_dictionaries(
            {},
            optional={
                "hasMore": leaves,
                "linkAvailabilityByDuration": st.dictionaries(
                    st.sampled_from(["1800000", "3600000"]) | keys,
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "availabilities": st.lists(
                                st.fixed_dictionaries({"startMillisUtc": plausible_ms | leaves}) | trees, max_size=4
                            )
                            | trees
                        },
                    )
                    | trees,
                    max_size=3,
                )
                | trees,
            },
        )
        | trees
    }
)
ghl_error_body = st.fixed_dictionaries(
    {"statusCode": st.integers(100, 599) | leaves, "message": st.sampled_from(STRINGS) | leaves},
    optional={"traceId": leaves},
)
ghl_shaped = ghl_error_body | st.dictionaries(
    st.sampled_from(["2026-12-01", "2026-12-02", "traceId", "_dates_", "statusCode", "message"]) | keys,
    st.fixed_dictionaries(
        {"slots": st.lists(timestamps | st.fixed_dictionaries({"startTime": timestamps}) | trees, max_size=4) | trees}
    )
    | trees,
    max_size=4,
)


def storable(text: str) -> bool:
    """Whether PostgreSQL text (and jsonb) can hold `text`: no NUL, no lone surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def check_instants(instants: list[int]) -> None:
    assert all(isinstance(ms, int) and MIN_MS <= ms <= MAX_MS for ms in instants)


def check_error(exc: ProviderError) -> None:
    assert storable(str(exc)), repr(str(exc))


PARSERS = settings(FUZZ, max_examples=PARSER_EXAMPLES)


@PARSERS
@given(payload=calendly_shaped | trees)
def test_calendly_range_payloads_give_slots_or_a_provider_error(payload: Any) -> None:
    try:
        check_instants(calendly.parse_range(payload))
    except ProviderError as exc:
        check_error(exc)


@PARSERS
@given(payload=hubspot_shaped | trees)
def test_hubspot_payloads_give_slots_or_a_provider_error(payload: Any) -> None:
    try:
        page = hubspot.parse_availability_page(payload)
    except ProviderError as exc:
        check_error(exc)
        return
    check_instants(page.starts_ms)
    assert isinstance(page.has_more, bool)


@PARSERS
@given(payload=ghl_shaped | trees)
@example(payload={"statusCode": 400, "message": "bad\x00request"})
@example(payload={"statusCode": 503, "message": "\ud800"})
def test_ghl_payloads_give_slots_or_a_provider_error(payload: Any) -> None:
    try:
        check_instants(ghl.parse_free_slots(payload))
    except ProviderError as exc:
        check_error(exc)


@PARSERS
@given(payload=trees, before=st.text(max_size=30), after=st.text(max_size=30), raw=st.text(max_size=200))
def test_booking_pages_give_a_calendar_id_or_none(payload: Any, before: str, after: str, raw: str) -> None:
    for html in (
        f'{before}<script type="application/json" id="__NUXT_DATA__">{json.dumps(payload)}</script>{after}',
        f'<script id="__NUXT_DATA__">{raw}</script>',
        raw,
    ):
        found = ghl.extract_nuxt_calendar_id(html)
        assert found is None or (found.isalnum() and found.isascii() and len(found) >= 20)


# --- the same payloads through the real HTTP layer and fetch functions ----------------------------------


@pytest.fixture
def fetch_context(sandbox: ProviderSandbox) -> FetchContext:
    now = datetime.now(UTC)
    return FetchContext(HttpClient(), Window.ahead(now, 30), Deadline.after(3600), sandbox.base_url)


def check_result(result: ProviderResult) -> None:
    check_instants(result.instants_ms)
    assert storable(json.dumps(result.meta, ensure_ascii=False)), result.meta


FETCHES = settings(FUZZ, max_examples=FETCH_EXAMPLES)


@FETCHES
@given(
    lookup=calendly_shaped
    | trees
    | st.fixed_dictionaries({"uuid": leaves, "public": leaves, "availability_timezone": leaves})
)
def test_calendly_fetch_with_arbitrary_lookup_and_range_answers(
    sandbox: ProviderSandbox, fetch_context: FetchContext, lookup: Any
) -> None:
    uuid = sandbox.add_calendly_event("acme", "intro", [])
    sandbox.set_fault(uuid, Fault(body=json.dumps(lookup)))
    try:
        check_result(
            calendly.fetch_slots(fetch_context, "https://calendly.com/acme/intro", event_type_uuid=None, timezone=None)
        )
    except ProviderError as exc:
        check_error(exc)


@FETCHES
@given(payload=hubspot_shaped | trees)
def test_hubspot_fetch_with_arbitrary_answers(
    sandbox: ProviderSandbox, fetch_context: FetchContext, payload: Any
) -> None:
    sandbox.add_hubspot_link("alice", [])
    sandbox.set_fault("alice", Fault(body=json.dumps(payload)))
    try:
        check_result(hubspot.fetch_slots(fetch_context, "https://meetings.hubspot.com/alice"))
    except ProviderError as exc:
        check_error(exc)


@FETCHES
@given(payload=ghl_shaped | trees)
def test_ghl_fetch_with_arbitrary_answers(sandbox: ProviderSandbox, fetch_context: FetchContext, payload: Any) -> None:
    calendar = "fuzzCalendar00000000"
    sandbox.add_ghl_calendar(calendar, [])
    sandbox.set_fault(calendar, Fault(body=json.dumps(payload)))
    try:
        check_result(
            ghl.fetch_slots(
                fetch_context, f"https://x.leadconnectorhq.com/widget/booking/{calendar}", calendar_id_hints=[]
            )
        )
    except ProviderError as exc:
        check_error(exc)
