-- The transactional outbox's table (docs/outbox.md), owned by this package and additive: the
-- platform's event_metadata is unchanged. A row is staged in the caller's own transaction next to
-- the event's event_metadata row (stream_id '0-0'), and deleted, in the transaction that sets
-- stream_id, once its entry is appended. This is what `prisma migrate` generates for the
-- EventOutbox model in docs/outbox.md, so a Prisma schema with that model sees no drift.
CREATE TABLE "event_outbox" (
    "event_id"   TEXT NOT NULL,
    "stream"     TEXT NOT NULL,
    "envelope"   TEXT NOT NULL,
    "trace"      TEXT,
    "stage_id"   TEXT NOT NULL,
    "position"   INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(6) NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT "event_outbox_pkey" PRIMARY KEY ("event_id")
);
CREATE INDEX "event_outbox_stream_created_at_idx" ON "event_outbox"("stream", "created_at");
