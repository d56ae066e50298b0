"""The application's cache reader (tests/reader_oracle.py) against the rows the function writes for
links as people paste them, and the oracle's own checks: it must be able to say no."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.providers import weekday_slots
from tests import reader_oracle
from tests.helpers import hours_from_now, iso, run_cron
from tests.reader_oracle import reader_fixture  # noqa: F401 - autouse: the app's reader judges every row written

GHL_ID = "xqwSvxDlit1P0lTnTrfx"
EVENT_UUID_URI = "https://api.calendly.com/event_types/{uuid}"

# Links as people paste them: no scheme, spaces around, a query, a trailing slash, upper-case letters.
PASTED = {
    "cal-bare": "calendly.com/acme/intro",
    "cal-spaces": "  https://calendly.com/acme/intro \t",
    "cal-query": "https://calendly.com/acme/intro?month=2027-01&utm_source=email",
    "cal-slash": "https://calendly.com/acme/intro/",
    "cal-upper": "HTTPS://CALENDLY.COM/acme/intro",
    "hs-bare": "meetings.hubspot.com/alice",
    "hs-query": "https://meetings.hubspot.com/alice?embed=true",
    "hs-upper": "Https://Meetings.HubSpot.com/alice/",
    "ghl-bare": f"api.leadconnectorhq.com/widget/booking/{GHL_ID}",
    "ghl-slash": f" https://API.LeadConnectorHQ.com/widget/booking/{GHL_ID}/ ",
}


def _providers(sandbox) -> str:
    now = datetime.now(UTC)
    uuid = sandbox.add_calendly_event("acme", "intro", weekday_slots(now, 31))
    sandbox.add_hubspot_link("alice", weekday_slots(now, 31))
    sandbox.add_ghl_calendar(GHL_ID, weekday_slots(now, 31))
    return uuid


def test_pasted_links_look_unchanged_to_the_reader(client, seed, sandbox, db_url):
    _providers(sandbox)
    for client_id, url in PASTED.items():
        seed.client(client_id)
        seed.link(client_id, url)
    report = run_cron(client)
    assert report["refreshed"] == len(PASTED), report["errors"]
    verdicts = reader_oracle.judge_written_rows(seed.connection)
    assert {verdict.client_id for verdict in verdicts} == set(PASTED)
    assert [verdict for verdict in verdicts if verdict.refreshes_inline] == []


def test_calendly_settings_links_look_unchanged_to_the_reader_in_both_sources(client, seed, sandbox):
    now = datetime.now(UTC)
    sandbox.add_calendly_event("acme", "intro", weekday_slots(now, 31))
    direct_uuid = sandbox.add_calendly_event("acme", "direct", weekday_slots(now, 31, hours=(10, 11)))
    # The link itself points elsewhere: the CALENDLY provider's settings decide what is read.
    for client_id, settings in {
        "links": {
            "calendlyEventTypeLink": " calendly.com/acme/intro/ ",
            "calendlyDirectBookEventTypeLink": "calendly.com/acme/direct?x=1",
        },
        "uris": {
            "calendlyEventTypeLink": "CALENDLY.com/acme/intro",
            "calendlyDirectBookEventTypeUri": EVENT_UUID_URI.format(uuid=direct_uuid),
        },
    }.items():
        seed.client(client_id)
        seed.link(client_id, "https://old.example.com/booking", link_type="calendly")
        seed.settings(client_id, meetingBookingProvider="CALENDLY", **settings)
    assert run_cron(client)["refreshed"] == 2
    assert run_cron(client, "source=directBook")["refreshed"] == 2
    assert seed.row("links", "DIRECT_BOOK").calendar_url == "https://calendly.com/acme/direct?x=1"
    assert seed.row("uris", "DIRECT_BOOK").calendar_url == EVENT_UUID_URI.format(uuid=direct_uuid)


@pytest.mark.parametrize(
    "pasted",
    [
        "\ufeffmeetings.hubspot.com/alice",  # a byte-order mark: JavaScript's trim removes it, str.strip does not
        "\x1cmeetings.hubspot.com/alice",  # an information separator: str.strip removes it, JavaScript's trim does not
        "httpſ://meetings.hubspot.com/alice",  # a long s: Python's re.IGNORECASE reads it as 's', JavaScript does not
    ],
    ids=["byte-order-mark", "separator", "long-s"],
)
def test_links_are_normalised_exactly_as_the_application_does(client, seed, sandbox, pasted):
    _providers(sandbox)
    seed.client("c1")
    seed.link("c1", pasted)
    run_cron(client)
    assert seed.row("c1").calendar_url == reader_oracle.normalize_calendar_url(pasted)


def test_configuration_rows_of_another_meeting_length_look_unchanged_to_the_reader(client, seed, sandbox):
    for client_id in ("lost-link", "blank-link", "long-meeting"):
        seed.client(client_id)
        seed.settings(client_id, meetingDurationMinutes=45)
    # A workspace whose default link was removed still has its row: the run clears it (outcome a).
    seed.cache("lost-link", slots=[iso(hours_from_now(3))], range_start=hours_from_now(-1), stale_at=hours_from_now(-1))
    seed.link("blank-link", "   ")
    seed.link("long-meeting", "https://meetings.hubspot.com/alice")
    report = run_cron(client)
    assert (report["skippedNoDefault"], report["skippedUnsupportedDuration"]) == (2, 1)
    assert {row.slot_duration for row in seed.rows().values()} == {45}


def test_unsupported_and_failing_links_look_unchanged_to_the_reader(client, seed, sandbox):
    seed.client("unsupported")
    seed.link("unsupported", "https://zoom.us/j/123")
    seed.client("gone")
    seed.link("gone", "https://meetings.hubspot.com/nobody")
    run_cron(client)
    rows = seed.rows()
    assert rows["unsupported"].last_error.startswith("Unsupported calendar link")
    assert rows["gone"].last_error is not None


# --- the oracle's own checks ---------------------------------------------------------------


def test_the_oracle_trims_and_prefixes_like_javascript():
    assert reader_oracle.js_trim("\ufeff\u00a0 x \u2028") == "x"
    assert reader_oracle.js_trim("\x1cx\x85") == "\x1cx\x85"
    assert reader_oracle.normalize_calendar_url("HTTP://x") == "HTTP://x"
    assert reader_oracle.normalize_calendar_url("httpſ://x") == "https://httpſ://x"
    assert reader_oracle.normalize_calendar_url(" \t") == ""


def test_the_oracle_normalises_the_source_as_origin_section_3_2():
    def settings(**values):
        base = dict.fromkeys(("ghl_a", "ghl_b", "link_a", "uri_a", "link_b", "uri_b"))
        return reader_oracle.Settings(30, values.pop("provider", "GHL"), **{**base, **values})

    normalize = reader_oracle.normalize_source
    assert normalize("DEFAULT", settings(ghl_b="B")) == "DEFAULT"
    assert normalize("DIRECT_BOOK", None) == "DEFAULT"
    assert normalize("DIRECT_BOOK", settings(ghl_a="A", ghl_b=" A ")) == "DEFAULT"
    assert normalize("DIRECT_BOOK", settings(ghl_a="A", ghl_b="B")) == "DIRECT_BOOK"
    assert normalize("DIRECT_BOOK", settings(provider="CALENDLY", link_a="x")) == "DEFAULT"
    assert normalize("DIRECT_BOOK", settings(provider="CALENDLY", link_a="x", link_b="x")) == "DEFAULT"
    assert normalize("DIRECT_BOOK", settings(provider="CALENDLY", uri_a="u", uri_b="u", link_b="y")) == "DEFAULT"
    assert normalize("DIRECT_BOOK", settings(provider="CALENDLY", link_a="x", link_b="X")) == "DIRECT_BOOK"


def test_the_oracle_flags_rows_the_reader_would_refresh(seed):
    for client_id in ("moved", "renamed", "longer", "no-uuid", "not-read", "stale"):
        seed.client(client_id)
    seed.link("moved", "https://calendly.com/a/b", link_id="L-moved")
    seed.cache("moved", slots=[], range_start=hours_from_now(0), stale_at=hours_from_now(1), calendar_link_id=None)
    seed.link("renamed", "calendly.com/a/new", link_id="L-renamed")
    seed.cache(
        "renamed",
        slots=[],
        range_start=hours_from_now(0),
        stale_at=hours_from_now(1),
        calendar_link_id="L-renamed",
        calendar_url="https://calendly.com/a/old",
    )
    seed.settings("longer", meetingDurationMinutes=60)
    seed.cache("longer", slots=[], range_start=hours_from_now(0), stale_at=hours_from_now(1))
    seed.link("no-uuid", "https://calendly.com/a/b", link_id="L-no-uuid")
    seed.cache(
        "no-uuid",
        slots=[],
        range_start=hours_from_now(0),
        stale_at=hours_from_now(1),
        calendar_link_id="L-no-uuid",
        calendar_url="https://calendly.com/a/b",
        calendar_type="calendly",
        provider_meta={"calendlyEventTypeUuid": None},
    )
    seed.cache("not-read", slots=[], range_start=hours_from_now(0), stale_at=hours_from_now(1), source="DIRECT_BOOK")
    seed.cache("stale", slots=[], range_start=hours_from_now(-1), stale_at=hours_from_now(-0.1))
    now = datetime.now(UTC)
    verdicts = {
        client_id: reader_oracle.judge_row(seed.connection, client_id, source, now)
        for client_id, source in [(c, "DEFAULT") for c in ("moved", "renamed", "longer", "no-uuid", "stale")]
        + [("not-read", "DIRECT_BOOK")]
    }
    flags = {
        client_id: (v.default_changed, v.duration_changed, v.meta_missing, v.stale, v.read)
        for client_id, v in verdicts.items()
        if v is not None
    }
    assert flags == {
        "moved": (True, False, False, False, True),
        "renamed": (True, False, False, False, True),
        "longer": (False, True, False, False, True),
        "no-uuid": (False, False, True, False, True),
        "stale": (False, False, False, True, True),
        "not-read": (False, False, False, False, False),
    }
    assert reader_oracle.judge_row(seed.connection, "moved", "DIRECT_BOOK", now) is None
