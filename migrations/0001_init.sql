-- cebus schema, version 1: tenants, API keys, buses, rules, targets and the
-- event log. Migrations are forward-only; cebusd applies pending files in
-- order, each in its own transaction, under an advisory lock.

CREATE TABLE tenants (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    display_name text NOT NULL DEFAULT '',
    disabled     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- The platform operator's own tenant: platform admin keys belong to it and
-- the platform's official apps publish on its buses.
INSERT INTO tenants (name, display_name) VALUES ('platform', 'Platform');

-- Keys are stored as SHA-256 hashes; the prefix is a non-secret identifier
-- for lists and logs. role: 1 platform admin, 2 tenant admin, 3 publisher,
-- 4 subscriber (the values of cebus.v1.Role).
CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix      text NOT NULL UNIQUE,
    hash        bytea NOT NULL UNIQUE,
    role        smallint NOT NULL CHECK (role BETWEEN 1 AND 4),
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- next_seq is the bus's sequence counter. Appenders take its row lock
-- (UPDATE ... RETURNING) inside the transaction that inserts the events, so
-- transactions on one bus commit in sequence order and a reader never sees
-- a sequence below one it has already seen appear later.
CREATE TABLE buses (
    id                   bigserial PRIMARY KEY,
    tenant_id            bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    retention_hours      integer NOT NULL DEFAULT 168 CHECK (retention_hours > 0),
    dedup_window_seconds integer NOT NULL DEFAULT 300 CHECK (dedup_window_seconds >= 0),
    next_seq             bigint NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE rules (
    id          bigserial PRIMARY KEY,
    bus_id      bigint NOT NULL REFERENCES buses (id) ON DELETE CASCADE,
    name        text NOT NULL,
    pattern     text NOT NULL,
    description text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bus_id, name)
);

-- kind: 1 subscription, 2 http, 3 bus. A subscription name is unique among
-- the subscription targets of one bus.
CREATE TABLE targets (
    id           bigserial PRIMARY KEY,
    rule_id      bigint NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    bus_id       bigint NOT NULL REFERENCES buses (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    kind         smallint NOT NULL CHECK (kind BETWEEN 1 AND 3),
    subscription text,
    url          text,
    target_bus   text,
    UNIQUE (rule_id, position)
);
CREATE UNIQUE INDEX targets_subscription ON targets (bus_id, subscription)
    WHERE subscription IS NOT NULL;

-- The event log. body is the stored CloudEvent in protobuf form, with the
-- server-stamped extensions; it is bytea so that inserts never parse JSON.
-- Partitioned by receive time so that retention drops whole partitions.
CREATE TABLE events (
    bus_id      bigint NOT NULL,
    seq         bigint NOT NULL,
    received_at timestamptz NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    body        bytea NOT NULL
) PARTITION BY RANGE (received_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_bus_seq ON events (bus_id, seq);
-- Only start-at-time reads use receive time; rows arrive in time order, so
-- a BRIN index serves them at a fraction of a B-tree's cost per insert.
CREATE INDEX events_received ON events USING brin (received_at);
