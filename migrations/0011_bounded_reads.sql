-- cebus schema, version 11: reads of the log stop after the page they return.
--
-- cebus_read asked for "seq > after ORDER BY seq LIMIT n". When the
-- partition's statistics were older than its rows (a partition filled
-- since the last ANALYZE, as a backlog is), the planner chose a bitmap scan
-- of every row after `after` followed by a sort, so a reader far behind the
-- head read its whole backlog for each page: draining a backlog was
-- quadratic. A bus's sequences are dense (0001), so the next n events are
-- the ones with after < seq <= after + n, and bounding the range makes
-- every plan read at most n rows. Only when that range holds no visible
-- event although the bus has later ones (its events expired, 0011) does
-- the read fall back to the open range, as before.
CREATE OR REPLACE FUNCTION cebus_read(p_bus bigint, p_after bigint, p_floor timestamptz,
                                      p_limit integer)
RETURNS TABLE (seq bigint, received_us bigint, body bytea, expires_us bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_top timestamptz;
    v_head bigint;
    v_query constant text :=
        'SELECT seq, (extract(epoch FROM received_at) * 1000000)::bigint, body,'
        ' (extract(epoch FROM expires_at) * 1000000)::bigint'
        ' FROM events WHERE bus_id = $1 AND seq > $2 AND seq <= $7 AND expires_at > $3'
        ' AND expires_at >= $4 AND expires_at <= $5 ORDER BY seq LIMIT $6';
BEGIN
    SELECT b.last_expires_at, b.next_seq - 1 INTO v_top, v_head FROM buses b WHERE b.id = p_bus;
    IF v_top IS NULL OR v_top <= now() OR v_head <= p_after THEN
        RETURN; -- no events, all of them expired, or none after p_after
    END IF;
    -- The floor loses a second: it only narrows the partitions read, and
    -- no rounding of the caller's may ever hide an event.
    RETURN QUERY EXECUTE v_query
        USING p_bus, p_after, now(), COALESCE(p_floor - interval '1 second', '-infinity'),
              v_top, p_limit, LEAST(v_head, p_after + p_limit);
    IF NOT FOUND AND v_head > p_after + p_limit THEN
        RETURN QUERY EXECUTE v_query
            USING p_bus, p_after, now(), COALESCE(p_floor - interval '1 second', '-infinity'),
                  v_top, p_limit, v_head;
    END IF;
END;
$$;
