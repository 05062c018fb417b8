-- Publish deduplication is per publishing tenant: the key of a bus's
-- dedup window becomes (tenant, source, id). Keyed by (source, id) alone,
-- a tenant holding only PUBLISH on another tenant's bus could send an
-- event with the (source, id) of one the owner published and learn from the
-- "duplicate" answer and its sequence that the owner had sent it, while its
-- own event was dropped. Retries still find their original: a retry comes
-- from the tenant that published.

ALTER TABLE event_dedup ADD COLUMN tenant_id bigint;
-- Entries written before this migration are credited to the bus owner, who
-- publishes most events; a grantee's retry within the window of such an
-- entry is stored again, once.
UPDATE event_dedup d SET tenant_id = b.tenant_id FROM buses b WHERE b.id = d.bus_id;
DELETE FROM event_dedup WHERE tenant_id IS NULL;
ALTER TABLE event_dedup ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE event_dedup DROP CONSTRAINT event_dedup_pkey;
ALTER TABLE event_dedup ADD PRIMARY KEY (bus_id, tenant_id, source, event_id);

-- cebus_append now takes the publishing tenant of each row (p_tenants),
-- otherwise it is 0007's: see there for sequences, expiries and locks.
CREATE FUNCTION cebus_append(p_bus bigint, p_tenants bigint[], p_received bigint[],
                             p_sources text[], p_ids text[], p_types text[], p_bodies bytea[])
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_next bigint;
    v_window integer;
    v_retention interval;
    v_floor timestamptz;
    v_out bigint[];
    v_fresh integer := 0;
    r record;
BEGIN
    SELECT next_seq, dedup_window_seconds, make_interval(hours => retention_hours),
           last_expires_at
      INTO v_next, v_window, v_retention, v_floor
      FROM buses WHERE id = p_bus FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_out := array_fill(0::bigint, ARRAY[cardinality(p_ids)]);
    FOR r IN
        SELECT u.ord::integer AS ord,
               (min(u.ord) OVER (PARTITION BY u.tn, u.s, u.e))::integer AS first,
               -- One primary-key probe per key, never a scan of the window.
               (SELECT d.seq FROM event_dedup d
                 WHERE v_window > 0 AND d.bus_id = p_bus AND d.tenant_id = u.tn
                   AND d.source = u.s AND d.event_id = u.e AND d.expires_at > now()
                 LIMIT 1) AS old
          FROM unnest(p_tenants, p_sources, p_ids) WITH ORDINALITY AS u(tn, s, e, ord)
         ORDER BY u.ord
    LOOP
        IF v_window > 0 AND r.first < r.ord THEN
            v_out[r.ord] := -abs(v_out[r.first]);
        ELSIF r.old IS NOT NULL THEN
            v_out[r.ord] := -r.old;
        ELSE
            v_out[r.ord] := v_next + v_fresh;
            v_fresh := v_fresh + 1;
        END IF;
    END LOOP;
    IF v_fresh = 0 THEN
        RETURN v_out;
    END IF;
    -- Expiries never decrease along the bus's sequences (see the top of
    -- this file): each is at least the previous one's.
    UPDATE buses SET next_seq = next_seq + v_fresh,
           last_expires_at = greatest(v_floor,
               (SELECT max(to_timestamp(u.rt / 1000000.0)) + v_retention
                  FROM unnest(p_received) WITH ORDINALITY AS u(rt, ord)
                 WHERE v_out[u.ord] > 0))
     WHERE id = p_bus;
    INSERT INTO events (bus_id, seq, received_at, expires_at, source, event_id, type, body)
    SELECT p_bus, v_out[u.ord], to_timestamp(u.rt / 1000000.0),
           greatest(v_floor, max(to_timestamp(u.rt / 1000000.0) + v_retention)
                                 OVER (ORDER BY u.ord)),
           u.s, u.e, u.t, u.b
      FROM unnest(p_received, p_sources, p_ids, p_types, p_bodies)
           WITH ORDINALITY AS u(rt, s, e, t, b, ord)
     WHERE v_out[u.ord] > 0;
    IF v_window > 0 THEN
        -- A key already present here is an expired one: replace it.
        INSERT INTO event_dedup (bus_id, tenant_id, source, event_id, seq, expires_at)
        SELECT p_bus, u.tn, u.s, u.e, v_out[u.ord], now() + make_interval(secs => v_window)
          FROM unnest(p_tenants, p_sources, p_ids) WITH ORDINALITY AS u(tn, s, e, ord)
         WHERE v_out[u.ord] > 0
        ON CONFLICT (bus_id, tenant_id, source, event_id)
        DO UPDATE SET seq = EXCLUDED.seq, expires_at = EXCLUDED.expires_at;
    END IF;
    PERFORM pg_notify('cebus_events', p_bus::text);
    RETURN v_out;
END;
$$;

-- The six-argument form, for servers of the previous version still running
-- during a rolling upgrade: it credits every row to the bus owner, as the
-- entries above.
DROP FUNCTION cebus_append(bigint, bigint[], text[], text[], text[], bytea[]);
CREATE FUNCTION cebus_append(p_bus bigint, p_received bigint[], p_sources text[],
                             p_ids text[], p_types text[], p_bodies bytea[])
RETURNS bigint[]
LANGUAGE sql AS $$
    SELECT cebus_append(p_bus,
                        array_fill((SELECT tenant_id FROM buses WHERE id = p_bus),
                                   ARRAY[cardinality(p_ids)]),
                        p_received, p_sources, p_ids, p_types, p_bodies);
$$;
