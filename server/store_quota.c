/* Quotas and the live-server registry. */
#include "store_quota.h"
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The columns in the order of struct eb_quota_limits. */
#define QUOTA_COLS \
    "events_per_second, bytes_per_second, burst_seconds, rules_per_bus, subscriptions, " \
    "concurrent_streams"

eb_status eb_store_quota_get(eb_db *db, int64_t tenant_id, struct eb_quota_limits *out)
{
    char tid[24];
    const char *params[1] = {tid};
    struct eb_quota_limits q;
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    st = eb_db_exec(db, "quota_get", "SELECT " QUOTA_COLS " FROM quotas WHERE tenant_id = $1", 1,
                    params, NULL, NULL, 0, &res);
    if (st)
        return st;
    memset(&q, 0, sizeof q);
    if (PQntuples(res) > 0) {
        q.events_per_second = eb_db_int(res, 0, 0);
        q.bytes_per_second = eb_db_int(res, 0, 1);
        q.burst_seconds = eb_db_int(res, 0, 2);
        q.rules_per_bus = eb_db_int(res, 0, 3);
        q.subscriptions = eb_db_int(res, 0, 4);
        q.concurrent_streams = eb_db_int(res, 0, 5);
    }
    PQclear(res);
    *out = q;
    return EB_OK;
}

eb_status eb_store_quota_set(eb_db *db, int64_t tenant_id, const struct eb_quota_limits *q)
{
    const int64_t v[6] = {q->events_per_second, q->bytes_per_second, q->burst_seconds,
                          q->rules_per_bus,     q->subscriptions,    q->concurrent_streams};
    char buf[7][24];
    const char *params[7];

    eb_db_fmt_i64(buf[0], sizeof buf[0], tenant_id);
    params[0] = buf[0];
    for (int i = 0; i < 6; i++) {
        eb_db_fmt_i64(buf[i + 1], sizeof buf[i + 1], v[i]);
        params[i + 1] = v[i] > 0 ? buf[i + 1] : NULL; /* NULL: the default */
    }
    /* A missing tenant fails the foreign key: EB_ENOTFOUND. */
    return eb_db_exec(db, "quota_set",
                      "INSERT INTO quotas (tenant_id, " QUOTA_COLS ")"
                      " VALUES ($1, $2, $3, $4, $5, $6, $7)"
                      " ON CONFLICT (tenant_id) DO UPDATE SET"
                      " events_per_second = $2, bytes_per_second = $3, burst_seconds = $4,"
                      " rules_per_bus = $5, subscriptions = $6, concurrent_streams = $7,"
                      " updated_at = now()",
                      7, params, NULL, NULL, 0, NULL);
}

#define LIVE_INTERVAL "interval '" EB_STR(EB_HEARTBEAT_LIVE_SECONDS) " seconds'"
#define EB_STR(x) EB_STR2(x)
#define EB_STR2(x) #x

eb_status eb_store_heartbeat(eb_db *db, const char *server_id, const int64_t *tenants,
                             const int64_t *streams, size_t n, int *live, int64_t **rtenants,
                             int64_t **rstreams, size_t *rn)
{
    char *tarr = eb_db_id_array(tenants, n), *sarr = eb_db_id_array(streams, n);
    const char *params[3] = {server_id, tarr, sarr};
    PGresult *res = NULL;
    int64_t *rt = NULL, *rs = NULL;
    int rows, nlive;
    eb_status st;

    st = eb_db_simple(db, "heartbeat_begin", "BEGIN");
    if (st)
        goto out;
    st = eb_db_exec(db, "heartbeat",
                    "INSERT INTO server_heartbeats (server_id, heartbeat_at) VALUES ($1, now())"
                    " ON CONFLICT (server_id) DO UPDATE SET heartbeat_at = now()",
                    1, params, NULL, NULL, 0, NULL);
    if (!st)
        st = eb_db_exec(db, "heartbeat_streams_clear",
                        "DELETE FROM server_streams WHERE server_id = $1", 1, params, NULL, NULL,
                        0, NULL);
    if (!st && n > 0)
        st = eb_db_exec(db, "heartbeat_streams",
                        "INSERT INTO server_streams (server_id, tenant_id, streams)"
                        " SELECT $1, t, s FROM unnest($2::bigint[], $3::bigint[]) AS u (t, s)",
                        3, params, NULL, NULL, 0, NULL);
    /* Servers that stopped without removing their row (a crash). */
    if (!st)
        st = eb_db_simple(db, "heartbeat_expire",
                          "DELETE FROM server_heartbeats"
                          " WHERE heartbeat_at < now() - interval '60 seconds'");
    if (!st)
        st = eb_db_exec(db, "heartbeat_live",
                        "SELECT (SELECT count(*) FROM server_heartbeats"
                        "         WHERE heartbeat_at > now() - " LIVE_INTERVAL "), NULL, NULL"
                        " UNION ALL"
                        " SELECT NULL, s.tenant_id, sum(s.streams) FROM server_streams s"
                        " JOIN server_heartbeats h USING (server_id)"
                        " WHERE s.server_id <> $1 AND h.heartbeat_at > now() - " LIVE_INTERVAL
                        " GROUP BY s.tenant_id",
                        1, params, NULL, NULL, 0, &res);
    if (!st)
        st = eb_db_simple(db, "heartbeat_commit", "COMMIT");
    if (st) {
        eb_db_tx_fail(db, st);
        goto out;
    }
    rows = PQntuples(res);
    nlive = (int)eb_db_int(res, 0, 0);
    rt = eb_calloc((size_t)rows + 1, sizeof *rt);
    rs = eb_calloc((size_t)rows + 1, sizeof *rs);
    for (int i = 1; i < rows; i++) {
        rt[i - 1] = eb_db_int(res, i, 1);
        rs[i - 1] = eb_db_int(res, i, 2);
    }
    *live = nlive > 0 ? nlive : 1;
    *rtenants = rt;
    *rstreams = rs;
    *rn = rows > 0 ? (size_t)rows - 1 : 0;
out:
    PQclear(res);
    free(tarr);
    free(sarr);
    return st;
}

eb_status eb_store_heartbeat_remove(eb_db *db, const char *server_id)
{
    const char *params[1] = {server_id};

    return eb_db_exec(db, "heartbeat_remove", "DELETE FROM server_heartbeats WHERE server_id = $1",
                      1, params, NULL, NULL, 0, NULL);
}

eb_status eb_store_rule_limits_check_tx(eb_db *db, int64_t bus_id, const char *except_rule,
                                        int64_t new_subscriptions,
                                        struct eb_rule_limits *lim)
{
    char tid[24], bid[24];
    /* Rule names are never empty: "" excludes nothing. */
    const char *params[3] = {tid, bid, except_rule ? except_rule : ""};
    PGresult *res;
    int64_t rules, subs;
    bool exists;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, lim->tenant_id);
    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    /* One lock per owning tenant, held to the end of the transaction: rule
     * changes of one tenant pass the count one at a time, so concurrent
     * creates cannot both take the last place. It is not the bus row,
     * which the appender locks for every batch. */
    st = eb_db_exec(db, "rule_limits_lock",
                    "SELECT pg_advisory_xact_lock(739102006, ($1::bigint % 2147483647)::int)", 1,
                    params, NULL, NULL, 0, NULL);
    if (st)
        return st;
    st = eb_db_exec(db, "rule_limits_count",
                    "SELECT (SELECT count(*) FROM rules WHERE bus_id = $2 AND name <> $3),"
                    " (SELECT count(*) FROM targets g JOIN buses b ON b.id = g.bus_id"
                    "   JOIN rules r ON r.id = g.rule_id"
                    "   WHERE b.tenant_id = $1 AND g.subscription IS NOT NULL"
                    "   AND NOT (r.bus_id = $2 AND r.name = $3)),"
                    " EXISTS (SELECT 1 FROM rules WHERE bus_id = $2 AND name = $3)",
                    3, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rules = eb_db_int(res, 0, 0);
    subs = eb_db_int(res, 0, 1);
    exists = PQgetvalue(res, 0, 2)[0] == 't';
    PQclear(res);
    lim->exceeded = NULL;
    if (except_rule && !exists)
        return EB_ENOTFOUND; /* the update's own answer, not a quota's */
    if (!except_rule && rules + 1 > lim->max_rules)
        lim->exceeded = "rules_per_bus";
    else if (new_subscriptions > 0 && subs + new_subscriptions > lim->max_subscriptions)
        lim->exceeded = "subscriptions";
    return lim->exceeded ? EB_EEXHAUSTED : EB_OK;
}
