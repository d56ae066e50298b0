"""Test helpers to seed the application's tables and read the cache rows back."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pg8000.native

from devtools.pgserver import admin_connection


@dataclass(frozen=True)
class CacheRow:
    id: str
    client_id: str
    source: str
    calendar_link_id: str | None
    calendar_type: str
    calendar_url: str
    slot_duration: int
    range_start: datetime
    range_end: datetime
    slots: list[str]
    provider_meta: Any
    fetched_at: datetime
    stale_at: datetime
    last_error: str | None
    updated_at: datetime


class Seeder:
    """Writes rows the way the application (Prisma) would, and reads cache rows back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: pg8000.native.Connection = admin_connection(url)
        self.connection.run("SET TIME ZONE 'UTC'")

    def close(self) -> None:
        self.connection.close()

    def run(self, sql: str, **params: Any) -> list[list[Any]]:
        return self.connection.run(sql, **params) or []

    def client(self, client_id: str, user_id: str = "agency-1", *, created_at: datetime | None = None) -> str:
        self.run(
            'INSERT INTO "Client" ("id", "userId", "createdAt", "updatedAt") VALUES (:id, :user, :created, now())',
            id=client_id,
            user=user_id,
            created=(created_at or datetime.now(UTC)).replace(tzinfo=None),
        )
        return client_id

    def link(
        self,
        client_id: str,
        url: str,
        *,
        link_type: str = "unknown",
        is_default: bool = True,
        link_id: str | None = None,
        updated_at: datetime | None = None,
    ) -> str:
        link_id = link_id or f"link-{uuid.uuid4()}"
        self.run(
            'INSERT INTO "CalendarLink" ("id", "clientId", "name", "url", "type", "isDefault", "updatedAt") '
            "VALUES (:id, :client, 'Booking', :url, :type, :default, :updated)",
            id=link_id,
            client=client_id,
            url=url,
            type=link_type,
            default=is_default,
            updated=(updated_at or datetime.now(UTC)).replace(tzinfo=None),
        )
        return link_id

    def settings(self, client_id: str, **columns: Any) -> None:
        names = ["id", "clientId", "updatedAt", *columns]
        values = [":id", ":client", "now()"] + [
            f'CAST(:{name} AS "MeetingBookingProvider")' if name == "meetingBookingProvider" else f":{name}"
            for name in columns
        ]
        quoted = ", ".join(f'"{name}"' for name in names)
        self.run(
            f'INSERT INTO "WorkspaceSettings" ({quoted}) VALUES ({", ".join(values)})',
            id=f"settings-{client_id}",
            client=client_id,
            **columns,
        )

    def cache(
        self,
        client_id: str,
        *,
        slots: list[str],
        range_start: datetime,
        stale_at: datetime,
        last_error: str | None = None,
        calendar_link_id: str | None = None,
        calendar_url: str = "",
        calendar_type: str = "unknown",
        provider_meta: Any = None,
        source: str = "DEFAULT",
    ) -> None:
        self.run(
            'INSERT INTO "WorkspaceAvailabilityCache" ("id", "clientId", "availabilitySource", "calendarLinkId", '
            '"calendarType", "calendarUrl", "rangeStart", "rangeEnd", "slotsUtc", "providerMeta", "fetchedAt", '
            '"staleAt", "lastError", "updatedAt") VALUES (:id, :client, CAST(:source AS "AvailabilitySource"), '
            ":link, :type, :url, :start, :start, CAST(:slots AS jsonb), CAST(:meta AS jsonb), :start, :stale, "
            ":error, :start)",
            id=str(uuid.uuid4()),
            client=client_id,
            source=source,
            link=calendar_link_id,
            type=calendar_type,
            url=calendar_url,
            start=range_start.replace(tzinfo=None),
            slots=json.dumps(slots),
            meta=None if provider_meta is None else json.dumps(provider_meta),
            stale=stale_at.replace(tzinfo=None),
            error=last_error,
        )

    def rows(self, source: str = "DEFAULT") -> dict[str, CacheRow]:
        found = self.run(
            'SELECT "id", "clientId", CAST("availabilitySource" AS text), "calendarLinkId", "calendarType", '
            '"calendarUrl", "slotDurationMinutes", "rangeStart", "rangeEnd", "slotsUtc", "providerMeta", '
            '"fetchedAt", "staleAt", "lastError", "updatedAt" FROM "WorkspaceAvailabilityCache" '
            'WHERE "availabilitySource" = CAST(:source AS "AvailabilitySource")',
            source=source,
        )
        rows = {}
        for values in found:
            for index in (7, 8, 11, 12, 14):
                values[index] = values[index].replace(tzinfo=UTC)
            rows[values[1]] = CacheRow(*values)
        return rows

    def row(self, client_id: str, source: str = "DEFAULT") -> CacheRow:
        return self.rows(source)[client_id]
