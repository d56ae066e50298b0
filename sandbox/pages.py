"""GoHighLevel booking pages: the Nuxt HTML a white-label widget URL serves.

Clients scrape the calendar id out of the page before calling the free-slots API,
so a registered path answers with `sandbox.slots.nuxt_booking_page`.
"""

from __future__ import annotations

from urllib.parse import unquote

from sandbox import slots as payloads
from sandbox.replies import Provider, Reply, Route
from sandbox.state import SandboxState


def page_route(state: SandboxState, raw_path: str) -> Route | None:
    """The booking page registered at `raw_path` (as sent or percent-decoded), or None."""
    with state.lock:
        path = raw_path if raw_path in state.registry.pages else unquote(raw_path)
        calendar_id = state.registry.pages.get(path)
    if calendar_id is None:
        return None
    with state.lock:
        calendar = state.registry.ghl.get(calendar_id)
    tz = calendar.timezone if calendar else "America/Chicago"
    html = payloads.nuxt_booking_page(calendar_id, path=path, timezone=tz)
    reply = Reply(200, html.encode(), "text/html; charset=utf-8")
    return Route(Provider.PAGE, path, lambda: reply)
