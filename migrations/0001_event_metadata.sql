-- The platform's Prisma migration for event_metadata (COMPAT.md §3), for empty databases only.
CREATE TYPE "EventStatus" AS ENUM ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'DLQ');

CREATE TABLE "event_metadata" (
    "id"             TEXT NOT NULL,
    "event_id"       TEXT NOT NULL,
    "stream_id"      TEXT NOT NULL,
    "type"           TEXT NOT NULL,
    "source"         TEXT NOT NULL,
    "tenant_id"      TEXT NOT NULL,
    "correlation_id" TEXT,
    "status"         "EventStatus" NOT NULL DEFAULT 'PENDING',
    "attempts"       INTEGER NOT NULL DEFAULT 0,
    "last_error"     TEXT,
    "processed_at"   TIMESTAMP(3),
    "created_at"     TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "event_metadata_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "event_metadata_event_id_key" ON "event_metadata"("event_id");
CREATE INDEX "event_metadata_tenant_id_created_at_idx" ON "event_metadata"("tenant_id", "created_at");
CREATE INDEX "event_metadata_type_status_idx" ON "event_metadata"("type", "status");
CREATE INDEX "event_metadata_correlation_id_idx" ON "event_metadata"("correlation_id");
CREATE INDEX "event_metadata_status_created_at_idx" ON "event_metadata"("status", "created_at");
CREATE INDEX "event_metadata_tenant_id_status_created_at_idx" ON "event_metadata"("tenant_id", "status", "created_at");
