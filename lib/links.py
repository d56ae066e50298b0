"""Booking-link helpers shared by the refresh and the providers: URL normalisation and type detection."""

from __future__ import annotations

import re
from enum import StrEnum

# ASCII only, as the application's JavaScript regex (no `u` flag): Python's IGNORECASE alone would
# read the long s of `httpſ://` as an `s` and leave such a link without the scheme the app adds.
_HAS_SCHEME = re.compile(r"^https?://", re.IGNORECASE | re.ASCII)
# What JavaScript's String.prototype.trim removes (ECMAScript WhiteSpace and LineTerminator). The
# application trims links that way, and str.strip() differs: it keeps U+FEFF (a byte-order mark
# pasted with a link) and removes U+001C-U+001F and U+0085, so the row's URL would not be the one
# the application resolves, and its reader would refresh the row inline on every read.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_EVENT_TYPE_UUID = re.compile(r"/event_types/([0-9a-f-]{16,})(?:$|[/?#])", re.IGNORECASE)


class CalendarType(StrEnum):
    CALENDLY = "calendly"
    HUBSPOT = "hubspot"
    GHL = "ghl"
    UNKNOWN = "unknown"


_HUBSPOT_MARKERS = ("meetings.hubspot.com", "hubspot.com/meetings", "/meetings/")
# Regional booking hosts (meetings-eu1, -na1, -na2, -na3, -ap1 .hubspot.com), which the origin's
# substring rules miss: a link stored as 'unknown' on such a host would otherwise be unsupported.
_HUBSPOT_REGIONAL_HOST = re.compile(r"meetings-[a-z]{2}\d+\.hubspot\.com")
_GHL_MARKERS = (
    "leadconnectorhq.com",
    "gohighlevel.com",
    "msgsndr.com",
    ".highlevel.",
    "/widget/booking/",
    "/widget/bookings/",
)


def js_trim(value: str | None) -> str:
    """`value` trimmed as JavaScript's String.prototype.trim does ('' for None)."""
    return (value or "").strip(JS_WHITESPACE)


def normalize_calendar_url(raw: str | None) -> str:
    """Trimmed URL with an https:// scheme added when it has none; '' for a blank value (origin §3.3 step 4)."""
    value = js_trim(raw)
    if not value:
        return ""
    return value if _HAS_SCHEME.match(value) else f"https://{value}"


def detect_calendar_type(url: str) -> CalendarType:
    """The provider a URL belongs to, by the substring rules the application uses."""
    lowered = url.lower()
    if "calendly.com" in lowered:
        return CalendarType.CALENDLY
    if any(marker in lowered for marker in _HUBSPOT_MARKERS) or _HUBSPOT_REGIONAL_HOST.search(lowered):
        return CalendarType.HUBSPOT
    if any(marker in lowered for marker in _GHL_MARKERS):
        return CalendarType.GHL
    return CalendarType.UNKNOWN


def calendar_type_for(link_type: str, url: str) -> str:
    """The stored link type wins unless it is blank or 'unknown', then the URL decides."""
    stored = link_type.strip()
    if stored and stored != CalendarType.UNKNOWN.value:
        return stored
    return detect_calendar_type(url).value


def extract_event_type_uuid(value: str | None) -> str | None:
    """The uuid of an `…/event_types/<uuid>` URI or URL, if there is one."""
    match = _EVENT_TYPE_UUID.search(js_trim(value))
    return match.group(1) if match else None
