-- cebus_append: appends one bus's share of a group commit in one call, so
-- a group commit costs one round trip (BEGIN, one call per bus, COMMIT, in
-- one pipeline) and its statements are planned once per session.
--
-- Takes the bus's counter row lock (held to COMMIT: appenders of one bus,
-- on any replica, commit in sequence order, so sequences never become
-- visible out of order), answers keys accepted within the bus's dedup
-- window, or earlier in this call, with their original sequence, assigns
-- the next sequences to the rest in row order, inserts them, and notifies
-- "cebus_events" with the bus id. A window of 0 turns deduplication off,
-- repeats within the call included.
--
-- Returns one element per row: the new sequence, or minus the original
-- sequence for a duplicate; NULL when the bus does not exist.
CREATE FUNCTION cebus_append(p_bus bigint, p_received bigint[], p_sources text[],
                             p_ids text[], p_types text[], p_bodies bytea[])
RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    v_next bigint;
    v_window integer;
    v_out bigint[];
    v_fresh integer := 0;
    r record;
BEGIN
    SELECT next_seq, dedup_window_seconds INTO v_next, v_window
      FROM buses WHERE id = p_bus FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_out := array_fill(0::bigint, ARRAY[cardinality(p_ids)]);
    FOR r IN
        SELECT u.ord::integer AS ord,
               (min(u.ord) OVER (PARTITION BY u.s, u.e))::integer AS first,
               -- One primary-key probe per key, never a scan of the window.
               (SELECT d.seq FROM event_dedup d
                 WHERE v_window > 0 AND d.bus_id = p_bus AND d.source = u.s
                   AND d.event_id = u.e AND d.expires_at > now()
                 LIMIT 1) AS old
          FROM unnest(p_sources, p_ids) WITH ORDINALITY AS u(s, e, ord)
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
    UPDATE buses SET next_seq = next_seq + v_fresh WHERE id = p_bus;
    INSERT INTO events (bus_id, seq, received_at, source, event_id, type, body)
    SELECT p_bus, v_out[u.ord], to_timestamp(u.rt / 1000000.0), u.s, u.e, u.t, u.b
      FROM unnest(p_received, p_sources, p_ids, p_types, p_bodies)
           WITH ORDINALITY AS u(rt, s, e, t, b, ord)
     WHERE v_out[u.ord] > 0;
    IF v_window > 0 THEN
        -- A key already present here is an expired one: replace it.
        INSERT INTO event_dedup (bus_id, source, event_id, seq, expires_at)
        SELECT p_bus, u.s, u.e, v_out[u.ord], now() + make_interval(secs => v_window)
          FROM unnest(p_sources, p_ids) WITH ORDINALITY AS u(s, e, ord)
         WHERE v_out[u.ord] > 0
        ON CONFLICT (bus_id, source, event_id)
        DO UPDATE SET seq = EXCLUDED.seq, expires_at = EXCLUDED.expires_at;
    END IF;
    PERFORM pg_notify('cebus_events', p_bus::text);
    RETURN v_out;
END;
$$;
