-- The application's tables that availability-cron reads and writes, exactly as Prisma creates them
-- (names, types, defaults, keys, indexes, enums; see ../shared/spec/prisma-ddl.sql). Idempotent:
-- safe to apply to an empty database or again to one that has them. Used for local runs and tests
-- only: the function itself never runs DDL against the application's database.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'AvailabilitySource' AND n.nspname = current_schema()) THEN
        CREATE TYPE "AvailabilitySource" AS ENUM ('DEFAULT', 'DIRECT_BOOK');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'MeetingBookingProvider' AND n.nspname = current_schema()) THEN
        CREATE TYPE "MeetingBookingProvider" AS ENUM ('GHL', 'CALENDLY');
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS "Client" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL DEFAULT '',
    "userId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Client_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "CalendarLink" (
    "id" TEXT NOT NULL,
    "clientId" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "publicUrl" TEXT,
    "type" TEXT NOT NULL,
    "isDefault" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "CalendarLink_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "WorkspaceSettings" (
    "id" TEXT NOT NULL,
    "clientId" TEXT NOT NULL,
    "timezone" TEXT,
    "meetingDurationMinutes" INTEGER NOT NULL DEFAULT 30,
    "meetingBookingProvider" "MeetingBookingProvider" NOT NULL DEFAULT 'GHL',
    "ghlDefaultCalendarId" TEXT,
    "ghlDirectBookCalendarId" TEXT,
    "calendlyEventTypeLink" TEXT,
    "calendlyEventTypeUri" TEXT,
    "calendlyDirectBookEventTypeLink" TEXT,
    "calendlyDirectBookEventTypeUri" TEXT,
    "calendarSlotsToShow" INTEGER DEFAULT 3,
    "calendarLookAheadDays" INTEGER DEFAULT 28,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "WorkspaceSettings_pkey" PRIMARY KEY ("id")
);

CREATE TABLE IF NOT EXISTS "WorkspaceAvailabilityCache" (
    "id" TEXT NOT NULL,
    "clientId" TEXT NOT NULL,
    "availabilitySource" "AvailabilitySource" NOT NULL DEFAULT 'DEFAULT',
    "calendarLinkId" TEXT,
    "calendarType" TEXT NOT NULL,
    "calendarUrl" TEXT NOT NULL,
    "slotDurationMinutes" INTEGER NOT NULL DEFAULT 30,
    "rangeStart" TIMESTAMP(3) NOT NULL,
    "rangeEnd" TIMESTAMP(3) NOT NULL,
    "slotsUtc" JSONB NOT NULL,
    "providerMeta" JSONB,
    "fetchedAt" TIMESTAMP(3) NOT NULL,
    "staleAt" TIMESTAMP(3) NOT NULL,
    "lastError" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "WorkspaceAvailabilityCache_pkey" PRIMARY KEY ("id")
);

CREATE INDEX IF NOT EXISTS "Client_userId_idx" ON "Client"("userId");
CREATE INDEX IF NOT EXISTS "CalendarLink_clientId_idx" ON "CalendarLink"("clientId");
CREATE INDEX IF NOT EXISTS "CalendarLink_isDefault_idx" ON "CalendarLink"("isDefault");
CREATE UNIQUE INDEX IF NOT EXISTS "WorkspaceSettings_clientId_key" ON "WorkspaceSettings"("clientId");
CREATE INDEX IF NOT EXISTS "WorkspaceAvailabilityCache_clientId_idx" ON "WorkspaceAvailabilityCache"("clientId");
CREATE INDEX IF NOT EXISTS "WorkspaceAvailabilityCache_staleAt_idx" ON "WorkspaceAvailabilityCache"("staleAt");
CREATE INDEX IF NOT EXISTS "WorkspaceAvailabilityCache_calendarLinkId_idx" ON "WorkspaceAvailabilityCache"("calendarLinkId");
CREATE UNIQUE INDEX IF NOT EXISTS "WorkspaceAvailabilityCache_clientId_availabilitySource_key"
    ON "WorkspaceAvailabilityCache"("clientId", "availabilitySource");

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'CalendarLink_clientId_fkey') THEN
        ALTER TABLE "CalendarLink" ADD CONSTRAINT "CalendarLink_clientId_fkey" FOREIGN KEY ("clientId")
            REFERENCES "Client"("id") ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'WorkspaceSettings_clientId_fkey') THEN
        ALTER TABLE "WorkspaceSettings" ADD CONSTRAINT "WorkspaceSettings_clientId_fkey" FOREIGN KEY ("clientId")
            REFERENCES "Client"("id") ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'WorkspaceAvailabilityCache_clientId_fkey') THEN
        ALTER TABLE "WorkspaceAvailabilityCache" ADD CONSTRAINT "WorkspaceAvailabilityCache_clientId_fkey"
            FOREIGN KEY ("clientId") REFERENCES "Client"("id") ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'WorkspaceAvailabilityCache_calendarLinkId_fkey') THEN
        ALTER TABLE "WorkspaceAvailabilityCache" ADD CONSTRAINT "WorkspaceAvailabilityCache_calendarLinkId_fkey"
            FOREIGN KEY ("calendarLinkId") REFERENCES "CalendarLink"("id") ON DELETE SET NULL ON UPDATE CASCADE;
    END IF;
END
$$;
