-- cebus schema, version 10: dead letters, seek and the maintenance sweep of
-- durable subscriptions (docs/decisions/0014-durable-subscriptions.md,
-- "Redelivery, dead letters, seek, retention").
--
-- Every function takes p_now, the time it runs as of; the server passes
-- now(), tests move it forward without waiting (as 0007's maintenance).

-- The oldest retained sequence of a bus as of p_now: every event of the bus
-- below it has expired (0011). Reads forward from the value maintenance
-- last recorded, so only what expired since is skipped over.
CREATE FUNCTION cebus_bus_oldest(p_bus bigint, p_now timestamptz)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT COALESCE((SELECT min(e.seq) FROM events e
                      WHERE e.bus_id = b.id
                        AND e.seq >= COALESCE((SELECT oldest_seq FROM event_retention
                                                WHERE bus_id = b.id), 1)
                        AND e.expires_at > p_now),
                    b.next_seq)
      FROM buses b WHERE b.id = p_bus;
$$;

-- Moves the due rows of subscription p_sub that are past their limits to
-- dead_letters, by the rule of step 2 of cebus_sub_claim (0009), for the
-- subscriptions no claim visits: a row not blocked behind its partition key, due at p_now
-- (its lease ended, its Nack delay passed, or it was released), that was
-- delivered max_attempts times (reason 1) or received more than max_age
-- ago (reason 2). last_error is the row's own (a Nack's), else "ack
-- deadline passed". A row whose event expired is dropped instead: there is
-- nothing left to list or redrive. Rows an ack holds are skipped (it is
-- about to remove them). The partition keys of the rows removed go to
-- sub_freed, so the next claim unblocks their next row, and claimed counts
-- the removal (0014: claimed counts what claims, and this step of them,
-- take out of sub_pending).
-- REQUIRES: the caller holds the subscription row lock, as a claim does.
-- Returns the rows dead-lettered.
CREATE FUNCTION cebus_sub_dead_letter_due(p_sub bigint, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_bus bigint;
    v_attempts integer;
    v_age interval;
    v_dead integer;
    v_gone integer;
BEGIN
    SELECT s.bus_id, COALESCE(t.max_attempts, 5),
           CASE WHEN t.max_age_s IS NULL THEN NULL
                ELSE make_interval(secs => t.max_age_s) END
      INTO v_bus, v_attempts, v_age
      FROM subscriptions s
      JOIN targets t ON t.bus_id = s.bus_id AND t.subscription = s.name
     WHERE s.id = p_sub;
    IF NOT FOUND THEN
        RETURN 0; -- no target of that name any more: the row is going
    END IF;
    -- One statement: every data-modifying part runs to completion once.
    WITH d AS (
        DELETE FROM sub_pending p
         WHERE p.sub_id = p_sub
           AND p.seq IN (SELECT q.seq FROM sub_pending q
                          WHERE q.sub_id = p_sub AND NOT q.blocked AND q.due_at <= p_now
                            AND (q.attempt >= v_attempts
                                 OR (v_age IS NOT NULL AND q.received_at + v_age <= p_now))
                            FOR UPDATE SKIP LOCKED)
        RETURNING p.seq, p.pkey, p.attempt, p.last_error),
    x AS (
        SELECT d.*, (SELECT e.expires_at FROM events e
                      WHERE e.bus_id = v_bus AND e.seq = d.seq AND e.expires_at > p_now)
                    AS expires_at
          FROM d),
    ins AS (
        INSERT INTO dead_letters (sub_id, seq, bus_id, reason, last_error, attempts, pkey,
                                  expires_at, created_at)
        SELECT p_sub, x.seq, v_bus, CASE WHEN x.attempt >= v_attempts THEN 1 ELSE 2 END,
               COALESCE(x.last_error, 'ack deadline passed'), x.attempt, x.pkey,
               x.expires_at, p_now
          FROM x WHERE x.expires_at IS NOT NULL
        -- A seek back may deliver, and dead-letter, an event again.
        ON CONFLICT (sub_id, seq) DO UPDATE
           SET reason = EXCLUDED.reason, last_error = EXCLUDED.last_error,
               attempts = EXCLUDED.attempts, expires_at = EXCLUDED.expires_at,
               created_at = EXCLUDED.created_at, redrive = false
        RETURNING 1),
    fr AS (
        INSERT INTO sub_freed (sub_id, pkey)
        SELECT DISTINCT p_sub, x.pkey FROM x WHERE x.pkey IS NOT NULL
        RETURNING 1)
    SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM x) INTO v_dead, v_gone;
    IF v_gone > 0 THEN
        UPDATE subscriptions SET claimed = claimed - v_gone WHERE id = p_sub;
    END IF;
    RETURN v_dead;
END;
$$;

-- Moves subscription p_sub (0014, Seek): under its row lock, resolves the
-- target (p_to 1: the latest event, i.e. only events appended from now on;
-- 2: the oldest retained event; 3: sequence p_seq; 4: the first retained
-- event received at or after p_time, the head when there is none), deletes
-- its outstanding rows and freed keys, sets frontier = target - 1, counts
-- no row outstanding (claimed = acked), draws a new epoch so that earlier
-- ack ids no longer apply, and notifies "cebus_subs" with its id. Dead
-- letters stay.
-- Returns known = false when the subscription does not exist; next_seq
-- NULL and oldest set when p_seq is below the oldest retained sequence
-- (nothing changed); else next_seq, the first sequence examined next.
CREATE FUNCTION cebus_sub_seek(p_sub bigint, p_to integer, p_seq bigint, p_time timestamptz,
                               p_now timestamptz, OUT known boolean, OUT next_seq bigint,
                               OUT oldest bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_bus bigint;
    v_frontier bigint;
BEGIN
    SELECT s.bus_id INTO v_bus FROM subscriptions s WHERE s.id = p_sub FOR UPDATE;
    known := v_bus IS NOT NULL;
    IF NOT known THEN
        RETURN;
    END IF;
    oldest := cebus_bus_oldest(v_bus, p_now);
    IF p_to = 1 THEN
        -- The committed counter: every sequence still in flight is above it.
        SELECT b.next_seq - 1 INTO v_frontier FROM buses b WHERE b.id = v_bus;
    ELSIF p_to = 2 THEN
        v_frontier := oldest - 1;
    ELSIF p_to = 3 THEN
        IF p_seq < oldest THEN
            RETURN;
        END IF;
        v_frontier := p_seq - 1;
    ELSIF p_to = 4 THEN
        SELECT COALESCE((SELECT min(e.seq) - 1 FROM events e
                          WHERE e.bus_id = v_bus AND e.received_at >= p_time
                            AND e.expires_at > p_now),
                        (SELECT b.next_seq - 1 FROM buses b WHERE b.id = v_bus))
          INTO v_frontier;
        -- An event received after p_time may have expired before an older
        -- one was received (retention changed): never start below oldest.
        v_frontier := greatest(v_frontier, oldest - 1);
    ELSE
        RAISE EXCEPTION 'cebus_sub_seek: unknown target %', p_to;
    END IF;
    -- Rows an ack holds are waited for: the ack either removed them (and
    -- counted them in sub_acked, read below) or finds them gone.
    DELETE FROM sub_pending WHERE sub_id = p_sub;
    DELETE FROM sub_freed WHERE sub_id = p_sub;
    UPDATE subscriptions
       SET frontier = v_frontier,
           claimed = COALESCE((SELECT a.acked FROM sub_acked a WHERE a.sub_id = p_sub), 0),
           epoch = (random() * 9.2e18)::bigint
     WHERE id = p_sub;
    PERFORM pg_notify('cebus_subs', p_sub::text);
    next_seq := v_frontier + 1;
END;
$$;

-- Maintenance of durable subscriptions, once a minute, by one session at a
-- time: the advisory try-lock of 0007's partition maintenance (a session
-- that does not get it skips the run). As of p_now:
--   1. dead-letters the rows past their limits (cebus_sub_dead_letter_due)
--      of every subscription that has some, also those no consumer claims,
--      so that dead letters appear within a minute without consumers; a
--      subscription whose row a claim holds is skipped (the claim does the
--      same work);
--   2. deletes the dead letters whose event has expired, so that the table
--      is bounded by retention like the log.
-- Returns skipped, dead (rows dead-lettered) and expired (dead letters
-- deleted).
CREATE FUNCTION cebus_sub_sweep(p_now timestamptz, OUT skipped boolean, OUT dead bigint,
                                OUT expired bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    skipped := false;
    dead := 0;
    expired := 0;
    -- 0x63656275 ("cebu"), 3: maintenance (0007).
    IF NOT pg_try_advisory_xact_lock(1667588725, 3) THEN
        skipped := true;
        RETURN;
    END IF;
    FOR r IN
        SELECT s.id
          FROM subscriptions s
          JOIN targets t ON t.bus_id = s.bus_id AND t.subscription = s.name
         WHERE EXISTS (SELECT 1 FROM sub_pending p
                        WHERE p.sub_id = s.id AND NOT p.blocked AND p.due_at <= p_now
                          AND (p.attempt >= COALESCE(t.max_attempts, 5)
                               OR (t.max_age_s IS NOT NULL
                                   AND p.received_at + make_interval(secs => t.max_age_s)
                                       <= p_now)))
         ORDER BY s.id
    LOOP
        PERFORM 1 FROM subscriptions WHERE id = r.id FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            dead := dead + cebus_sub_dead_letter_due(r.id, p_now);
        END IF;
    END LOOP;
    DELETE FROM dead_letters WHERE expires_at <= p_now;
    GET DIAGNOSTICS expired = ROW_COUNT;
END;
$$;
