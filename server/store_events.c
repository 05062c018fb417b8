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
    /* Floor division: C rounds toward zero, which would give times before
     * 1970 a negative fraction. */
    int64_t secs = us / 1000000, frac = us % 1000000;
    time_t t;
    struct tm tm;

    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    t = (time_t)secs;
    gmtime_r(&t, &tm);
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
}

/* Locks bus_id's sequence counter row for the rest of the transaction.
 * Held until COMMIT, the lock makes appenders of one bus (on any replica)
 * commit in sequence order: that is what keeps sequences from ever
 * becoming visible out of order. It also serializes dedup checks per bus.
 * Sets *next and *window, or returns EB_ENOTFOUND when the bus is gone. */
static eb_status lock_bus(eb_db *db, int64_t bus_id, int64_t *next, int *window)
{
    char bid[24];
    const char *params[1] = {bid};
    PGresult *res;
    eb_status st;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    st = eb_db_exec(db, "bus_lock",
                    "SELECT next_seq, dedup_window_seconds FROM buses WHERE id = $1 FOR UPDATE",
                    1, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0) {
        st = EB_ENOTFOUND;
    } else {
        *next = eb_db_int(res, 0, 0);
        *window = (int)eb_db_int(res, 0, 1);
    }
    PQclear(res);
    return st;
}

/* A growing text buffer for array literals. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = eb_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends s as a quoted element of a PostgreSQL array literal. Values never
 * contain NUL (validated as UTF-8 without NUL before they get here). */
static void sb_elem(struct sbuf *b, const char *s, bool first)
{
    if (!first)
        sb_put(b, ",", 1);
    sb_put(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        if (*q == '"' || *q == '\\')
            sb_put(b, "\\", 1);
        sb_put(b, q, 1);
    }
    sb_put(b, "\"", 1);
}

struct keyed {
    const struct eb_append_row *row;
    size_t index; /* into the group */
};

static int cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = strcmp(x->row->source, y->row->source);
    if (!c)
        c = strcmp(x->row->event_id, y->row->event_id);
    if (!c)
        c = x->index < y->index ? -1 : x->index > y->index;
    return c;
}

/* Marks the rows of one bus group whose (source, event_id) the bus already
 * accepted within its window, and repeats inside the group itself. first[k]
 * is set to the group index of the row that k repeats, or k itself. */
static eb_status find_duplicates(eb_db *db, int64_t bus_id, struct eb_append_row *rows,
                                 const struct order *grp, size_t n, size_t *first)
{
    struct keyed *keys = eb_malloc(n * sizeof *keys);
    struct sbuf srcs = {0}, ids = {0};
    char bid[24];
    const char *params[3];
    PGresult *res;
    eb_status st;

    for (size_t k = 0; k < n; k++) {
        keys[k].row = &rows[grp[k].index];
        keys[k].index = k;
        first[k] = k;
    }
    qsort(keys, n, sizeof *keys, cmp_keyed);
    for (size_t k = 1; k < n; k++)
        if (strcmp(keys[k].row->source, keys[k - 1].row->source) == 0 &&
            strcmp(keys[k].row->event_id, keys[k - 1].row->event_id) == 0)
            first[keys[k].index] = first[keys[k - 1].index];
    free(keys);

    sb_put(&srcs, "{", 1);
    sb_put(&ids, "{", 1);
    for (size_t k = 0; k < n; k++) {
        sb_elem(&srcs, rows[grp[k].index].source, k == 0);
        sb_elem(&ids, rows[grp[k].index].event_id, k == 0);
    }
    sb_put(&srcs, "}", 1);
    sb_put(&ids, "}", 1);
    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    params[0] = bid;
    params[1] = srcs.p;
    params[2] = ids.p;
    st = eb_db_exec(db, "dedup_check",
                    /* One primary-key probe per key: a join would let the
                     * planner hash every live entry of the bus's window. */
                    "SELECT u.source, u.event_id, d.seq"
                    " FROM unnest($2::text[], $3::text[]) AS u(source, event_id)"
                    " JOIN LATERAL (SELECT seq FROM event_dedup e WHERE e.bus_id = $1"
                    " AND e.source = u.source AND e.event_id = u.event_id"
                    " AND e.expires_at > now()) d ON true",
                    3, params, NULL, NULL, 0, &res);
    free(srcs.p);
    free(ids.p);
    if (st)
        return st;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *src = PQgetvalue(res, r, 0), *id = PQgetvalue(res, r, 1);
        int64_t seq = eb_db_int(res, r, 2);
        for (size_t k = 0; k < n; k++) {
            struct eb_append_row *row = &rows[grp[k].index];
            if (strcmp(row->source, src) == 0 && strcmp(row->event_id, id) == 0) {
                row->duplicate = true;
                row->seq = seq;
            }
        }
    }
    PQclear(res);
    return EB_OK;
}

/* Records the fresh rows of a group in the dedup table. */
static eb_status remember(eb_db *db, int64_t bus_id, int window, struct eb_append_row *rows,
                          const struct order *fresh, size_t n)
{
    struct sbuf srcs = {0}, ids = {0}, seqs = {0};
    char bid[24], win[16], num[24];
    const char *params[5];
    eb_status st;

    sb_put(&srcs, "{", 1);
    sb_put(&ids, "{", 1);
    sb_put(&seqs, "{", 1);
    for (size_t k = 0; k < n; k++) {
        const struct eb_append_row *row = &rows[fresh[k].index];
        sb_elem(&srcs, row->source, k == 0);
        sb_elem(&ids, row->event_id, k == 0);
        snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)row->seq);
        sb_put(&seqs, num, strlen(num));
    }
    sb_put(&srcs, "}", 1);
    sb_put(&ids, "}", 1);
    sb_put(&seqs, "}", 1);
    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    snprintf(win, sizeof win, "%d", window);
    params[0] = bid;
    params[1] = srcs.p;
    params[2] = ids.p;
    params[3] = seqs.p;
    params[4] = win;
    /* An existing key here is an expired one: replace it. */
    st = eb_db_exec(db, "dedup_insert",
                    "INSERT INTO event_dedup (bus_id, source, event_id, seq, expires_at)"
                    " SELECT $1, u.s, u.e, u.q, now() + make_interval(secs => $5::int)"
                    " FROM unnest($2::text[], $3::text[], $4::bigint[]) AS u(s, e, q)"
                    " ON CONFLICT (bus_id, source, event_id)"
                    " DO UPDATE SET seq = EXCLUDED.seq, expires_at = EXCLUDED.expires_at",
                    5, params, NULL, NULL, 0, NULL);
    free(srcs.p);
    free(ids.p);
    free(seqs.p);
    return st;
}

/* Advances the bus's counter past the sequences just assigned. */
static eb_status advance(eb_db *db, int64_t bus_id, size_t count)
{
    char bid[24], cnt[24];
    const char *params[2] = {bid, cnt};

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    snprintf(cnt, sizeof cnt, "%zu", count);
    return eb_db_exec(db, "seq_advance",
                      "UPDATE buses SET next_seq = next_seq + $2::bigint WHERE id = $1", 2,
                      params, NULL, NULL, 0, NULL);
}

/* Inserts rows[order[0..n)] (all with status EB_OK) in one statement. */
static eb_status insert_chunk(eb_db *db, struct eb_append_row *rows, const struct order *ord,
                              size_t n)
{
    size_t np = n * 7;
    const char **values = eb_malloc(np * sizeof *values);
    int *lengths = eb_calloc(np, sizeof *lengths);
    int *formats = eb_calloc(np, sizeof *formats);
    char (*nums)[3][80] = eb_malloc(n * sizeof *nums);
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

/* Processes one bus group ord[0..n) inside the transaction; appends the
 * rows to insert to ok[*nok]. */
static eb_status append_group(eb_db *db, struct eb_append_row *rows, const struct order *grp,
                              size_t n, struct order *ok, size_t *nok)
{
    int64_t bus_id = grp[0].bus_id, next = 0;
    size_t *first = NULL, fresh = 0, nok0 = *nok;
    char bid[24];
    const char *params[1] = {bid};
    int window = 0;
    eb_status st;

    st = lock_bus(db, bus_id, &next, &window);
    if (st == EB_ENOTFOUND) {
        for (size_t k = 0; k < n; k++)
            rows[grp[k].index].status = EB_ENOTFOUND;
        return EB_OK;
    }
    if (st)
        return st;
    first = eb_malloc(n * sizeof *first);
    if (window > 0) {
        st = find_duplicates(db, bus_id, rows, grp, n, first);
        if (st)
            goto out;
    } else {
        for (size_t k = 0; k < n; k++)
            first[k] = k;
    }
    for (size_t k = 0; k < n; k++) {
        struct eb_append_row *row = &rows[grp[k].index];
        if (row->duplicate)
            continue;
        if (first[k] != k) {
            /* A repeat inside this call: same answer as its first copy. */
            const struct eb_append_row *orig = &rows[grp[first[k]].index];
            row->duplicate = true;
            row->seq = orig->seq;
            continue;
        }
        row->seq = next + (int64_t)fresh++;
        ok[(*nok)++] = grp[k];
    }
    if (fresh == 0)
        goto out;
    st = advance(db, bus_id, fresh);
    if (!st && window > 0)
        st = remember(db, bus_id, window, rows, ok + nok0, fresh);
    if (st)
        goto out;
    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    st = eb_db_exec(db, "append_notify", "SELECT pg_notify('cebus_events', $1)", 1, params, NULL,
                    NULL, 0, NULL);
out:
    free(first);
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
        rows[i].duplicate = false;
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
        while (j < n && ord[j].bus_id == ord[i].bus_id)
            j++;
        st = append_group(db, rows, ord + i, j - i, ok, &nok);
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
    for (size_t i = 0; i < n; i++) {
        rows[i].seq = 0;
        rows[i].duplicate = false;
    }
out:
    free(ok);
    free(ord);
    return st;
}

eb_status eb_store_dedup_expire(eb_db *db, int limit, int64_t *removed)
{
    char lim[16];
    const char *params[1] = {lim};
    PGresult *res;
    eb_status st;

    snprintf(lim, sizeof lim, "%d", limit);
    st = eb_db_exec(db, "dedup_expire",
                    "DELETE FROM event_dedup WHERE ctid = ANY (ARRAY("
                    "SELECT ctid FROM event_dedup WHERE expires_at < now() LIMIT $1))",
                    1, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    *removed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return EB_OK;
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
    char bid[24], when[80];
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
