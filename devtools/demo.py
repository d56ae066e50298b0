"""A realistic demo tenant base for local runs: several agencies, dozens of workspaces on all three
providers, a few broken links and a workspace with an unsupported meeting length."""

from __future__ import annotations

from datetime import UTC, datetime

import pg8000.native

# (agency, workspace count) — uneven on purpose, so the round-robin by agency shows.
AGENCIES = (("agency-northwind", 14), ("agency-bluebird", 9), ("agency-cobalt", 6), ("agency-dune", 3))
BROKEN_HUBSPOT_SLUG = "demo-broken-hubspot"


def demo_links(agency: str, index: int) -> tuple[str, str]:
    """The booking link of the `index`-th workspace of an agency, cycling through the providers."""
    slug = f"{agency.split('-')[1]}-{index}"
    choice = index % 3
    if choice == 0:
        return f"https://calendly.com/{slug}/intro-call", "calendly"
    if choice == 1:
        return f"https://meetings.hubspot.com/{slug}", "hubspot"
    calendar_id = (slug.replace("-", "") + "DemoCalendar0000000000")[:20]
    return f"https://api.leadconnectorhq.com/widget/booking/{calendar_id}", "ghl"


def seed_demo(connection: pg8000.native.Connection) -> int:
    """Insert the demo workspaces unless the database already has workspaces; returns how many were added."""
    if connection.run('SELECT count(*) FROM "Client"')[0][0]:
        return 0
    now = datetime.now(UTC).replace(tzinfo=None)
    added = 0
    for agency, count in AGENCIES:
        for index in range(count):
            client_id = f"{agency.split('-')[1]}-{index:02d}"
            url, link_type = demo_links(agency, index)
            _workspace(connection, client_id, agency, url, link_type, now)
            added += 1
    extras = (
        ("broken-unsupported", "https://example.com/book-a-call", "unknown", 30),
        ("broken-hubspot", f"https://meetings.hubspot.com/{BROKEN_HUBSPOT_SLUG}", "hubspot", 30),
        # A white-label booking page that is down. On 127.0.0.1 (nothing listens on port 9) so the
        # failure is real without a DNS query or a packet leaving the machine.
        ("broken-page-down", "http://127.0.0.1:9/widget/bookings/sales-team", "ghl", 30),
        ("long-meetings", "https://calendly.com/dune-long/strategy-session", "calendly", 60),
    )
    for client_id, url, link_type, minutes in extras:
        _workspace(connection, client_id, "agency-dune", url, link_type, now, minutes=minutes)
        added += 1
    return added


def _workspace(
    connection: pg8000.native.Connection,
    client_id: str,
    agency: str,
    url: str,
    link_type: str,
    now: datetime,
    *,
    minutes: int = 30,
) -> None:
    connection.run(
        'INSERT INTO "Client" ("id", "name", "userId", "updatedAt") VALUES (:id, :name, :agency, :now)',
        id=client_id,
        name=f"Demo workspace {client_id}",
        agency=agency,
        now=now,
    )
    connection.run(
        'INSERT INTO "CalendarLink" ("id", "clientId", "name", "url", "type", "isDefault", "updatedAt") '
        "VALUES (:id, :client, 'Book a call', :url, :type, true, :now)",
        id=f"link-{client_id}",
        client=client_id,
        url=url,
        type=link_type,
        now=now,
    )
    connection.run(
        'INSERT INTO "WorkspaceSettings" ("id", "clientId", "meetingDurationMinutes", "updatedAt") '
        "VALUES (:id, :client, :minutes, :now)",
        id=f"settings-{client_id}",
        client=client_id,
        minutes=minutes,
        now=now,
    )
