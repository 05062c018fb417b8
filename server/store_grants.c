/* Statements for grants (another tenant's rights on a bus) and event
 * sources (the source prefixes a tenant may publish under). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_internal.h"
#include "util.h"

/* --- Grants ------------------------------------------------------------- */

eb_status eb_store_grant_insert(eb_db *db, int64_t bus_id, int64_t grantee_id, int permission,
                                int64_t *created_us)
{
    char bid[24], gid[24], perm[8];
    const char *params[3] = {bid, gid, perm};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    eb_db_fmt_i64(gid, sizeof gid, grantee_id);
    snprintf(perm, sizeof perm, "%d", permission);
    st = eb_db_exec(db, "grant_insert",
                    "INSERT INTO grants (bus_id, grantee_id, permission) VALUES ($1, $2, $3)"
                    " RETURNING " EPOCH_US("created_at"),
                    3, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    *created_us = eb_db_int(res, 0, 0);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_grant_delete(eb_db *db, int64_t bus_id, int64_t grantee_id, int permission)
{
    char bid[24], gid[24], perm[8];
    const char *params[3] = {bid, gid, perm};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    eb_db_fmt_i64(gid, sizeof gid, grantee_id);
    snprintf(perm, sizeof perm, "%d", permission);
    st = eb_db_exec(db, "grant_delete",
                    "DELETE FROM grants WHERE bus_id = $1 AND grantee_id = $2 AND permission = $3"
                    " RETURNING 1",
                    3, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    st = PQntuples(res) == 0 ? EB_ENOTFOUND : EB_OK;
    PQclear(res);
    return st;
}

eb_status eb_store_grant_list(eb_db *db, int64_t bus_id, const char *after_grantee,
                              int after_permission, int limit, struct eb_grant_rec **out,
                              size_t *n)
{
    char bid[24], perm[8], lim[16];
    const char *params[4] = {bid, after_grantee, perm, lim};
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    snprintf(perm, sizeof perm, "%d", after_permission);
    snprintf(lim, sizeof lim, "%d", limit);
    st = eb_db_exec(db, "grant_list",
                    "SELECT g.bus_id, g.grantee_id, t.name, g.permission, " EPOCH_US("g.created_at")
                    " FROM grants g JOIN tenants t ON t.id = g.grantee_id WHERE g.bus_id = $1"
                    " AND ($2 = '' OR (t.name, g.permission) > ($2, $3::int))"
                    " ORDER BY t.name, g.permission LIMIT $4",
                    4, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    *out = eb_calloc((size_t)rows + 1, sizeof **out);
    for (int i = 0; i < rows; i++) {
        struct eb_grant_rec *g = &(*out)[i];
        g->bus_id = eb_db_int(res, i, 0);
        g->grantee_id = eb_db_int(res, i, 1);
        eb_strlcpy(g->grantee, PQgetvalue(res, i, 2), sizeof g->grantee);
        g->permission = (int)eb_db_int(res, i, 3);
        g->created_us = eb_db_int(res, i, 4);
        snprintf(g->page_key, sizeof g->page_key, "%s/%d", g->grantee, g->permission);
    }
    *n = (size_t)rows;
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_grant_mask(eb_db *db, int64_t bus_id, int64_t grantee_id, unsigned *mask)
{
    char bid[24], gid[24];
    const char *params[2] = {bid, gid};
    PGresult *res;
    unsigned m = 0;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    eb_db_fmt_i64(gid, sizeof gid, grantee_id);
    st = eb_db_exec(db, "grant_mask",
                    "SELECT permission FROM grants WHERE bus_id = $1 AND grantee_id = $2", 2,
                    params, NULL, NULL, 0, &res);
    if (st)
        return st;
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t p = eb_db_int(res, i, 0);
        if (p >= 1 && p <= 3)
            m |= 1u << p;
    }
    PQclear(res);
    *mask = m;
    return EB_OK;
}

eb_status eb_store_grants_check(eb_db *db, const int64_t *grantee_ids, const int64_t *bus_ids,
                                size_t n, int permission, bool *present)
{
    char *gids = eb_db_id_array(grantee_ids, n), *bids = eb_db_id_array(bus_ids, n), perm[8];
    const char *params[3] = {gids, bids, perm};
    PGresult *res;
    eb_status st;

    snprintf(perm, sizeof perm, "%d", permission);
    st = eb_db_exec(db, "grants_check",
                    "SELECT EXISTS (SELECT 1 FROM grants g WHERE g.grantee_id = u.gid"
                    " AND g.bus_id = u.bid AND g.permission = $3)"
                    " FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS u(gid, bid, i)"
                    " ORDER BY u.i",
                    3, params, NULL, NULL, 0, &res);
    free(gids);
    free(bids);
    if (st)
        return st;
    if ((size_t)PQntuples(res) != n) {
        PQclear(res);
        return EB_EINTERNAL;
    }
    for (size_t i = 0; i < n; i++)
        present[i] = PQgetvalue(res, (int)i, 0)[0] == 't';
    PQclear(res);
    return EB_OK;
}

/* --- Event sources ------------------------------------------------------ */

/* Every registration takes this transaction-scoped advisory lock, so that
 * the overlap check and the insert of two tenants cannot interleave. */
#define SOURCE_LOCK_KEY "727274001"

eb_status eb_store_source_insert(eb_db *db, int64_t tenant_id, const char *prefix, int max)
{
    char tid[24];
    const char *params[2] = {tid, prefix};
    PGresult *res = NULL;
    int64_t count;
    bool taken;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    st = eb_db_simple(db, "source_insert_begin", "BEGIN");
    if (st)
        return st;
    st = eb_db_simple(db, "source_insert_lock",
                      "SELECT pg_advisory_xact_lock(" SOURCE_LOCK_KEY ")");
    if (st)
        return eb_db_tx_fail(db, st);
    /* Read after the lock: this statement's snapshot sees every
     * registration that committed before it. */
    st = eb_db_exec(db, "source_insert_check",
                    "SELECT (SELECT count(*) FROM event_sources WHERE tenant_id = $1),"
                    " EXISTS (SELECT 1 FROM event_sources WHERE tenant_id <> $1"
                    "         AND (starts_with($2, prefix) OR starts_with(prefix, $2)))",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return eb_db_tx_fail(db, st);
    count = eb_db_int(res, 0, 0);
    taken = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (taken)
        return eb_db_tx_fail(db, EB_EPERM);
    if (count >= max)
        return eb_db_tx_fail(db, EB_EEXHAUSTED);
    st = eb_db_exec(db, "source_insert",
                    "INSERT INTO event_sources (tenant_id, prefix) VALUES ($1, $2)", 2, params,
                    NULL, NULL, 0, NULL);
    if (st)
        return eb_db_tx_fail(db, st);
    st = eb_db_simple(db, "source_insert_commit", "COMMIT");
    if (st)
        return eb_db_tx_fail(db, st);
    return EB_OK;
}

eb_status eb_store_source_delete(eb_db *db, int64_t tenant_id, const char *prefix)
{
    char tid[24];
    const char *params[2] = {tid, prefix};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    st = eb_db_exec(db, "source_delete",
                    "DELETE FROM event_sources WHERE tenant_id = $1 AND prefix = $2 RETURNING 1", 2,
                    params, NULL, NULL, 0, &res);
    if (st)
        return st;
    st = PQntuples(res) == 0 ? EB_ENOTFOUND : EB_OK;
    PQclear(res);
    return st;
}

eb_status eb_store_source_owners(eb_db *db, int limit, struct eb_source_owner **out, size_t *n,
                                 int64_t *total)
{
    char lim[16];
    const char *params[1] = {lim};
    PGresult *res;
    eb_status st;
    int rows;

    snprintf(lim, sizeof lim, "%d", limit);
    /* COLLATE "C": byte order, the order strcmp() and the search in auth.c
     * assume. */
    st = eb_db_exec(db, "source_owners",
                    "SELECT tenant_id, prefix, count(*) OVER () FROM event_sources"
                    " ORDER BY prefix COLLATE \"C\" LIMIT $1",
                    1, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    *out = eb_calloc((size_t)rows + 1, sizeof **out);
    for (int i = 0; i < rows; i++) {
        (*out)[i].tenant_id = eb_db_int(res, i, 0);
        (*out)[i].prefix = eb_strdup(PQgetvalue(res, i, 1));
    }
    *total = rows ? eb_db_int(res, 0, 2) : 0;
    *n = (size_t)rows;
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_source_count(eb_db *db, int64_t *total)
{
    PGresult *res;
    eb_status st;

    st = eb_db_exec(db, "source_count", "SELECT count(*) FROM event_sources", 0, NULL, NULL,
                    NULL, 0, &res);
    if (st)
        return st;
    *total = eb_db_int(res, 0, 0);
    PQclear(res);
    return EB_OK;
}

void eb_source_owners_free(struct eb_source_owner *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i].prefix);
    free(v);
}

eb_status eb_store_source_list(eb_db *db, int64_t tenant_id, int limit,
                               struct eb_source_rec **out, size_t *n)
{
    char tid[24], lim[16];
    const char *params[2] = {tid, lim};
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    snprintf(lim, sizeof lim, "%d", limit);
    st = eb_db_exec(db, "source_list",
                    "SELECT prefix FROM event_sources WHERE tenant_id = $1 ORDER BY prefix"
                    " LIMIT $2",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    *out = eb_calloc((size_t)rows + 1, sizeof **out);
    for (int i = 0; i < rows; i++)
        eb_strlcpy((*out)[i].prefix, PQgetvalue(res, i, 0), sizeof (*out)[i].prefix);
    *n = (size_t)rows;
    PQclear(res);
    return EB_OK;
}
