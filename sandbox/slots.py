"""Slot sets and the provider-shaped payloads built from them, as pure functions.

Everything here is deterministic and free of I/O so the HTTP layer (`sandbox.dispatch`
and the per-provider modules) stays a thin router; shapes follow shared/spec/providers.md.
"""

from __future__ import annotations

import bisect
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

JsonObject = dict[str, object]

_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone `name`, raising ValueError (not KeyError/OSError) if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def as_utc(moment: datetime) -> datetime:
    """Convert an aware datetime to UTC; naive datetimes are rejected."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware: {moment!r}")
    return moment.astimezone(UTC)


def to_ms(moment: datetime) -> int:
    return (as_utc(moment) - _EPOCH) // _MS


def from_ms(millis: int) -> datetime:
    return _EPOCH + millis * _MS


def local_iso(moment: datetime, tz: ZoneInfo) -> str:
    """ISO-8601 with seconds and the offset `tz` has at that instant."""
    return moment.astimezone(tz).isoformat(timespec="seconds")


def _wall_time_exists(wall: datetime) -> bool:
    tz = wall.tzinfo
    round_trip = wall.astimezone(UTC).astimezone(tz)
    return round_trip.replace(tzinfo=None) == wall.replace(tzinfo=None)


def weekday_slots(
    start: datetime,
    days: int = 30,
    *,
    timezone: str = "America/New_York",
    hours: tuple[int, int] = (9, 17),
    step_minutes: int = 15,
) -> list[datetime]:
    """Monday-to-Friday local starts in [start, start + days), every `step_minutes`.

    Starts run from `hours[0]`:00 up to, not including, `hours[1]`:00 local time
    and are built with zoneinfo, so the UTC offset follows DST.
    """
    first_hour, end_hour = hours
    if not 0 <= first_hour < end_hour <= 24:
        raise ValueError(f"hours must satisfy 0 <= start < end <= 24, got {hours}")
    if step_minutes <= 0 or days < 0:
        raise ValueError("step_minutes must be positive and days non-negative")
    tz = zone(timezone)
    begin = as_utc(start)
    end = begin + timedelta(days=days)
    result: list[datetime] = []
    day = begin.astimezone(tz).date()
    last_day = end.astimezone(tz).date()
    while day <= last_day:
        if day.weekday() < 5:
            for minute in range(first_hour * 60, end_hour * 60, step_minutes):
                wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
                if _wall_time_exists(wall) and begin <= wall.astimezone(UTC) < end:
                    result.append(wall)
        day += timedelta(days=1)
    return result


@dataclass(frozen=True)
class SlotSet:
    """An immutable, sorted, de-duplicated set of free start instants (UTC)."""

    starts: tuple[datetime, ...] = ()

    @classmethod
    def of(cls, slots: Iterable[datetime]) -> SlotSet:
        return cls(tuple(sorted({as_utc(slot) for slot in slots})))

    def __len__(self) -> int:
        return len(self.starts)

    def __contains__(self, moment: object) -> bool:
        if not isinstance(moment, datetime):
            return False
        moment = as_utc(moment)
        index = bisect.bisect_left(self.starts, moment)
        return index < len(self.starts) and self.starts[index] == moment

    def between(self, low: datetime, high: datetime, *, include_high: bool = False) -> tuple[datetime, ...]:
        """Starts in [low, high) (or [low, high] with `include_high`)."""
        lo = bisect.bisect_left(self.starts, as_utc(low))
        cut = bisect.bisect_right if include_high else bisect.bisect_left
        return self.starts[lo : cut(self.starts, as_utc(high))]

    def first_from(self, moment: datetime) -> datetime | None:
        index = bisect.bisect_left(self.starts, as_utc(moment))
        return self.starts[index] if index < len(self.starts) else None


def _group_by_local_date(starts: Iterable[datetime], tz: ZoneInfo) -> dict[date, list[datetime]]:
    groups: dict[date, list[datetime]] = {}
    for start in starts:
        groups.setdefault(start.astimezone(tz).date(), []).append(start)
    return groups


def _free_from(slots: SlotSet, now: datetime, low: datetime, high: datetime) -> tuple[datetime, ...]:
    return slots.between(max(as_utc(now), as_utc(low)), high)


# --- Calendly -------------------------------------------------------------------

_DECOY_STEP = timedelta(minutes=15)


def _calendly_decoy(day: date, free: list[datetime], slots: SlotSet, tz: ZoneInfo) -> datetime | None:
    """A start on `day` that is never free, shown as an unavailable spot (on some days)."""
    if day.toordinal() % 3 != 0:
        return None
    for candidate in (free[0] - _DECOY_STEP, free[-1] + _DECOY_STEP):
        if candidate.astimezone(tz).date() == day and candidate not in slots:
            return candidate
    return None


def calendly_range(
    slots: SlotSet,
    *,
    now: datetime,
    tz: ZoneInfo,
    range_start: date,
    range_end: date,
    availability_timezone: str,
    bookable: bool = True,
) -> JsonObject:
    """The body of `GET /api/booking/event_types/{uuid}/calendar/range`."""
    low = datetime.combine(range_start - timedelta(days=1), time(), tzinfo=UTC)
    high = datetime.combine(range_end + timedelta(days=2), time(), tzinfo=UTC)
    by_day = _group_by_local_date(_free_from(slots, now, low, high), tz) if bookable else {}
    days: list[JsonObject] = []
    day = range_start
    while day <= range_end:
        free = by_day.get(day, [])
        spots: list[tuple[datetime, str]] = [(start, "available") for start in free]
        decoy = _calendly_decoy(day, free, slots, tz) if free else None
        if decoy is not None:
            spots.append((decoy, "unavailable"))
            spots.sort()
        days.append(
            {
                "date": day.isoformat(),
                "status": "available" if free else "unavailable",
                "spots": [
                    {"status": status, "start_time": local_iso(start, tz), "invitees_remaining": 1}
                    for start, status in spots
                ],
                "invitee_events": [],
            }
        )
        day += timedelta(days=1)
    return {
        "invitee_publisher_error": False,
        "today": as_utc(now).astimezone(tz).date().isoformat(),
        "availability_timezone": availability_timezone,
        "days": days,
        "diagnostic_data": None,
        "current_user": {
            "email": None,
            "locale": None,
            "is_pretending": False,
            "diagnostics": {"available": False, "enabled": False},
        },
    }


# --- HubSpot --------------------------------------------------------------------


def _month_index(moment: datetime, tz: ZoneInfo) -> int:
    local = moment.astimezone(tz)
    return local.year * 12 + local.month - 1


def _hubspot_names(slug: str) -> list[tuple[str, str]]:
    # A team link ("team/intro") has two hosts, a personal one one.
    return [("Alex", "Rivera"), ("Sam", "Okafor")] if "/" in slug else [("Alex", "Rivera")]


def hubspot_user_ids(slug: str) -> tuple[str, ...]:
    """The `userId`s of the hosts a link's availability page lists, in order; the only part of the
    page that depends on the slug beyond the slot set (so a cache can share one body per slot set)."""
    return tuple(
        str(zlib.crc32(f"{slug}:{first}".encode()) % 90_000_000 + 10_000_000) for first, _ in _hubspot_names(slug)
    )


def _hubspot_users(slug: str) -> list[JsonObject]:
    users: list[JsonObject] = []
    for (first, last), user_id in zip(_hubspot_names(slug), hubspot_user_ids(slug), strict=True):
        users.append(
            {
                "userId": user_id,
                "calendarProvider": "GOOGLE",
                "isSalesStarter": False,
                "userProfile": {
                    "firstName": first,
                    "lastName": last,
                    "fullName": f"{first} {last}",
                    "email": f"{first.lower()}@example.test",
                },
            }
        )
    return users


def _hubspot_busy(free: Sequence[datetime], slots: SlotSet, tz: ZoneInfo) -> list[JsonObject]:
    """Busy intervals an hour before the first free start of every other day: never free."""
    busy: list[JsonObject] = []
    for day, starts in sorted(_group_by_local_date(free, tz).items()):
        start = starts[0] - timedelta(hours=1)
        if day.toordinal() % 2 == 0 and start not in slots:
            busy.append({"start": to_ms(start), "end": to_ms(start + timedelta(minutes=30))})
    return busy


def hubspot_availability(
    slots: SlotSet, *, now: datetime, tz: ZoneInfo, month_offset: int, durations_ms: Sequence[int], slug: str
) -> JsonObject:
    """The body of `GET /meetings-public/v3/book/availability-page` for one month."""
    month = _month_index(now, tz) + month_offset
    first_day = date(month // 12, month % 12 + 1, 1)
    next_first = date((month + 1) // 12, (month + 1) % 12 + 1, 1)
    low = datetime.combine(first_day - timedelta(days=1), time(), tzinfo=UTC)
    high = datetime.combine(next_first + timedelta(days=1), time(), tzinfo=UTC)
    free = [s for s in _free_from(slots, now, low, high) if _month_index(s, tz) == month]
    # Walk from the last UTC day of the month to the first start past the month.
    later = slots.first_from(max(as_utc(now), high - timedelta(days=2)))
    while later is not None and _month_index(later, tz) <= month:
        later = slots.first_from(later + _MS)
    has_more = later is not None
    by_duration: JsonObject = {
        str(duration): {
            "meetingDurationMillis": duration,
            "availabilities": [{"startMillisUtc": to_ms(s), "endMillisUtc": to_ms(s) + duration} for s in free],
        }
        for duration in durations_ms
    }
    busy = _hubspot_busy(free, slots, tz)
    return {
        "linkAvailability": {"hasMore": has_more, "linkAvailabilityByDuration": by_duration},
        "allUsersBusyTimes": [
            {"isOffline": False, "busyTimes": busy, "meetingsUser": user} for user in _hubspot_users(slug)
        ],
    }


# --- GoHighLevel ----------------------------------------------------------------


def ghl_free_slots(
    slots: SlotSet, *, now: datetime, tz: ZoneInfo, start_ms: int, end_ms: int, trace_id: str, dates_meta: bool
) -> JsonObject:
    """The body of `GET /calendars/{id}/free-slots`: only days that have free starts."""
    low, high = from_ms(start_ms), from_ms(end_ms)
    free = [s for s in slots.between(low, high, include_high=True) if s >= as_utc(now)]
    body: JsonObject = {}
    if dates_meta:
        body["_dates_"] = {
            "startDate": low.astimezone(tz).date().isoformat(),
            "endDate": high.astimezone(tz).date().isoformat(),
        }
    for day, starts in sorted(_group_by_local_date(free, tz).items()):
        body[day.isoformat()] = {"slots": [local_iso(s, tz) for s in starts]}
    body["traceId"] = trace_id
    return body


def _location_id(calendar_id: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    state = zlib.crc32(calendar_id.encode())
    chars = []
    for _ in range(20):
        state = (state * 1103515245 + 12345) % 2**31
        chars.append(alphabet[state % len(alphabet)])
    return "".join(chars)


def devalue_flatten(tree: object) -> list[object]:
    """Flatten `tree` into a Nuxt devalue array: containers hold indices, parents first.

    Tuples stand for devalue's tagged values: `("ShallowReactive", x)` becomes
    `["ShallowReactive", index_of_x]` and `("Set",)` becomes `["Set"]`.
    """
    out: list[object] = []

    def flat(value: object) -> int:
        index = len(out)
        out.append(None)
        if isinstance(value, dict):
            out[index] = {str(key): flat(item) for key, item in value.items()}
        elif isinstance(value, list):
            out[index] = [flat(item) for item in value]
        elif isinstance(value, tuple):
            tag, *items = value
            out[index] = [tag, *(flat(item) for item in items)]
        else:
            out[index] = value
        return index

    flat(tree)
    return out


def nuxt_booking_page(calendar_id: str, *, path: str, timezone: str) -> str:
    """A GHL-like booking page whose `__NUXT_DATA__` devalue array holds `calendar_id`.

    The id is the only key of one small object. Decoys come before it: single-key
    objects whose key is not an id, and a two-key object keyed by a 20-char id.
    """
    location_id = _location_id(calendar_id)
    calendar = {"id": calendar_id, "name": "Intro call", "slotDuration": 30, "slotInterval": 15, "timezone": timezone}
    widget = {
        "locationId": location_id,
        "theme": "light",
        "locale": {"lang": "en-US"},
        "locations": {location_id: "Main office", "primary": True},
        "calendars": [{calendar_id: calendar}],
    }
    tree = (
        "ShallowReactive",
        {
            "data": ("ShallowReactive", {"booking-widget": widget}),
            "state": {"$sbooking": {"step": "slot-picker"}},
            "once": ("Set",),
            "_errors": ("ShallowReactive", {}),
            "serverRendered": True,
            "path": path,
        },
    )
    script = json.dumps(devalue_flatten(tree), separators=(",", ":")).replace("</", "<\\/")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Book an appointment</title>"
        '<link rel="stylesheet" href="/_nuxt/entry.css"></head>\n'
        '<body><div id="__nuxt"><div class="booking-widget">Loading&hellip;</div></div>\n'
        '<script type="application/json" id="__NUXT_DATA__" data-ssr="true">'
        f"{script}</script>\n"
        '<script type="module" src="/_nuxt/entry.js" crossorigin></script>'
        "</body></html>\n"
    )
