/* Durable subscriptions in the store: seek, dead letters and the
 * maintenance sweep (migrations/0010_dead_letters_seek.sql,
 * docs/decisions/0014-durable-subscriptions.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_durable.h"
#include "store_internal.h"
#include "util.h"

/* Rows one redrive or purge statement changes: a larger selection takes
 * several statements, each its own transaction, so that none holds many
 * row locks for long (0014). */
#define DEAD_PAGE_ROWS 10000

/* SQL for "as of now_us": the parameter, or the database's clock when NULL. */
#define AS_OF(n) "COALESCE(to_timestamp($" #n "::bigint / 1000000.0), now())"

eb_status eb_store_sub_seek(eb_db *db, int64_t sub_id, enum eb_seek_to to, int64_t seq,
                            int64_t time_us, int64_t now_us, int64_t *next_seq,
                            int64_t *oldest)
{
    char sid[24], kind[8], sq[24], when[24], now[24];
    const char *params[5] = {sid, kind, sq, when, now_us ? now : NULL};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(sid, sizeof sid, sub_id);
    snprintf(kind, sizeof kind, "%d", (int)to);
    eb_db_fmt_i64(sq, sizeof sq, seq);
    eb_db_fmt_i64(when, sizeof when, time_us);
    eb_db_fmt_i64(now, sizeof now, now_us);
    /* One statement in its own transaction, committed synchronously: once
     * the call answers, the old ack ids no longer apply anywhere. */
    st = eb_db_exec(db, "sub_seek",
                    "SELECT known, next_seq, oldest FROM cebus_sub_seek($1, $2, $3,"
                    " to_timestamp($4::bigint / 1000000.0), " AS_OF(5) ")",
                    5, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) != 1) {
        st = EB_EINTERNAL;
    } else if (PQgetvalue(res, 0, 0)[0] != 't') {
        st = EB_ENOTFOUND;
    } else if (PQgetisnull(res, 0, 1)) {
        *oldest = eb_db_int(res, 0, 2);
        st = EB_ERANGE;
    } else {
        *next_seq = eb_db_int(res, 0, 1);
        *oldest = eb_db_int(res, 0, 2);
    }
    PQclear(res);
    return st;
}

void eb_dead_recs_free(struct eb_dead_rec *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].last_error);
        free(v[i].body);
    }
    free(v);
}

eb_status eb_store_dead_list(eb_db *db, int64_t sub_id, int64_t after_seq, int limit,
                             struct eb_dead_rec **out, size_t *n)
{
    char sid[24], after[24], lim[16], maxb[24];
    const char *params[4] = {sid, after, lim, maxb};
    struct eb_dead_rec *recs;
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(sid, sizeof sid, sub_id);
    eb_db_fmt_i64(after, sizeof after, after_seq);
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(maxb, sizeof maxb, "%d", EB_DEAD_PAGE_BYTES);
    /* The event by its primary key and its exact expiry, so that only its
     * own partition is probed. The running total counts the bytes before
     * each row, so a page is never empty while dead letters remain. */
    st = eb_db_exec(db, "dead_list",
                    "SELECT seq, reason, last_error, attempts, created_us, body FROM ("
                    " SELECT y.*, COALESCE(sum(octet_length(y.body)) OVER (ORDER BY y.seq"
                    " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS bytes_before"
                    " FROM (SELECT d.seq, d.reason, d.last_error, d.attempts,"
                    " " EPOCH_US("d.created_at") " AS created_us, e.body"
                    " FROM dead_letters d LEFT JOIN events e ON e.bus_id = d.bus_id"
                    " AND e.seq = d.seq AND e.expires_at = d.expires_at AND e.expires_at > now()"
                    " WHERE d.sub_id = $1 AND d.seq > $2 ORDER BY d.seq LIMIT $3) y) x"
                    " WHERE bytes_before < $4 ORDER BY seq",
                    4, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    recs = eb_calloc(rows ? (size_t)rows : 1, sizeof *recs);
    for (int i = 0; i < rows; i++) {
        recs[i].seq = eb_db_int(res, i, 0);
        recs[i].reason = (int)eb_db_int(res, i, 1);
        if (!PQgetisnull(res, i, 2))
            recs[i].last_error = eb_strdup(PQgetvalue(res, i, 2));
        recs[i].attempts = (int32_t)eb_db_int(res, i, 3);
        recs[i].created_us = eb_db_int(res, i, 4);
        if (!PQgetisnull(res, i, 5)) {
            size_t len = 0;
            unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 5),
                                                 &len);
            if (!raw) {
                PQclear(res);
                eb_dead_recs_free(recs, (size_t)i + 1);
                return EB_EINTERNAL;
            }
            recs[i].body = eb_malloc(len ? len : 1);
            memcpy(recs[i].body, raw, len);
            recs[i].body_len = len;
            PQfreemem(raw);
        }
    }
    PQclear(res);
    *out = recs;
    *n = (size_t)rows;
    return EB_OK;
}

/* Runs one page statement of a redrive or purge (sql selects with $1 the
 * subscription, $2 the sequences or NULL, $3 the reason or NULL, $4 the
 * page size) until a page changes fewer rows than a page holds; adds the
 * rows changed to *count. */
static eb_status dead_pages(eb_db *db, const char *what, const char *sql, int64_t sub_id,
                            const struct eb_dead_filter *f, int64_t *count)
{
    char sid[24], reason[8], page[16];
    char *seqs = f->nseqs ? eb_db_id_array(f->seqs, f->nseqs) : NULL;
    const char *params[4] = {sid, seqs, f->reason > 0 ? reason : NULL, page};
    int64_t total = 0, changed;
    eb_status st;

    eb_db_fmt_i64(sid, sizeof sid, sub_id);
    snprintf(reason, sizeof reason, "%d", f->reason);
    snprintf(page, sizeof page, "%d", DEAD_PAGE_ROWS);
    do {
        PGresult *res;
        st = eb_db_exec(db, what, sql, 4, params, NULL, NULL, 0, &res);
        if (st)
            break;
        changed = strtoll(PQcmdTuples(res), NULL, 10);
        PQclear(res);
        total += changed;
    } while (changed >= DEAD_PAGE_ROWS);
    free(seqs);
    if (st == EB_OK)
        *count = total;
    return st;
}

/* The selection of a filter, for dead_pages: sequences $2 (NULL: any) and
 * reason $3 (NULL: any). */
#define DEAD_SELECTED                                                                     \
    "d.sub_id = $1 AND ($2::bigint[] IS NULL OR d.seq = ANY ($2::bigint[]))"            \
    " AND ($3::smallint IS NULL OR d.reason = $3::smallint)"

eb_status eb_store_dead_redrive(eb_db *db, int64_t sub_id, const struct eb_dead_filter *f,
                                int64_t *count)
{
    /* Dead letters whose event expired are left (maintenance removes
     * them); marked ones are not counted again. */
    return dead_pages(db, "dead_redrive",
                      "UPDATE dead_letters SET redrive = true WHERE (sub_id, seq) IN ("
                      " SELECT d.sub_id, d.seq FROM dead_letters d WHERE " DEAD_SELECTED
                      " AND NOT d.redrive AND d.expires_at > now() ORDER BY d.seq LIMIT $4"
                      " FOR UPDATE)",
                      sub_id, f, count);
}

eb_status eb_store_dead_purge(eb_db *db, int64_t sub_id, const struct eb_dead_filter *f,
                              int64_t *count)
{
    return dead_pages(db, "dead_purge",
                      "DELETE FROM dead_letters WHERE (sub_id, seq) IN ("
                      " SELECT d.sub_id, d.seq FROM dead_letters d WHERE " DEAD_SELECTED
                      " ORDER BY d.seq LIMIT $4 FOR UPDATE)",
                      sub_id, f, count);
}

eb_status eb_store_sub_sweep(eb_db *db, int64_t now_us, int64_t *dead, int64_t *expired)
{
    char when[24];
    const char *params[1] = {now_us ? when : NULL};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(when, sizeof when, now_us);
    st = eb_db_exec(db, "sub_sweep",
                    "SELECT skipped, dead, expired FROM cebus_sub_sweep(" AS_OF(1) ")", 1,
                    params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return EB_EINTERNAL;
    }
    /* A skipped run (another replica's) did nothing here. */
    *dead = eb_db_int(res, 0, 1);
    *expired = eb_db_int(res, 0, 2);
    PQclear(res);
    return EB_OK;
}
