-- Retention by dropping whole partitions (docs/decisions/0011-retention.md).
--
-- The event log is re-partitioned by expiry time: expires_at = received_at
-- + the bus's retention at append, but never earlier than the expiry of the
-- bus's previous event (buses.last_expires_at): a bus's expiries never
-- decrease along its sequences, so its log always expires from the oldest
-- end and a reader at sequence N knows that every later event expires no
-- earlier than event N, which lets tail reads skip older partitions. One
-- partition per UTC day of expiry,
-- named events_eYYYYMMDD, holds the events that expire that day, whatever
-- their bus's retention; it is dropped as a whole once the day is over, so
-- an event outlives its expiry by at most one day plus one maintenance
-- interval, and reads never return it (they filter expires_at > now()).
--
-- Changing a partition key needs a new table: the old one is renamed, its
-- unexpired events are copied over, and it is dropped.

ALTER TABLE events RENAME TO events_v1;
ALTER TABLE events_default RENAME TO events_v1_default;
-- IF EXISTS: databases created by early builds named the receive-time index
-- differently; whatever it is called, it goes with events_v1.
ALTER INDEX IF EXISTS events_bus_seq RENAME TO events_v1_bus_seq;
ALTER INDEX IF EXISTS events_received RENAME TO events_v1_received;

-- The expiry of the bus's last appended event. Updated under the counter
-- row lock that appends already take.
ALTER TABLE buses ADD COLUMN last_expires_at timestamptz;

CREATE TABLE events (
    bus_id      bigint NOT NULL,
    seq         bigint NOT NULL,
    received_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    source      text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    body        bytea NOT NULL
) PARTITION BY RANGE (expires_at);
-- A safety net, kept empty: partitions are created ahead of the expiries
-- that appends produce (cebus_maintain_partitions, and
-- cebus_partitions_for_retention before a bus gets a retention). Rows found
-- here are moved into the partition created for them.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Per bus, the oldest retained sequence: every event of the bus with a
-- lower sequence has expired (sequences of a bus are dense, so a reader
-- asking for one below it has lost events). Kept apart from buses so that
-- maintenance never takes the bus row locks that appenders hold; a row
-- missing here means 1. Rows of deleted buses are removed by maintenance.
CREATE TABLE event_retention (
    bus_id     bigint PRIMARY KEY,
    oldest_seq bigint NOT NULL
);

-- Creates the missing day partitions for expiries from p_from to p_to
-- (both included), moving into each any rows the default partition holds
-- for its range (attaching a range the default holds rows for would fail).
-- Serialized by a transaction-scoped advisory lock, taken only when a
-- partition is missing. Returns how many partitions it created.
CREATE FUNCTION cebus_ensure_partitions(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_day timestamptz := date_trunc('day', p_from, 'UTC');
    v_last timestamptz := date_trunc('day', p_to, 'UTC');
    v_name text;
    v_moved bigint;
    v_created integer := 0;
    v_locked boolean := false;
BEGIN
    WHILE v_day <= v_last LOOP
        v_name := 'events_e' || to_char(v_day AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass(v_name) IS NULL THEN
            IF NOT v_locked THEN
                -- 0x63656275 ("cebu"), 2: partition creation.
                PERFORM pg_advisory_xact_lock(1667588725, 2);
                v_locked := true;
            END IF;
        END IF;
        -- Checked again under the lock: another session may have made it.
        IF v_locked AND to_regclass(v_name) IS NULL THEN
            CREATE TEMP TABLE cebus_moving (LIKE events) ON COMMIT DROP;
            WITH m AS (DELETE FROM events_default
                        WHERE expires_at >= v_day AND expires_at < v_day + interval '24 hours'
                       RETURNING *)
            INSERT INTO cebus_moving SELECT * FROM m;
            GET DIAGNOSTICS v_moved = ROW_COUNT;
            EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                           v_name, v_day, v_day + interval '24 hours');
            IF v_moved > 0 THEN
                INSERT INTO events SELECT * FROM cebus_moving;
                RAISE LOG 'cebus: moved % events from events_default into %', v_moved, v_name;
            END IF;
            DROP TABLE cebus_moving;
            v_created := v_created + 1;
        END IF;
        v_day := v_day + interval '24 hours';
    END LOOP;
    RETURN v_created;
END;
$$;

-- Partition maintenance, run by one session at a time (a transaction-
-- scoped try-lock: a replica that does not get it skips the run; the
-- holder does the work for all). As of p_now (tests move it forward):
--   1. creates the partitions for the expiries of the next two days'
--      appends, for every retention some bus has (and the default 168 h);
--   2. records per bus the oldest retained sequence: the lowest sequence
--      not expired at p_now, or the bus's next sequence when none is left
--      (reading forward from the last recorded value, so each run reads
--      only what expired since the last one);
--   3. drops the partitions wholly expired at p_now (upper bound <= p_now),
--      and deletes expired rows from the default partition (empty unless
--      something went wrong).
-- The drops come last, so that the exclusive lock they take on events is
-- held for the shortest time. Creating and dropping partitions lock events
-- exclusively; while maintenance waits for that lock, appenders queue
-- behind it, and one of them may hold a bus row another waits for: a
-- deadlock that PostgreSQL would break after deadlock_timeout (1 s) by
-- aborting whichever session checks, perhaps an append. lock_timeout 200 ms,
-- below deadlock_timeout, makes maintenance always the one that gives up
-- (the run fails, and the server retries it a few seconds later), and bounds
-- the stall it can cause appends.
-- Returns skipped (another session holds the lock), created, dropped.
CREATE FUNCTION cebus_maintain_partitions(p_now timestamptz, OUT skipped boolean,
                                          OUT created integer, OUT dropped integer)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    skipped := false;
    created := 0;
    dropped := 0;
    -- 0x63656275 ("cebu"), 3: partition maintenance.
    IF NOT pg_try_advisory_xact_lock(1667588725, 3) THEN
        skipped := true;
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '200ms', true);

    FOR r IN SELECT DISTINCT h FROM (SELECT retention_hours AS h FROM buses
                                     UNION ALL SELECT 168) x ORDER BY h
    LOOP
        created := created + cebus_ensure_partitions(
            p_now + make_interval(hours => r.h),
            p_now + make_interval(hours => r.h) + interval '2 days');
    END LOOP;

    DELETE FROM event_retention t WHERE NOT EXISTS (SELECT 1 FROM buses b WHERE b.id = t.bus_id);
    INSERT INTO event_retention AS t (bus_id, oldest_seq)
    SELECT b.id,
           COALESCE((SELECT min(e.seq) FROM events e
                      WHERE e.bus_id = b.id AND e.seq >= COALESCE(o.oldest_seq, 1)
                        AND e.expires_at > p_now),
                    b.next_seq)
      FROM buses b LEFT JOIN event_retention o ON o.bus_id = b.id
    ON CONFLICT (bus_id) DO UPDATE SET oldest_seq = EXCLUDED.oldest_seq
     WHERE t.oldest_seq < EXCLUDED.oldest_seq;

    -- Only a fault leaves rows in the default partition; expired ones would
    -- otherwise never go.
    DELETE FROM events_default WHERE expires_at <= p_now;

    FOR r IN
        SELECT c.oid::regclass AS part
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'events'::regclass
           AND c.relname ~ '^events_e[0-9]{8}$'
           AND (to_date(substr(c.relname, 9), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC')
               + interval '24 hours' <= p_now
         ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %s', r.part);
        dropped := dropped + 1;
    END LOOP;
END;
$$;

-- The partitions a retention of p_hours needs for the next two days of
-- appends, for a bus about to get that retention, so that its appends do
-- not land in the default partition. Called in a transaction of its own,
-- before the bus row changes: creating a partition locks events
-- exclusively, and waiting for that while holding a bus row an appender
-- waits for would deadlock. Gives up after 200 ms (see lock_timeout in
-- cebus_maintain_partitions) and returns -1; the next maintenance run
-- then creates them and moves any rows the default partition took.
CREATE FUNCTION cebus_partitions_for_retention(p_hours integer)
RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', '200ms', true);
    RETURN cebus_ensure_partitions(now() + make_interval(hours => p_hours),
                                   now() + make_interval(hours => p_hours) + interval '2 days');
EXCEPTION WHEN lock_not_available THEN
    RETURN -1;
END;
$$;

-- The existing events: partitions for their expiries, then the copy. The
-- already expired ones are not copied.
CREATE TEMP TABLE cebus_expiries ON COMMIT DROP AS
SELECT o.bus_id, o.seq,
       max(o.received_at + make_interval(hours => b.retention_hours))
           OVER (PARTITION BY o.bus_id ORDER BY o.seq) AS expires_at
  FROM events_v1 o JOIN buses b ON b.id = o.bus_id;
UPDATE buses b SET last_expires_at = x.e
  FROM (SELECT bus_id, max(expires_at) AS e FROM cebus_expiries GROUP BY bus_id) x
 WHERE b.id = x.bus_id;
SELECT cebus_ensure_partitions(d, d)
  FROM (SELECT DISTINCT date_trunc('day', expires_at, 'UTC') AS d
          FROM cebus_expiries WHERE expires_at > now()) x;
INSERT INTO events (bus_id, seq, received_at, expires_at, source, event_id, type, body)
SELECT o.bus_id, o.seq, o.received_at, x.expires_at, o.source, o.event_id, o.type, o.body
  FROM events_v1 o JOIN cebus_expiries x ON x.bus_id = o.bus_id AND x.seq = o.seq
 WHERE x.expires_at > now();
INSERT INTO event_retention (bus_id, oldest_seq)
SELECT b.id, COALESCE((SELECT min(seq) FROM events e WHERE e.bus_id = b.id), b.next_seq)
  FROM buses b;
DROP TABLE events_v1;

-- Indexes after the copy (cheaper than maintaining them row by row).
-- Partitions created later get them too.
CREATE INDEX events_bus_seq ON events (bus_id, seq);
-- Start-at-time reads use receive time; within a partition rows arrive in
-- time order, so a BRIN index serves them at a fraction of a B-tree's cost.
CREATE INDEX events_received ON events USING brin (received_at);

-- Forward reads of a bus's log: up to p_limit events with sequence >
-- p_after that have not expired, in sequence order. A bus's expiries never
-- decrease along its sequences, so every event after p_after expires at or
-- after p_floor when the caller knows the expiry of the event at p_after
-- (NULL: unknown), and no later than buses.last_expires_at. Both bounds,
-- and now(), go into the statement as constants, so the planner reads only
-- the partitions between them (usually one or two) rather than planning and
-- probing every partition's index. The function is STABLE: the counter row
-- and the events are read in one snapshot.
CREATE FUNCTION cebus_read(p_bus bigint, p_after bigint, p_floor timestamptz, p_limit integer)
RETURNS TABLE (seq bigint, received_us bigint, body bytea, expires_us bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_top timestamptz;
BEGIN
    SELECT b.last_expires_at INTO v_top FROM buses b WHERE b.id = p_bus;
    IF v_top IS NULL OR v_top <= now() THEN
        RETURN; -- no events, or all of them expired
    END IF;
    RETURN QUERY EXECUTE
        'SELECT seq, (extract(epoch FROM received_at) * 1000000)::bigint, body,'
        ' (extract(epoch FROM expires_at) * 1000000)::bigint'
        ' FROM events WHERE bus_id = $1 AND seq > $2 AND expires_at > $3'
        ' AND expires_at >= $4 AND expires_at <= $5 ORDER BY seq LIMIT $6'
        -- The floor loses a second: it only narrows the partitions read,
        -- and no rounding of the caller's may ever hide an event.
        USING p_bus, p_after, now(), COALESCE(p_floor - interval '1 second', '-infinity'),
              v_top, p_limit;
END;
$$;

-- Appends stamp each event's expiry from the bus's retention at append,
-- never earlier than the bus's previous event's.
CREATE OR REPLACE FUNCTION cebus_append(p_bus bigint, p_received bigint[], p_sources text[],
                                        p_ids text[], p_types text[], p_bodies bytea[])
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

-- Partitions for the existing buses' next appends.
SELECT cebus_maintain_partitions(now());
