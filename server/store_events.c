/* The event log: group-committed appends and ordered reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "store_internal.h"
#include "util.h"

/* Rows per INSERT statement: 7 parameters each, far below libpq's 65535. */
#define INSERT_CHUNK 1000

struct order {
    int64_t bus_id;
    size_t index;
};

static int cmp_order(const void *a, const void *b)
{
    const struct order *x = a, *y = b;
    if (x->bus_id != y->bus_id)
        return x->bus_id < y->bus_id ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void fmt_time(char *buf, size_t size, int64_t us)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long long)(us % 1000000));
}

/* Reserves count sequences on a bus. The row lock taken by this UPDATE is
 * held until COMMIT, so appenders of one bus (on any replica) commit in
 * sequence order: that is what keeps sequences from ever becoming visible
 * out of order. Sets *first, or returns EB_ENOTFOUND when the bus is gone. */
static eb_status reserve(eb_db *db, int64_t bus_id, size_t count, int64_t *first)
{
    char bid[24], cnt[24];
    const char *params[2] = {bid, cnt};
    PGresult *res;
    eb_status st;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    snprintf(cnt, sizeof cnt, "%zu", count);
    st = eb_db_exec(db, "seq_reserve",
                    "UPDATE buses SET next_seq = next_seq + $2::bigint WHERE id = $1"
                    " RETURNING next_seq - $2::bigint",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        *first = eb_db_int(res, 0, 0);
    PQclear(res);
    return st;
}

/* Inserts rows[order[0..n)] (all with status EB_OK) in one statement. */
static eb_status insert_chunk(eb_db *db, struct eb_append_row *rows, const struct order *ord,
                              size_t n)
{
    size_t np = n * 7;
    const char **values = eb_malloc(np * sizeof *values);
    int *lengths = eb_calloc(np, sizeof *lengths);
    int *formats = eb_calloc(np, sizeof *formats);
    char (*nums)[3][32] = eb_malloc(n * sizeof *nums);
    size_t cap = 96 + n * 64, len;
    char *sql = eb_malloc(cap);
    eb_status st;

    len = (size_t)snprintf(sql, cap,
                           "INSERT INTO events (bus_id, seq, received_at, source, event_id, type,"
                           " body) VALUES ");
    for (size_t i = 0; i < n; i++) {
        struct eb_append_row *r = &rows[ord[i].index];
        size_t p = i * 7;
        snprintf(nums[i][0], sizeof nums[i][0], "%lld", (long long)r->bus_id);
        snprintf(nums[i][1], sizeof nums[i][1], "%lld", (long long)r->seq);
        fmt_time(nums[i][2], sizeof nums[i][2], r->received_us);
        values[p + 0] = nums[i][0];
        values[p + 1] = nums[i][1];
        values[p + 2] = nums[i][2];
        values[p + 3] = r->source;
        values[p + 4] = r->event_id;
        values[p + 5] = r->type;
        values[p + 6] = (const char *)r->body;
        lengths[p + 6] = (int)r->body_len;
        formats[p + 6] = 1;
        len += (size_t)snprintf(sql + len, cap - len, "%s($%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu)",
                                i ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7);
    }
    st = eb_db_exec(db, "events_insert", sql, (int)np, values, lengths, formats, 0, NULL);
    free(sql);
    free(nums);
    free(formats);
    free(lengths);
    free(values);
    return st;
}

eb_status eb_store_events_append(eb_db *db, struct eb_append_row *rows, size_t n)
{
    struct order *ord = eb_malloc((n ? n : 1) * sizeof *ord);
    struct order *ok = eb_malloc((n ? n : 1) * sizeof *ok);
    size_t nok = 0;
    eb_status st;

    for (size_t i = 0; i < n; i++) {
        ord[i].bus_id = rows[i].bus_id;
        ord[i].index = i;
        rows[i].seq = 0;
        rows[i].status = EB_OK;
    }
    /* Locking buses in increasing id order keeps two replicas' batches from
     * deadlocking on each other's counter rows. */
    qsort(ord, n, sizeof *ord, cmp_order);

    st = eb_db_simple(db, "append_begin", "BEGIN");
    if (st)
        goto out;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        int64_t first = 0;
        char bid[24];
        const char *params[1] = {bid};
        eb_status rst;

        while (j < n && ord[j].bus_id == ord[i].bus_id)
            j++;
        rst = reserve(db, ord[i].bus_id, j - i, &first);
        if (rst == EB_ENOTFOUND) {
            for (size_t k = i; k < j; k++)
                rows[ord[k].index].status = EB_ENOTFOUND;
            i = j;
            continue;
        }
        if (rst) {
            st = rst;
            goto rollback;
        }
        for (size_t k = i; k < j; k++) {
            rows[ord[k].index].seq = first + (int64_t)(k - i);
            ok[nok++] = ord[k];
        }
        snprintf(bid, sizeof bid, "%lld", (long long)ord[i].bus_id);
        st = eb_db_exec(db, "append_notify", "SELECT pg_notify('cebus_events', $1)", 1, params,
                        NULL, NULL, 0, NULL);
        if (st)
            goto rollback;
        i = j;
    }
    for (size_t i = 0; i < nok; i += INSERT_CHUNK) {
        size_t m = nok - i < INSERT_CHUNK ? nok - i : INSERT_CHUNK;
        st = insert_chunk(db, rows, ok + i, m);
        if (st)
            goto rollback;
    }
    st = eb_db_simple(db, "append_commit", "COMMIT");
    if (st == EB_OK)
        goto out;
    /* A COMMIT that failed may or may not have committed; the callers
     * report failure, and the client's retry is answered by dedup. */
rollback:
    if (!db->broken)
        eb_db_simple(db, "append_rollback", "ROLLBACK");
    for (size_t i = 0; i < n; i++)
        rows[i].seq = 0;
out:
    free(ok);
    free(ord);
    return st;
}

static int64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | u[i];
    return (int64_t)v;
}

eb_status eb_store_events_read(eb_db *db, int64_t bus_id, int64_t after_seq, int limit,
                               struct eb_event_rec **out, size_t *n)
{
    char bid[24], after[24], lim[16];
    const char *params[3] = {bid, after, lim};
    struct eb_event_rec *recs;
    PGresult *res;
    eb_status st;
    int rows;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    snprintf(after, sizeof after, "%lld", (long long)after_seq);
    snprintf(lim, sizeof lim, "%d", limit);
    st = eb_db_exec(db, "events_read",
                    "SELECT seq, (extract(epoch FROM received_at) * 1000000)::bigint, body"
                    " FROM events WHERE bus_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    3, params, NULL, NULL, 1, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    recs = eb_calloc((size_t)rows, sizeof *recs);
    for (int i = 0; i < rows; i++) {
        size_t blen = (size_t)PQgetlength(res, i, 2);
        recs[i].seq = be64(PQgetvalue(res, i, 0));
        recs[i].received_us = be64(PQgetvalue(res, i, 1));
        recs[i].body = eb_malloc(blen);
        memcpy(recs[i].body, PQgetvalue(res, i, 2), blen);
        recs[i].body_len = blen;
    }
    PQclear(res);
    *out = recs;
    *n = (size_t)rows;
    return EB_OK;
}

eb_status eb_store_events_head(eb_db *db, int64_t bus_id, int64_t *seq)
{
    char bid[24];
    const char *params[1] = {bid};
    PGresult *res;
    eb_status st;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    /* The committed counter: sequences reserved by transactions still in
     * flight are invisible here and will all be above it. */
    st = eb_db_exec(db, "events_head", "SELECT next_seq - 1 FROM buses WHERE id = $1", 1, params,
                    NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        *seq = eb_db_int(res, 0, 0);
    PQclear(res);
    return st;
}

eb_status eb_store_events_before_time(eb_db *db, int64_t bus_id, int64_t time_us, int64_t *seq)
{
    char bid[24], when[48];
    const char *params[2] = {bid, when};
    PGresult *res;
    eb_status st;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    fmt_time(when, sizeof when, time_us);
    st = eb_db_exec(db, "events_before_time",
                    "SELECT COALESCE((SELECT min(seq) - 1 FROM events WHERE bus_id = $1"
                    " AND received_at >= $2::timestamptz),"
                    " (SELECT next_seq - 1 FROM buses WHERE id = $1))",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQgetisnull(res, 0, 0))
        st = EB_ENOTFOUND;
    else
        *seq = eb_db_int(res, 0, 0);
    PQclear(res);
    return st;
}
