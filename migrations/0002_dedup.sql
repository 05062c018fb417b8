-- Publish idempotency: the (source, id) pairs accepted on a bus within its
-- dedup window, with the sequence they were stored under, so that a
-- retried publish is answered with the original sequence instead of being
-- stored twice. Rows past expires_at are ignored and removed in batches.
CREATE TABLE event_dedup (
    -- No foreign key: this table is written for every event, and a
    -- per-row RI check would cost more than the rare bus deletion that
    -- must remove its entries itself.
    bus_id     bigint NOT NULL,
    source     text NOT NULL,
    event_id   text NOT NULL,
    seq        bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (bus_id, source, event_id)
);
-- Entries are written in roughly expiry order; BRIN keeps the expiry sweep
-- cheap without a second B-tree insert per event.
CREATE INDEX event_dedup_expiry ON event_dedup USING brin (expires_at);
