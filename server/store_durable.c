/* Durable subscriptions in the store (docs/decisions/0014): claims, acks,
 * nacks, releases and the reads the dispatcher needs. Each operation is
 * one statement calling a PL/pgSQL function of migrations/0009_durable.sql,
 * so it costs one round trip. Seeks and dead letters are elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_durable.h"
#include "store_internal.h"
#include "util.h"

/* "as of" now_us in SQL: $n is NULL for the database's clock. */
#define AS_OF(n) "COALESCE('epoch'::timestamptz + $" n "::bigint * interval '1 microsecond', now())"

void eb_sub_settings_resolve(struct eb_sub_settings *s)
{
    if (s->ack_deadline_s == 0)
        s->ack_deadline_s = EB_SUB_ACK_DEADLINE_DEFAULT;
    if (s->max_attempts == 0)
        s->max_attempts = EB_SUB_MAX_ATTEMPTS_DEFAULT;
    if (s->max_outstanding == 0)
        s->max_outstanding = EB_SUB_MAX_OUTSTANDING_DEFAULT;
}

/* Returns a PostgreSQL array literal of the strings v[0..n) for a text[]
 * parameter, NULL entries as SQL NULLs; free() it. */
static char *text_array_nulls(const char *const *v, size_t n)
{
    size_t cap = 3, len = 0;
    char *s;

    for (size_t i = 0; i < n; i++)
        cap += 5 + (v && v[i] ? 2 * strlen(v[i]) + 2 : 4);
    s = eb_malloc(cap);
    s[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[len++] = ',';
        if (!v || !v[i]) {
            memcpy(s + len, "NULL", 4);
            len += 4;
            continue;
        }
        s[len++] = '"';
        for (const char *p = v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                s[len++] = '\\';
            s[len++] = *p;
        }
        s[len++] = '"';
    }
    s[len++] = '}';
    s[len] = '\0';
    return s;
}

/* The ack items as the first four parameters of cebus_sub_ack() and
 * cebus_sub_nack(): array literals of their subscriptions, epochs,
 * sequences and attempts, in params[0..3] (free them with
 * free_item_params()). */
#define ITEM_PARAMS 4

static void item_params(const struct eb_ack_item *items, size_t n, const char **params)
{
    int64_t *v = eb_malloc((n ? n : 1) * sizeof *v);

    for (int f = 0; f < ITEM_PARAMS; f++) {
        for (size_t i = 0; i < n; i++)
            v[i] = f == 0   ? items[i].sub_id
                   : f == 1 ? items[i].epoch
                   : f == 2 ? items[i].seq
                            : items[i].attempt;
        params[f] = eb_db_id_array(v, n);
    }
    free(v);
}

static void free_item_params(const char **params)
{
    for (int f = 0; f < ITEM_PARAMS; f++)
        free((char *)params[f]);
}

eb_status eb_store_sub_get(eb_db *db, int64_t bus_id, const char *name, struct eb_sub_rec *out)
{
    char bid[24];
    const char *params[2] = {bid, name};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    st = eb_db_exec(db, "sub_get",
                    "SELECT s.id, s.bus_id, s.frontier, s.epoch, s.claimed - a.acked,"
                    " COALESCE(t.ack_deadline_s, 0), COALESCE(t.max_attempts, 0),"
                    " COALESCE(t.max_age_s, 0), COALESCE(t.max_outstanding, 0)"
                    " FROM subscriptions s JOIN sub_acked a ON a.sub_id = s.id"
                    " JOIN targets t ON t.bus_id = s.bus_id AND t.subscription = s.name"
                    " WHERE s.bus_id = $1 AND s.name = $2",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return EB_ENOTFOUND;
    }
    memset(out, 0, sizeof *out);
    out->id = eb_db_int(res, 0, 0);
    out->bus_id = eb_db_int(res, 0, 1);
    out->frontier = eb_db_int(res, 0, 2);
    out->epoch = eb_db_int(res, 0, 3);
    out->outstanding = eb_db_int(res, 0, 4);
    out->settings.ack_deadline_s = (int32_t)eb_db_int(res, 0, 5);
    out->settings.max_attempts = (int32_t)eb_db_int(res, 0, 6);
    out->settings.max_age_s = (int32_t)eb_db_int(res, 0, 7);
    out->settings.max_outstanding = (int32_t)eb_db_int(res, 0, 8);
    eb_sub_settings_resolve(&out->settings);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_sub_claim(eb_db *db, const struct eb_sub_claim_in *in,
                             struct eb_sub_claim_out *out)
{
    char sub[24], ver[24], from[24], to[24], owner[24], room[16], now[24];
    char *seqs = eb_db_id_array(in->seqs, in->n);
    char *pkeys = text_array_nulls(in->pkeys, in->n);
    char *recv = eb_db_id_array(in->received_us, in->n);
    const char *params[10] = {sub, ver, from, to, seqs, pkeys, recv, owner, room,
                              in->now_us ? now : NULL};
    struct eb_sub_claim_out r = {0};
    PGresult *res = NULL;
    eb_status st;
    int rows;

    eb_db_fmt_i64(sub, sizeof sub, in->sub_id);
    eb_db_fmt_i64(ver, sizeof ver, in->rule_version);
    eb_db_fmt_i64(from, sizeof from, in->from_seq);
    eb_db_fmt_i64(to, sizeof to, in->to_seq);
    eb_db_fmt_i64(owner, sizeof owner, in->owner);
    eb_db_fmt_i64(now, sizeof now, in->now_us);
    snprintf(room, sizeof room, "%d", in->room > 0 ? in->room : 0);
    /* The function sets synchronous_commit off for its own transaction:
     * a claim commits without waiting for the WAL flush. */
    st = eb_db_exec(db, "sub_claim",
                    "SELECT o_seq, o_attempt, " EPOCH_US("o_due") ", o_result, o_frontier,"
                    " o_epoch, " EPOCH_US("o_next_due") ", o_dead"
                    " FROM cebus_sub_claim($1, $2, $3, $4, $5::bigint[], $6::text[],"
                    " $7::bigint[], $8, $9, " AS_OF("10") ")",
                    10, params, NULL, NULL, 0, &res);
    free(seqs);
    free(pkeys);
    free(recv);
    if (st)
        return st;
    rows = PQntuples(res);
    if (rows == 0 || !PQgetisnull(res, rows - 1, 0)) {
        PQclear(res);
        return rows == 0 ? EB_ENOTFOUND : EB_EINTERNAL;
    }
    r.leases = eb_calloc((size_t)rows, sizeof *r.leases);
    for (int i = 0; i < rows - 1; i++) {
        r.leases[i].seq = eb_db_int(res, i, 0);
        r.leases[i].attempt = (int32_t)eb_db_int(res, i, 1);
        r.leases[i].due_us = eb_db_int(res, i, 2);
    }
    r.nleases = (size_t)rows - 1;
    r.result = (enum eb_claim_result)eb_db_int(res, rows - 1, 3);
    r.frontier = eb_db_int(res, rows - 1, 4);
    r.epoch = eb_db_int(res, rows - 1, 5);
    r.next_due_us = eb_db_int(res, rows - 1, 6);
    r.dead = (int)eb_db_int(res, rows - 1, 7);
    PQclear(res);
    *out = r;
    return EB_OK;
}

/* Marks items applied from a result of (index 1-based, owner) rows. */
static void mark_applied(PGresult *res, struct eb_ack_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        items[i].applied = false;
        items[i].owner = 0;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t idx = eb_db_int(res, row, 0);
        if (idx < 1 || (size_t)idx > n)
            continue;
        items[idx - 1].applied = true;
        items[idx - 1].owner = eb_db_int(res, row, 1);
    }
}

eb_status eb_store_sub_ack(eb_db *db, struct eb_ack_item *items, size_t n,
                           const int64_t *local_owners, size_t nlocal)
{
    char *local;
    const char *params[5];
    PGresult *res;
    eb_status st;

    if (n == 0)
        return EB_OK;
    item_params(items, n, params);
    local = eb_db_id_array(local_owners, nlocal);
    params[4] = local;
    /* One statement in its own transaction, committed synchronously: the
     * notifications go out with the commit. */
    st = eb_db_exec(db, "sub_ack",
                    "SELECT o_idx, o_owner FROM cebus_sub_ack($1::bigint[], $2::bigint[],"
                    " $3::bigint[], $4::integer[], $5::bigint[])",
                    5, params, NULL, NULL, 0, &res);
    free_item_params(params);
    free(local);
    if (st)
        return st;
    mark_applied(res, items, n);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_sub_nack(eb_db *db, struct eb_ack_item *items, size_t n, int delay_ms,
                            const char *error, int64_t now_us)
{
    char delay[16], now[24];
    const char *params[7];
    PGresult *res;
    eb_status st;

    if (n == 0)
        return EB_OK;
    item_params(items, n, params);
    snprintf(delay, sizeof delay, "%d", delay_ms < 0 ? 0 : delay_ms);
    eb_db_fmt_i64(now, sizeof now, now_us);
    params[4] = delay;
    params[5] = error;
    params[6] = now_us ? now : NULL;
    st = eb_db_exec(db, "sub_nack",
                    "SELECT o_idx, o_owner FROM cebus_sub_nack($1::bigint[], $2::bigint[],"
                    " $3::bigint[], $4::integer[], $5, $6, " AS_OF("7") ")",
                    7, params, NULL, NULL, 0, &res);
    free_item_params(params);
    if (st)
        return st;
    mark_applied(res, items, n);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_sub_release(eb_db *db, int64_t owner, int64_t now_us)
{
    char own[24], now[24];
    const char *params[2] = {own, now_us ? now : NULL};

    eb_db_fmt_i64(own, sizeof own, owner);
    eb_db_fmt_i64(now, sizeof now, now_us);
    return eb_db_exec(db, "sub_release", "SELECT cebus_sub_release($1, " AS_OF("2") ")", 2,
                      params, NULL, NULL, 0, NULL);
}

eb_status eb_store_sub_held(eb_db *db, const int64_t *owners, size_t n, int64_t now_us,
                            struct eb_sub_held **out, size_t *nout)
{
    char *ids = eb_db_id_array(owners, n), now[24];
    const char *params[2] = {ids, now_us ? now : NULL};
    struct eb_sub_held *v;
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(now, sizeof now, now_us);
    st = eb_db_exec(db, "sub_held",
                    "SELECT owner, seq, attempt, " EPOCH_US("due_at") " FROM sub_pending"
                    " WHERE owner = ANY($1::bigint[]) AND due_at > " AS_OF("2")
                    " ORDER BY owner, seq",
                    2, params, NULL, NULL, 0, &res);
    free(ids);
    if (st)
        return st;
    rows = PQntuples(res);
    v = eb_calloc(rows ? (size_t)rows : 1, sizeof *v);
    for (int i = 0; i < rows; i++) {
        v[i].owner = eb_db_int(res, i, 0);
        v[i].seq = eb_db_int(res, i, 1);
        v[i].attempt = (int32_t)eb_db_int(res, i, 2);
        v[i].due_us = eb_db_int(res, i, 3);
    }
    PQclear(res);
    *out = v;
    *nout = (size_t)rows;
    return EB_OK;
}

eb_status eb_store_events_read_seqs(eb_db *db, int64_t bus_id, const int64_t *seqs, size_t n,
                                    struct eb_event_rec **out, size_t *nout)
{
    char bid[24], *ids = eb_db_id_array(seqs, n);
    const char *params[2] = {bid, ids};
    struct eb_event_rec *recs;
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    /* A primary key probe per sequence (and per partition: the log is
     * partitioned by expiry, which the caller does not know). */
    st = eb_db_exec(db, "events_read_seqs",
                    "SELECT seq, " EPOCH_US("received_at") ", body FROM events"
                    " WHERE bus_id = $1 AND seq = ANY($2::bigint[]) AND expires_at > now()"
                    " ORDER BY seq",
                    2, params, NULL, NULL, 0, &res);
    free(ids);
    if (st)
        return st;
    rows = PQntuples(res);
    recs = eb_calloc(rows ? (size_t)rows : 1, sizeof *recs);
    for (int i = 0; i < rows; i++) {
        size_t blen;
        unsigned char *body = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 2), &blen);

        recs[i].seq = eb_db_int(res, i, 0);
        recs[i].received_us = eb_db_int(res, i, 1);
        recs[i].body = eb_malloc(blen ? blen : 1);
        if (body)
            memcpy(recs[i].body, body, blen);
        recs[i].body_len = body ? blen : 0;
        PQfreemem(body);
    }
    PQclear(res);
    *out = recs;
    *nout = (size_t)rows;
    return EB_OK;
}
