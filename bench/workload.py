"""The benchmark's synthetic tenant base, shared by the seeder and the fake providers: N workspaces on
many agencies, a third each on Calendly, HubSpot and GoHighLevel, with business-hour slots."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

_NAMESPACE = uuid.UUID("8d7b3c52-6a0e-4f57-b1d4-2f9e6c0a7b13")
WORKSPACES_PER_AGENCY = 20  # on average; the spread is uneven on purpose
STEP = timedelta(minutes=15)
FIRST_START = time(9, 0)
MAX_SLOTS_PER_DAY = 56  # 09:00 + 56 quarter hours (+ the variant shift) stays within the local day
# Slots live on local days today+1 .. today+SLOT_DAYS: all after any run's "now" and before its
# now + 30 days, so a run minutes later sees exactly the same slots (no slot crosses a window edge).
SLOT_DAYS = 29
VARIANTS = 4  # a variant shifts every start by a quarter hour: another variant changes every slot


class Provider(StrEnum):
    CALENDLY = "calendly"
    HUBSPOT = "hubspot"
    GHL = "ghl"


# The zone a provider's calendars keep their business hours in.
PROVIDER_ZONES = {
    Provider.CALENDLY: "America/New_York",
    Provider.HUBSPOT: "UTC",
    Provider.GHL: "America/Chicago",
}


@dataclass(frozen=True)
class Workspace:
    """One seeded workspace and the provider calendar behind its default link."""

    index: int
    client_id: str
    agency: str
    provider: Provider
    url: str
    key: str  # Calendly event-type uuid, HubSpot slug or GoHighLevel calendar id

    @property
    def profile(self) -> str:
        return f"bench-{self.index}"


def workspaces(count: int) -> list[Workspace]:
    """The first `count` workspaces; the same for every caller, so seeder and sandbox agree."""
    agencies = max(1, count // WORKSPACES_PER_AGENCY)
    return [_workspace(index, agencies) for index in range(count)]


def _workspace(index: int, agencies: int) -> Workspace:
    # A golden-ratio sequence squared: a few large agencies and a long tail of small ones.
    spread = ((index * 0.6180339887498949) % 1.0) ** 2
    agency = f"agency-{int(spread * agencies):05d}"
    client_id = f"bench-{index:06d}"
    provider = (Provider.CALENDLY, Provider.HUBSPOT, Provider.GHL)[index % 3]
    if provider is Provider.CALENDLY:
        url = f"https://calendly.com/bench-{index}/intro-call"
        key = str(uuid.uuid5(_NAMESPACE, client_id))
    elif provider is Provider.HUBSPOT:
        key = f"bench-{index}"
        url = f"https://meetings.hubspot.com/{key}"
    else:
        key = f"BenchCalendar{index:08d}"[:21]
        url = f"https://api.leadconnectorhq.com/widget/booking/{key}"
    return Workspace(index, client_id, agency, provider, url, key)


def slot_starts(zone_name: str, *, today: date, variant: int, slots_per_day: int) -> list[datetime]:
    """Weekday starts every 15 minutes from 09:00 local (shifted by the variant), as UTC instants."""
    if not 1 <= slots_per_day <= MAX_SLOTS_PER_DAY:
        raise ValueError(f"slots per day must be within 1..{MAX_SLOTS_PER_DAY}")
    zone = ZoneInfo(zone_name)
    shift = (variant % VARIANTS) * STEP
    starts: list[datetime] = []
    for offset in range(1, SLOT_DAYS + 1):
        day = today + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        first = datetime.combine(day, FIRST_START, tzinfo=zone) + shift
        for step in range(slots_per_day):
            wall = first + step * STEP
            instant = wall.astimezone(UTC)
            if instant.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):  # skip DST gaps
                starts.append(instant)
    return starts
