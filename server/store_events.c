/* The event log: group-committed appends and ordered reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "store_internal.h"
#include "util.h"

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

/* A growing byte buffer for binary-format array parameters. */
struct bbuf {
    char *p;
    size_t len, cap;
};

static void bb_put(struct bbuf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = eb_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void bb_u32(struct bbuf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    bb_put(b, x, 4);
}

static void bb_i64(struct bbuf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    unsigned char x[8];
    for (int i = 7; i >= 0; i--, u >>= 8)
        x[i] = (unsigned char)u;
    bb_put(b, x, 8);
}

/* The header of a one-dimensional array of n elements of type elemtype in
 * PostgreSQL's binary format (n >= 1). */
static void bb_array(struct bbuf *b, uint32_t elemtype, size_t n)
{
    bb_u32(b, 1); /* dimensions */
    bb_u32(b, 0); /* no NULLs */
    bb_u32(b, elemtype);
    bb_u32(b, (uint32_t)n);
    bb_u32(b, 1); /* lower bound */
}

static void bb_elem(struct bbuf *b, const void *data, size_t len)
{
    bb_u32(b, (uint32_t)len);
    bb_put(b, data, len);
}

enum { OID_INT8 = 20, OID_TEXT = 25, OID_BYTEA = 17, OID_INT8_ARRAY = 1016,
       OID_TEXT_ARRAY = 1009, OID_BYTEA_ARRAY = 1001 };

/* The parameters of one cebus_append() call: one bus's rows. */
struct group_params {
    struct bbuf bus, tenants, received, sources, ids, types, bodies;
};

static void group_params_build(struct group_params *g, const struct eb_append_row *rows,
                               const struct order *grp, size_t n)
{
    memset(g, 0, sizeof *g);
    bb_i64(&g->bus, grp[0].bus_id);
    bb_array(&g->tenants, OID_INT8, n);
    bb_array(&g->received, OID_INT8, n);
    bb_array(&g->sources, OID_TEXT, n);
    bb_array(&g->ids, OID_TEXT, n);
    bb_array(&g->types, OID_TEXT, n);
    bb_array(&g->bodies, OID_BYTEA, n);
    for (size_t k = 0; k < n; k++) {
        const struct eb_append_row *r = &rows[grp[k].index];
        bb_u32(&g->tenants, 8);
        bb_i64(&g->tenants, r->tenant_id);
        bb_u32(&g->received, 8);
        bb_i64(&g->received, r->received_us);
        bb_elem(&g->sources, r->source, strlen(r->source));
        bb_elem(&g->ids, r->event_id, strlen(r->event_id));
        bb_elem(&g->types, r->type, strlen(r->type));
        bb_elem(&g->bodies, r->body, r->body_len);
    }
}

static void group_params_free(struct group_params *g)
{
    free(g->bus.p);
    free(g->tenants.p);
    free(g->received.p);
    free(g->sources.p);
    free(g->ids.p);
    free(g->types.p);
    free(g->bodies.p);
}

static bool send_group(PGconn *conn, const struct group_params *g)
{
    static const Oid types[7] = {OID_INT8,       OID_INT8_ARRAY, OID_INT8_ARRAY, OID_TEXT_ARRAY,
                                 OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_BYTEA_ARRAY};
    static const int formats[7] = {1, 1, 1, 1, 1, 1, 1};
    const struct bbuf *b[7] = {&g->bus, &g->tenants, &g->received, &g->sources,
                               &g->ids, &g->types,   &g->bodies};
    const char *values[7];
    int lengths[7];

    for (int i = 0; i < 7; i++) {
        values[i] = b[i]->p;
        lengths[i] = (int)b[i]->len;
    }
    return PQsendQueryParams(conn, "SELECT cebus_append($1, $2, $3, $4, $5, $6, $7)", 7, types,
                             values, lengths, formats, 0) == 1;
}

/* Reads one pipelined statement's result. Returns EB_OK and, when out is
 * not NULL, hands the result over; otherwise maps the failure. */
static eb_status read_result(eb_db *db, const char *what, PGresult **out)
{
    PGresult *res = PQgetResult(db->conn), *extra;
    eb_status st;

    if (!res) {
        db->broken = true;
        return EB_EUNAVAIL;
    }
    if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED)
        st = EB_EINTERNAL; /* an earlier statement failed and said why */
    else
        st = eb_db_result_status(db, res, what);
    /* Each statement's results end with a NULL. */
    while ((extra = PQgetResult(db->conn)) != NULL)
        PQclear(extra);
    if (st == EB_OK && out)
        *out = res;
    else
        PQclear(res);
    return st;
}

/* Applies one cebus_append() answer ("{5,6,-3}" or NULL) to its rows. */
static eb_status apply_answer(PGresult *res, struct eb_append_row *rows, const struct order *grp,
                              size_t n)
{
    const char *p;

    if (PQntuples(res) != 1)
        return EB_EINTERNAL;
    if (PQgetisnull(res, 0, 0)) {
        for (size_t k = 0; k < n; k++)
            rows[grp[k].index].status = EB_ENOTFOUND;
        return EB_OK;
    }
    p = PQgetvalue(res, 0, 0);
    if (*p++ != '{')
        return EB_EINTERNAL;
    for (size_t k = 0; k < n; k++) {
        struct eb_append_row *r = &rows[grp[k].index];
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v == 0)
            return EB_EINTERNAL;
        r->duplicate = v < 0;
        r->seq = v < 0 ? -v : v;
        p = end;
        if (*p == ',')
            p++;
    }
    return *p == '}' ? EB_OK : EB_EINTERNAL;
}

eb_status eb_store_events_append(eb_db *db, struct eb_append_row *rows, size_t n)
{
    struct order *ord = eb_malloc((n ? n : 1) * sizeof *ord);
    size_t *starts = eb_malloc((n + 1) * sizeof *starts), ngroups = 0;
    struct group_params *params = NULL;
    bool pipeline = false;
    eb_status st = EB_OK, rst;

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
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ord[i].bus_id != ord[i - 1].bus_id)
            starts[ngroups++] = i;
    starts[ngroups] = n;
    if (ngroups == 0 || db->broken) {
        st = ngroups == 0 ? EB_OK : EB_EUNAVAIL;
        goto out;
    }
    params = eb_calloc(ngroups, sizeof *params);
    for (size_t g = 0; g < ngroups; g++)
        group_params_build(&params[g], rows, ord + starts[g], starts[g + 1] - starts[g]);

    /* One round trip: BEGIN, one call per bus, COMMIT, then a sync. */
    if (!PQenterPipelineMode(db->conn)) {
        db->broken = true;
        st = EB_EUNAVAIL;
        goto out;
    }
    pipeline = true;
    if (PQsendQueryParams(db->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1)
        goto send_failed;
    for (size_t g = 0; g < ngroups; g++)
        if (!send_group(db->conn, &params[g]))
            goto send_failed;
    if (PQsendQueryParams(db->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
        PQpipelineSync(db->conn) != 1)
        goto send_failed;

    st = read_result(db, "append_begin", NULL);
    for (size_t g = 0; g < ngroups; g++) {
        PGresult *res = NULL;
        rst = read_result(db, "append_call", &res);
        if (rst == EB_OK)
            rst = apply_answer(res, rows, ord + starts[g], starts[g + 1] - starts[g]);
        PQclear(res);
        if (st == EB_OK)
            st = rst;
        if (db->broken)
            goto out;
    }
    rst = read_result(db, "append_commit", NULL);
    if (st == EB_OK)
        st = rst;
    if (!db->broken) {
        PGresult *sync = PQgetResult(db->conn);
        if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC)
            db->broken = true;
        PQclear(sync);
    }
    goto out;

send_failed:
    eb_log_warn("msg=\"database send failed\" op=append error=\"%s\"",
                eb_db_first_line(PQerrorMessage(db->conn)));
    db->broken = true;
    st = EB_EUNAVAIL;
out:
    if (pipeline && !db->broken && !PQexitPipelineMode(db->conn))
        db->broken = true;
    /* After a failure the transaction may still be open (and aborted). A
     * COMMIT that failed may or may not have committed; callers report
     * failure either way, and the client's retry is answered by dedup. */
    if (st != EB_OK) {
        if (!db->broken && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
            eb_db_simple(db, "append_rollback", "ROLLBACK");
        for (size_t i = 0; i < n; i++) {
            rows[i].seq = 0;
            rows[i].duplicate = false;
        }
    }
    for (size_t g = 0; params && g < ngroups; g++)
        group_params_free(&params[g]);
    free(params);
    free(starts);
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

/* Reads events of a bus with sequence > after_seq, not expired, and with
 * expiry >= min_expires_us when it is not 0. */
static eb_status read_forward(eb_db *db, int64_t bus_id, int64_t after_seq,
                              int64_t min_expires_us, int limit, struct eb_event_rec **out,
                              size_t *n)
{
    char bid[24], after[24], lim[16], floor[24];
    const char *params[4] = {bid, after, lim, min_expires_us ? floor : NULL};
    struct eb_event_rec *recs;
    PGresult *res;
    eb_status st;
    int rows;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    snprintf(after, sizeof after, "%lld", (long long)after_seq);
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(floor, sizeof floor, "%lld", (long long)min_expires_us);
    /* cebus_read (migrations/0007_retention.sql) bounds the expiries it
     * reads on both sides, so only the partitions in between are planned
     * and probed. */
    st = eb_db_exec(db, "events_read",
                    "SELECT seq, received_us, body, expires_us FROM cebus_read($1, $2,"
                    " 'epoch'::timestamptz + $4::bigint * interval '1 microsecond', $3)",
                    4, params, NULL, NULL, 1, &res);
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
        recs[i].expires_us = be64(PQgetvalue(res, i, 3));
    }
    PQclear(res);
    *out = recs;
    *n = (size_t)rows;
    return EB_OK;
}

eb_status eb_store_events_read(eb_db *db, int64_t bus_id, int64_t after_seq, int limit,
                               struct eb_event_rec **out, size_t *n)
{
    return read_forward(db, bus_id, after_seq, 0, limit, out, n);
}

eb_status eb_store_events_tail(eb_db *db, int64_t bus_id, int64_t after_seq,
                               int64_t min_expires_us, int limit, struct eb_event_rec **out,
                               size_t *n)
{
    return read_forward(db, bus_id, after_seq, min_expires_us, limit, out, n);
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
                    " AND received_at >= $2::timestamptz AND expires_at > now()),"
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

eb_status eb_store_events_read_back(eb_db *db, int64_t bus_id, int64_t after_seq,
                                    int64_t before_seq, int limit, size_t max_bytes,
                                    struct eb_event_rec **out, size_t *n)
{
    char bid[24], after[24], before[24], lim[16], maxb[24];
    const char *params[5] = {bid, after, before, lim, maxb};
    struct eb_event_rec *recs;
    PGresult *res;
    eb_status st;
    int rows;

    snprintf(bid, sizeof bid, "%lld", (long long)bus_id);
    snprintf(after, sizeof after, "%lld", (long long)after_seq);
    snprintf(before, sizeof before, "%lld", (long long)before_seq);
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(maxb, sizeof maxb, "%zu", max_bytes);
    /* The running total counts the bytes before each row, so the row that
     * crosses max_bytes is still read and a page is never empty while
     * events remain. octet_length() of a TOASTed body reads its header
     * only. */
    st = eb_db_exec(db, "events_read_back",
                    "SELECT seq, (extract(epoch FROM received_at) * 1000000)::bigint, body"
                    " FROM (SELECT seq, received_at, body,"
                    " sum(octet_length(body)) OVER (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING)"
                    " - octet_length(body) AS bytes_before"
                    " FROM events WHERE bus_id = $1 AND seq > $2 AND seq < $3 AND expires_at > now()"
                    " ORDER BY seq DESC LIMIT $4) page"
                    " WHERE bytes_before < $5 ORDER BY seq DESC",
                    5, params, NULL, NULL, 1, &res);
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
