-- cebus schema, version 4: grants and event sources.
--
-- A grant lets another tenant (the grantee) PUBLISH, SUBSCRIBE or
-- MANAGE_RULES on one bus. permission holds the values of
-- cebus.v1.Permission: 1 publish, 2 subscribe, 3 manage rules. Deleting
-- the bus or the grantee tenant deletes its grants.
CREATE TABLE grants (
    bus_id         bigint NOT NULL REFERENCES buses (id) ON DELETE CASCADE,
    grantee_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    permission     smallint NOT NULL CHECK (permission BETWEEN 1 AND 3),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bus_id, grantee_id, permission)
);
CREATE INDEX grants_grantee ON grants (grantee_id);

-- The source prefixes a tenant may publish under (see
-- docs/decisions/0008-event-sources.md for when they are enforced).
CREATE TABLE event_sources (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix     text NOT NULL CHECK (octet_length(prefix) BETWEEN 1 AND 1024),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, prefix)
);
