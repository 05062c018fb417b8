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

-- The settings a claim applies, from the subscription's target and rule:
-- NULL columns mean the defaults of server/store_durable.h.
CREATE FUNCTION cebus_sub_target(p_sub bigint, OUT rule_version bigint,
                                 OUT ack_deadline_s integer, OUT max_attempts integer,
                                 OUT max_age_s integer, OUT max_outstanding integer)
LANGUAGE sql STABLE AS $$
    SELECT r.version, COALESCE(t.ack_deadline_s, 30), COALESCE(t.max_attempts, 5),
           COALESCE(t.max_age_s, 0), COALESCE(t.max_outstanding, 10000)
    FROM subscriptions s
    JOIN targets t ON t.bus_id = s.bus_id AND t.subscription = s.name
    JOIN rules r ON r.id = t.rule_id
    WHERE s.id = p_sub
$$;

-- Creates the subscriptions of a bus's subscription targets that have none
-- (frontier at the bus's committed head: "latest"; a random epoch) and
-- deletes those no target names any more, with their rows. Run by every
-- transaction that adds or replaces targets, after it did.
CREATE FUNCTION cebus_subs_sync(p_bus bigint)
RETURNS void
LANGUAGE sql AS $$
    DELETE FROM subscriptions s
    WHERE s.bus_id = p_bus
      AND NOT EXISTS (SELECT 1 FROM targets t WHERE t.bus_id = p_bus AND t.subscription = s.name);
    WITH n AS (
        INSERT INTO subscriptions (bus_id, name, frontier, epoch)
        SELECT t.bus_id, t.subscription, b.next_seq - 1, (random() * 9.2e18)::bigint
        FROM targets t JOIN buses b ON b.id = t.bus_id
        WHERE t.bus_id = p_bus AND t.subscription IS NOT NULL
        ON CONFLICT (bus_id, name) DO NOTHING
        RETURNING id)
    INSERT INTO sub_acked (sub_id) SELECT id FROM n;
$$;

-- Unblocks, for each partition key of keys, its lowest row when no row of
-- the key is unblocked any more. Returns how many rows it unblocked.
CREATE FUNCTION cebus_sub_unblock(p_sub bigint, p_keys bigint[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_key bigint;
    v_n integer := 0;
    v_one integer;
BEGIN
    FOR v_key IN SELECT DISTINCT k FROM unnest(p_keys) k WHERE k IS NOT NULL LOOP
        UPDATE sub_pending p SET blocked = false
        WHERE p.sub_id = p_sub AND p.blocked
          AND p.seq = (SELECT min(q.seq) FROM sub_pending q
                       WHERE q.sub_id = p_sub AND q.pkey = v_key);
        GET DIAGNOSTICS v_one = ROW_COUNT;
        v_n := v_n + v_one;
    END LOOP;
    RETURN v_n;
END;
$$;

-- One claim of a subscription (docs/decisions/0014, "Claims and leases"),
-- as of p_now, committed asynchronously (a crash may undo it; the events
-- are then claimed again). Under the subscription's row lock:
--   1. when the rule's version is not p_rule_version, returns result 1 and
--      changes nothing;
--   2. due rows past max_attempts or max_age move to dead_letters; the
--      partition keys they and acks (sub_freed) freed are unblocked; dead
--      letters marked for redrive come back (attempt 0, blocked behind
--      their key, max_age counted from now) within max_outstanding; then
--      up to p_room due rows are leased to p_owner (attempt + 1, due at
--      p_now + the ack deadline), and those of them whose event expired
--      are deleted instead;
--   3. only when the frontier is p_from (else result 2, new events
--      untouched): each match p_seqs[i] (ascending, in (p_from, p_to],
--      with its partitionkey and receive time in microseconds) gets a row:
--      a dead letter when already past max_age, blocked when a row of its
--      key exists, leased otherwise. When room or max_outstanding runs out,
--      the range ends before that match. The frontier moves to the end.
-- Returns one row per lease (o_seq set, ascending) and a last row with
-- o_seq NULL carrying the result (0 done, 1 rule changed, 2 frontier
-- moved), the frontier, the epoch, the earliest due_at of an unblocked row
-- and how many rows became dead letters. No row: no such subscription.
CREATE FUNCTION cebus_sub_claim(p_sub bigint, p_rule_version bigint, p_from bigint,
                                p_to bigint, p_seqs bigint[], p_pkeys text[],
                                p_received_us bigint[], p_owner bigint, p_room integer,
                                p_now timestamptz)
RETURNS TABLE (o_seq bigint, o_attempt integer, o_due timestamptz, o_result integer,
               o_frontier bigint, o_epoch bigint, o_next_due timestamptz, o_dead integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_sub subscriptions%ROWTYPE;
    v_set record;
    v_acked bigint;
    v_age interval;
    v_due timestamptz;
    v_result integer := 0;
    v_dead integer := 0;
    v_removed bigint := 0;
    v_added bigint := 0;
    v_freed bigint[];
    v_lseq bigint[] := '{}';
    v_latt integer[] := '{}';
    v_n integer;
    v_cap bigint;
    v_to bigint := p_to;
    v_seq bigint;
    v_key bigint;
    v_blocked boolean;
    v_expires timestamptz;
    r record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT * INTO v_sub FROM subscriptions WHERE id = p_sub FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO v_set FROM cebus_sub_target(p_sub);
    IF v_set.rule_version IS DISTINCT FROM p_rule_version THEN
        RETURN QUERY SELECT NULL::bigint, NULL::integer, NULL::timestamptz, 1,
                            v_sub.frontier, v_sub.epoch, NULL::timestamptz, 0;
        RETURN;
    END IF;
    v_age := make_interval(secs => v_set.max_age_s);
    v_due := p_now + make_interval(secs => v_set.ack_deadline_s);

    -- Step 2: dead letters first, so that the keys they free are
    -- unblocked before leasing. One whose event expired meanwhile is
    -- deleted without a dead letter.
    WITH f AS (DELETE FROM sub_freed f WHERE f.sub_id = p_sub RETURNING f.pkey)
    SELECT COALESCE(array_agg(f.pkey), '{}') INTO v_freed FROM f;
    FOR r IN SELECT p.seq, p.pkey, p.attempt, p.last_error, e.expires_at
             FROM sub_pending p
             LEFT JOIN events e ON e.bus_id = v_sub.bus_id AND e.seq = p.seq
                               AND e.expires_at > p_now
             WHERE p.sub_id = p_sub AND NOT p.blocked AND p.due_at <= p_now
               AND (p.attempt >= v_set.max_attempts
                    OR (v_set.max_age_s > 0 AND p.received_at <= p_now - v_age))
             FOR UPDATE OF p SKIP LOCKED
    LOOP
        DELETE FROM sub_pending WHERE sub_id = p_sub AND seq = r.seq;
        v_removed := v_removed + 1;
        v_freed := v_freed || r.pkey;
        IF r.expires_at IS NULL THEN
            RAISE LOG 'cebus: subscription % lost sequence % (expired before it was acked)',
                p_sub, r.seq;
            CONTINUE;
        END IF;
        INSERT INTO dead_letters AS d (sub_id, seq, bus_id, reason, last_error, attempts, pkey,
                                       expires_at, created_at)
        VALUES (p_sub, r.seq, v_sub.bus_id,
                CASE WHEN r.attempt >= v_set.max_attempts THEN 1 ELSE 2 END,
                COALESCE(r.last_error, 'ack deadline passed'), r.attempt, r.pkey,
                r.expires_at, p_now)
        ON CONFLICT (sub_id, seq) DO UPDATE
            SET reason = EXCLUDED.reason, last_error = EXCLUDED.last_error,
                attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at,
                redrive = false;
        v_dead := v_dead + 1;
    END LOOP;
    PERFORM cebus_sub_unblock(p_sub, v_freed);

    SELECT acked INTO v_acked FROM sub_acked WHERE sub_id = p_sub;
    v_cap := v_set.max_outstanding - (v_sub.claimed - v_removed - COALESCE(v_acked, 0));
    IF v_cap > 0 THEN
        WITH d AS (
            DELETE FROM dead_letters dl
            WHERE dl.sub_id = p_sub
              AND dl.seq IN (SELECT x.seq FROM dead_letters x
                             WHERE x.sub_id = p_sub AND x.redrive
                             ORDER BY x.seq LIMIT v_cap FOR UPDATE SKIP LOCKED)
            RETURNING dl.seq, dl.pkey)
        INSERT INTO sub_pending (sub_id, seq, pkey, attempt, due_at, blocked, received_at)
        SELECT p_sub, d.seq, d.pkey, 0, p_now,
               d.pkey IS NOT NULL
               AND (EXISTS (SELECT 1 FROM sub_pending q WHERE q.sub_id = p_sub AND q.pkey = d.pkey)
                    OR EXISTS (SELECT 1 FROM d d2 WHERE d2.pkey = d.pkey AND d2.seq < d.seq)),
               p_now
        FROM d JOIN events e ON e.bus_id = v_sub.bus_id AND e.seq = d.seq AND e.expires_at > p_now
        ON CONFLICT (sub_id, seq) DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_added := v_added + v_n;
    END IF;

    -- Only the rows about to be leased are checked against the log, so a
    -- claim probes at most p_room events whatever the backlog of due rows.
    -- A row whose event expired (redelivered for longer than the
    -- retention) cannot be delivered: it goes, and frees its key.
    IF p_room > 0 THEN
        WITH c AS (
            SELECT q.seq,
                   EXISTS (SELECT 1 FROM events e
                           WHERE e.bus_id = v_sub.bus_id AND e.seq = q.seq
                             AND e.expires_at > p_now) AS live
            FROM sub_pending q
            WHERE q.sub_id = p_sub AND NOT q.blocked AND q.due_at <= p_now
            ORDER BY q.due_at, q.seq LIMIT p_room FOR UPDATE SKIP LOCKED),
        u AS (
            UPDATE sub_pending p SET owner = p_owner, attempt = p.attempt + 1, due_at = v_due
            FROM c WHERE p.sub_id = p_sub AND p.seq = c.seq AND c.live
            RETURNING p.seq, p.attempt),
        g AS (
            DELETE FROM sub_pending p USING c
            WHERE p.sub_id = p_sub AND p.seq = c.seq AND NOT c.live
            RETURNING p.seq, p.pkey)
        SELECT (SELECT COALESCE(array_agg(u.seq ORDER BY u.seq), '{}') FROM u),
               (SELECT COALESCE(array_agg(u.attempt ORDER BY u.seq), '{}') FROM u),
               (SELECT COALESCE(array_agg(g.pkey), '{}') FROM g),
               (SELECT count(*) FROM g)
        INTO v_lseq, v_latt, v_freed, v_n;
        IF v_n > 0 THEN
            v_removed := v_removed + v_n;
            PERFORM cebus_sub_unblock(p_sub, v_freed);
            RAISE LOG 'cebus: subscription % lost % events that expired before they were acked',
                p_sub, v_n;
        END IF;
    END IF;

    -- Step 3: new events, only from the frontier this caller read from.
    IF v_sub.frontier <> p_from OR p_to < p_from THEN
        v_result := 2;
        v_to := v_sub.frontier;
    ELSE
        v_cap := v_set.max_outstanding
                 - (v_sub.claimed + v_added - v_removed - COALESCE(v_acked, 0));
        FOR i IN 1 .. COALESCE(array_length(p_seqs, 1), 0) LOOP
            v_seq := p_seqs[i];
            CONTINUE WHEN v_seq <= p_from OR v_seq > p_to;
            IF v_set.max_age_s > 0
               AND to_timestamp(p_received_us[i] / 1000000.0) <= p_now - v_age THEN
                SELECT e.expires_at INTO v_expires FROM events e
                WHERE e.bus_id = v_sub.bus_id AND e.seq = v_seq AND e.expires_at > p_now;
                IF FOUND THEN
                    INSERT INTO dead_letters (sub_id, seq, bus_id, reason, attempts, pkey,
                                              expires_at, created_at)
                    VALUES (p_sub, v_seq, v_sub.bus_id, 2, 0,
                            hashtextextended(p_pkeys[i], 0), v_expires, p_now)
                    ON CONFLICT (sub_id, seq) DO NOTHING;
                    v_dead := v_dead + 1;
                END IF;
                CONTINUE;
            END IF;
            IF v_cap <= 0 THEN
                v_to := v_seq - 1;
                EXIT;
            END IF;
            v_key := hashtextextended(p_pkeys[i], 0);
            v_blocked := v_key IS NOT NULL
                         AND EXISTS (SELECT 1 FROM sub_pending q
                                     WHERE q.sub_id = p_sub AND q.pkey = v_key);
            IF NOT v_blocked AND COALESCE(array_length(v_lseq, 1), 0) >= p_room THEN
                v_to := v_seq - 1;
                EXIT;
            END IF;
            INSERT INTO sub_pending (sub_id, seq, pkey, attempt, owner, due_at, blocked,
                                     received_at)
            VALUES (p_sub, v_seq, v_key, CASE WHEN v_blocked THEN 0 ELSE 1 END,
                    CASE WHEN v_blocked THEN NULL ELSE p_owner END,
                    CASE WHEN v_blocked THEN p_now ELSE v_due END, v_blocked,
                    to_timestamp(p_received_us[i] / 1000000.0))
            ON CONFLICT (sub_id, seq) DO NOTHING;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            CONTINUE WHEN v_n = 0;
            v_added := v_added + 1;
            v_cap := v_cap - 1;
            IF NOT v_blocked THEN
                v_lseq := v_lseq || v_seq;
                v_latt := v_latt || 1;
            END IF;
        END LOOP;
    END IF;

    UPDATE subscriptions SET frontier = v_to, claimed = claimed + v_added - v_removed
    WHERE id = p_sub;

    RETURN QUERY SELECT l.s, l.a, v_due, v_result, v_to, v_sub.epoch, NULL::timestamptz, 0
                 FROM unnest(v_lseq, v_latt) AS l(s, a) ORDER BY l.s;
    -- The next due row, for the caller's timer: only when this claim left
    -- room unused (a full stream claims again when it gets room), and only
    -- within the next second (the callers serve every subscription once a
    -- second anyway). Both bounds keep the scan off the index entries of
    -- acked rows, which are dead but not yet removable while any snapshot
    -- older than their ack is open: walking them on every claim made a
    -- backlog's delivery quadratic.
    RETURN QUERY SELECT NULL::bigint, NULL::integer, NULL::timestamptz, v_result, v_to,
                        v_sub.epoch,
                        CASE WHEN COALESCE(array_length(v_lseq, 1), 0) < p_room THEN
                            (SELECT min(q.due_at) FROM sub_pending q
                             WHERE q.sub_id = p_sub AND NOT q.blocked
                               AND q.due_at <= p_now + interval '1 second')
                        END,
                        v_dead;
END;
$$;

-- Acks (seq, attempt) of subscriptions whose epoch is still p_epochs[i]:
-- deletes each matching row, whether or not its lease has ended, as long
-- as it was not leased again since (an ack that waited for a claim's lock
-- sees the new attempt and does not apply), counts it in sub_acked and
-- frees its partition key for the next claim. Notifies "cebus_subs" with
-- the subscription id when an applied row was leased to an owner not in
-- p_local (another replica's stream, which must recount). Returns the
-- index (1-based) and the owner (NULL: none) of each applied id. The
-- caller commits synchronously: the reply says the ack is durable.
CREATE FUNCTION cebus_sub_ack(p_subs bigint[], p_epochs bigint[], p_seqs bigint[],
                              p_attempts integer[], p_local bigint[])
RETURNS TABLE (o_idx integer, o_owner bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_idx integer[];
    v_sub bigint[];
    v_owner bigint[];
    v_pkey bigint[];
BEGIN
    WITH i AS (
        SELECT x.sub, x.ep, x.seq, x.att, x.idx::integer AS idx
        FROM unnest(p_subs, p_epochs, p_seqs, p_attempts) WITH ORDINALITY
             AS x(sub, ep, seq, att, idx)),
    -- Each id probes the primary key with both of its columns: joined
    -- through subscriptions, the planner could key the probe on sub_id
    -- alone and filter the subscription's every row, per id, when
    -- sub_pending's statistics were older than its rows.
    d AS (
        DELETE FROM sub_pending p
        USING i
        WHERE p.sub_id = i.sub AND p.seq = i.seq AND p.attempt = i.att
          AND i.ep = (SELECT s.epoch FROM subscriptions s WHERE s.id = i.sub)
        RETURNING i.idx, p.sub_id, p.owner, p.pkey)
    SELECT array_agg(d.idx), array_agg(d.sub_id), array_agg(d.owner), array_agg(d.pkey)
    INTO v_idx, v_sub, v_owner, v_pkey FROM d;
    IF v_idx IS NULL THEN
        RETURN;
    END IF;
    UPDATE sub_acked a SET acked = a.acked + c.n
    FROM (SELECT s, count(*) AS n FROM unnest(v_sub) s GROUP BY s) c
    WHERE a.sub_id = c.s;
    INSERT INTO sub_freed (sub_id, pkey)
    SELECT x.s, x.k FROM unnest(v_sub, v_pkey) AS x(s, k) WHERE x.k IS NOT NULL;
    PERFORM pg_notify('cebus_subs', x.s::text)
    FROM (SELECT DISTINCT y.s FROM unnest(v_sub, v_owner) AS y(s, o)
          WHERE y.o IS NOT NULL AND y.o <> ALL (COALESCE(p_local, '{}'))) x;
    RETURN QUERY SELECT x.i, x.o FROM unnest(v_idx, v_owner) AS x(i, o) ORDER BY x.i;
END;
$$;

-- Nacks (seq, attempt) of subscriptions whose epoch is still p_epochs[i]:
-- each matching row loses its lease and is due again p_delay_ms after
-- p_now, with p_error as its last error. Committed asynchronously (a lost
-- nack only means the lease ends at its deadline). Returns the index and
-- the former owner of each applied id.
CREATE FUNCTION cebus_sub_nack(p_subs bigint[], p_epochs bigint[], p_seqs bigint[],
                               p_attempts integer[], p_delay_ms integer, p_error text,
                               p_now timestamptz)
RETURNS TABLE (o_idx integer, o_owner bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
    WITH i AS (
        SELECT x.sub, x.ep, x.seq, x.att, x.idx::integer AS idx
        FROM unnest(p_subs, p_epochs, p_seqs, p_attempts) WITH ORDINALITY
             AS x(sub, ep, seq, att, idx)),
    m AS (
        SELECT p.sub_id, p.seq, p.owner, min(i.idx) AS idx
        FROM sub_pending p
        JOIN i ON p.sub_id = i.sub AND p.seq = i.seq AND p.attempt = i.att
        WHERE i.ep = (SELECT s.epoch FROM subscriptions s WHERE s.id = i.sub)
        GROUP BY p.sub_id, p.seq, p.owner),
    u AS (
        UPDATE sub_pending p
        SET owner = NULL, due_at = p_now + make_interval(secs => p_delay_ms / 1000.0),
            last_error = p_error
        FROM m
        WHERE p.sub_id = m.sub_id AND p.seq = m.seq
          AND p.attempt = (SELECT i.att FROM i WHERE i.idx = m.idx)
        RETURNING m.idx, m.owner)
    SELECT u.idx, u.owner FROM u ORDER BY u.idx;
END;
$$;

-- Releases every row leased to p_owner (a stream that closed): no owner,
-- due at once for any consumer. Committed asynchronously. Returns how many.
CREATE FUNCTION cebus_sub_release(p_owner bigint, p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE sub_pending SET owner = NULL, due_at = LEAST(due_at, p_now)
    WHERE owner = p_owner;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;
