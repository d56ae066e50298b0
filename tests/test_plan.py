"""One plan per workspace (lib/plan.py): each branch of the origin's outcome tree is decided once,
and the throttle, the refresh and the deadline path read the same URL, type and provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.deadline import Deadline
from lib.model import CachedState, Candidate, DefaultLink, Source, WorkspaceConfig
from lib.plan import NO_PROVIDER, Step, _host_readable, _well_formed, plan_refresh
from lib.providers.http import HttpClient
from lib.refresh import RefreshContext, refresh_workspace, unfinished_refresh

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
UNUSED_BASE = "http://127.0.0.1:9"  # no plan below makes a request


def _config(duration: int = 30, provider: str = "GHL", **calendly: str) -> WorkspaceConfig:
    return WorkspaceConfig(
        meeting_duration_minutes=duration,
        booking_provider=provider,
        ghl_default_calendar_id=None,
        ghl_direct_book_calendar_id=None,
        calendly_link=calendly.get("link"),
        calendly_uri=calendly.get("uri"),
        calendly_direct_book_link=calendly.get("direct_link"),
        calendly_direct_book_uri=calendly.get("direct_uri"),
    )


def _candidate(
    url: str | None, link_type: str = "unknown", config: WorkspaceConfig | None = None, cache: CachedState | None = None
) -> Candidate:
    link = DefaultLink("L1", url, link_type) if url is not None else None
    return Candidate("c1", "agency", NOW, link, config, cache)


def _context() -> RefreshContext:
    return RefreshContext(
        http=HttpClient(),
        deadline=Deadline.after(30),
        lookahead_days=30,
        cache_ttl=timedelta(minutes=1),
        calendly_base_url=UNUSED_BASE,
        hubspot_base_url=UNUSED_BASE,
        ghl_base_url=UNUSED_BASE,
    )


@pytest.mark.parametrize(
    ("candidate", "step", "url", "calendar_type", "provider"),
    [
        (_candidate(None), Step.NO_DEFAULT, "", "unknown", NO_PROVIDER),
        (_candidate("  "), Step.NO_DEFAULT, "", "unknown", NO_PROVIDER),
        # (c): the type comes from the URL, not from the link's stored type.
        (
            _candidate("calendly.com/a/b", "ghl", _config(45)),
            Step.UNSUPPORTED_DURATION,
            "https://calendly.com/a/b",
            "calendly",
            NO_PROVIDER,
        ),
        # (g): the link's own type text is kept.
        (_candidate("https://zoom.us/j/1", "Zoom"), Step.UNSUPPORTED_LINK, "https://zoom.us/j/1", "Zoom", NO_PROVIDER),
        (_candidate("https://[::1/x", "hubspot"), Step.MALFORMED_URL, "https://[::1/x", "hubspot", NO_PROVIDER),
        (
            _candidate("meetings.hubspot.com/a", "HubSpot"),
            Step.FETCH,
            "https://meetings.hubspot.com/a",
            "hubspot",
            "hubspot",
        ),
        (
            _candidate(
                "https://old.example.com/x", "calendly", _config(provider="CALENDLY", link=" calendly.com/a/b ")
            ),
            Step.FETCH,
            "https://calendly.com/a/b",
            "calendly",
            "calendly",
        ),
    ],
    ids=[
        "no-link",
        "blank-link",
        "unsupported-duration",
        "unsupported-link",
        "malformed",
        "hubspot",
        "calendly-settings",
    ],
)
def test_each_branch_is_planned_once(candidate, step, url, calendar_type, provider):
    plan = plan_refresh(candidate, Source.DEFAULT)
    assert (plan.step, plan.url, plan.calendar_type, plan.provider) == (step, url, calendar_type, provider)
    if step is not Step.FETCH:  # a plan without a request gives its row at once, as planned
        outcome = refresh_workspace(plan, _context(), NOW)
        assert (outcome.calendar_url, outcome.calendar_type) == (url, calendar_type)


def test_direct_book_plans_read_the_direct_book_event_type():
    config = _config(
        provider="CALENDLY", link="calendly.com/a/default", direct_uri="https://api.calendly.com/event_types/x"
    )
    candidate = _candidate("https://calendly.com/a/link", "calendly", config)
    assert plan_refresh(candidate, Source.DEFAULT).url == "https://calendly.com/a/default"
    assert plan_refresh(candidate, Source.DIRECT_BOOK).url == "https://api.calendly.com/event_types/x"


def test_a_refresh_cut_off_by_the_deadline_describes_the_url_the_plan_read():
    # The link says one thing, the CALENDLY settings another: the refresh read the settings' event type,
    # so the deadline's failure row (on a first insert) must name that URL, as every other outcome does.
    config = _config(provider="CALENDLY", link="calendly.com/acme/intro")
    plan = plan_refresh(_candidate("https://OLD.example.com/booking", "unknown", config), Source.DEFAULT)
    outcome = unfinished_refresh(plan, _context(), NOW, "did not finish")
    assert (outcome.calendar_url, outcome.calendar_type, outcome.calendar_link_id) == (
        "https://calendly.com/acme/intro",
        "calendly",
        "L1",
    )
    assert outcome.keeps_previous_slots and outcome.error == "did not finish"


def test_a_row_about_the_same_link_keeps_its_ids_and_one_about_another_does_not():
    cache = CachedState("L1", " calendly.com/a/b ", {"calendlyEventTypeUuid": "u"}, NOW, None)
    same = plan_refresh(_candidate("https://calendly.com/a/b", cache=cache), Source.DEFAULT)
    edited = plan_refresh(_candidate("https://calendly.com/a/c", cache=cache), Source.DEFAULT)
    assert same.row_describes_link and not edited.row_describes_link
    assert unfinished_refresh(same, _context(), NOW, "x").keeps_previous_slots
    replaced = unfinished_refresh(edited, _context(), NOW, "x")
    assert not replaced.keeps_previous_slots and replaced.slots == () and replaced.calendar_url.endswith("/a/c")


@settings(max_examples=3000, deadline=None)
@given(
    scheme=st.sampled_from(["https://", "http://", "HTTPS://", "Http://", "ftp://", "https:/", ""]),
    rest=st.text(alphabet="aZ09.-_:@[]/?#\\%é\t\n ſK", max_size=24),
)
def test_the_fast_host_check_agrees_with_urlsplit(scheme: str, rest: str) -> None:
    url = scheme + rest
    assert _well_formed(url) == _host_readable(url), url
