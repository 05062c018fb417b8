-- cebus schema, version 6: per-tenant quotas and the live-server registry
-- that rate quotas and stream counts are shared through.
--
-- One row per tenant that has a quota set; a NULL column means the
-- server's default (CEBUS_QUOTA_*), so changing a default reaches every
-- tenant that did not set its own value. Deleting the tenant deletes it.
CREATE TABLE quotas (
    tenant_id          bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    events_per_second  bigint CHECK (events_per_second > 0),
    bytes_per_second   bigint CHECK (bytes_per_second > 0),
    burst_seconds      integer CHECK (burst_seconds > 0),
    rules_per_bus      integer CHECK (rules_per_bus > 0),
    subscriptions      integer CHECK (subscriptions > 0),
    concurrent_streams integer CHECK (concurrent_streams > 0),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- Each running cebusd refreshes its row every second (see
-- docs/decisions/0013-quotas.md). A server whose row is older than a few
-- seconds is gone: rate quotas are split among the live ones. Unlogged:
-- the rows are rewritten every second and worthless after a crash.
CREATE UNLOGGED TABLE server_heartbeats (
    server_id    text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);

-- The open Subscribe streams of each live server, per tenant, as of its
-- last heartbeat. Rows of tenants without streams are absent.
CREATE UNLOGGED TABLE server_streams (
    server_id text NOT NULL REFERENCES server_heartbeats (server_id) ON DELETE CASCADE,
    tenant_id bigint NOT NULL,
    streams   integer NOT NULL CHECK (streams > 0),
    PRIMARY KEY (server_id, tenant_id)
);
