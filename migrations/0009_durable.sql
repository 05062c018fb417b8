-- cebus schema, version 9: durable subscriptions
-- (docs/decisions/0014-durable-subscriptions.md).
--
-- A subscription target is a queue over its rule's matches. Its state is a
-- frontier (every sequence at or below it has been examined: it is
-- outstanding, dead-lettered, acked, or did not match) plus one row per
-- outstanding event in sub_pending, so nothing grows per event forever: a
-- row lives from the delivery that creates it to the ack that removes it.

-- Settings of subscription targets; NULL means the default.
ALTER TABLE targets
    ADD COLUMN ack_deadline_s  integer CHECK (ack_deadline_s BETWEEN 1 AND 600),
    ADD COLUMN max_attempts    integer CHECK (max_attempts BETWEEN 1 AND 100),
    ADD COLUMN max_age_s       integer CHECK (max_age_s >= 1),
    ADD COLUMN max_outstanding integer CHECK (max_outstanding BETWEEN 1 AND 100000);

-- One row per subscription name of a bus, created with the first target of
-- that name and deleted with the last one (an update that keeps the name
-- keeps the state).
CREATE TABLE subscriptions (
    id       bigserial PRIMARY KEY,
    bus_id   bigint NOT NULL REFERENCES buses (id) ON DELETE CASCADE,
    name     text NOT NULL,
    -- Every sequence <= frontier has been examined; nothing above it has.
    frontier bigint NOT NULL,
    -- Random at creation and at every seek; bound into ack ids, so ids from
    -- before a seek, or of another subscription, do not apply.
    epoch    bigint NOT NULL,
    -- Rows claims added to sub_pending minus rows claims removed from it.
    claimed  bigint NOT NULL DEFAULT 0,
    UNIQUE (bus_id, name)
);

-- Rows acks removed, counted apart so that an ack never waits for the
-- subscription row lock that claims take. Outstanding = claimed - acked.
CREATE TABLE sub_acked (
    sub_id bigint PRIMARY KEY REFERENCES subscriptions (id) ON DELETE CASCADE,
    acked  bigint NOT NULL DEFAULT 0
);

-- Partition keys whose row an ack removed: the next claim unblocks the
-- key's next row.
CREATE TABLE sub_freed (
    sub_id bigint NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    pkey   bigint NOT NULL
);
CREATE INDEX sub_freed_sub ON sub_freed (sub_id);

-- The outstanding events: delivered (or waiting behind their partition
-- key) and not yet acked, dead-lettered or skipped by a seek.
CREATE TABLE sub_pending (
    sub_id      bigint NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    -- hashtextextended(partitionkey, 0); NULL without a partitionkey.
    pkey        bigint,
    -- Deliveries made so far.
    attempt     integer NOT NULL DEFAULT 0,
    -- The stream holding the lease; NULL when not leased.
    owner       bigint,
    -- Leased: when the lease ends (the ack deadline). Not leased: the
    -- earliest next delivery (now, or after a Nack's delay).
    due_at      timestamptz NOT NULL,
    -- Another row of the same partition key comes first.
    blocked     boolean NOT NULL DEFAULT false,
    received_at timestamptz NOT NULL,
    last_error  text CHECK (octet_length(last_error) <= 1024),
    PRIMARY KEY (sub_id, seq)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
CREATE INDEX sub_pending_due ON sub_pending (sub_id, due_at) WHERE NOT blocked;
CREATE INDEX sub_pending_key ON sub_pending (sub_id, pkey, seq) WHERE pkey IS NOT NULL;
CREATE INDEX sub_pending_owner ON sub_pending (owner) WHERE owner IS NOT NULL;

-- Events that were not acked within max_attempts deliveries or max_age.
-- They reference the log rather than copying the body, and go when the
-- event expires (maintenance), so the table is bounded like the log.
CREATE TABLE dead_letters (
    sub_id     bigint NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    bus_id     bigint NOT NULL,
    -- 1: max_attempts, 2: max_age.
    reason     smallint NOT NULL CHECK (reason BETWEEN 1 AND 2),
    last_error text CHECK (octet_length(last_error) <= 1024),
    attempts   integer NOT NULL,
    pkey       bigint,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    -- Marked by a redrive: the next claim moves it back to sub_pending.
    redrive    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (sub_id, seq)
);
CREATE INDEX dead_letters_redrive ON dead_letters (sub_id) WHERE redrive;
CREATE INDEX dead_letters_expires ON dead_letters (expires_at);

-- Subscription targets that exist already start at "latest", as new ones do.
INSERT INTO subscriptions (bus_id, name, frontier, epoch)
SELECT DISTINCT t.bus_id, t.subscription, b.next_seq - 1,
       (random() * 9.2e18)::bigint
FROM targets t JOIN buses b ON b.id = t.bus_id
WHERE t.subscription IS NOT NULL;
INSERT INTO sub_acked (sub_id) SELECT id FROM subscriptions;
