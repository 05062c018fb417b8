/* Statements of the Admin service beyond creation: listing, updating and
 * deleting tenants and buses, listing and revoking keys, and the periodic
 * check of open streams' keys and buses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_internal.h"
#include "util.h"

/* Deletes the events and dedup entries of buses ids[] (an array literal).
 * Neither table has a foreign key to buses (they are written per event),
 * so bus and tenant deletion remove their rows here, inside the caller's
 * transaction. */
static eb_status delete_bus_rows(eb_db *db, const char *ids)
{
    const char *params[1] = {ids};
    eb_status st;

    st = eb_db_exec(db, "bus_events_delete", "DELETE FROM events WHERE bus_id = ANY($1::bigint[])",
                    1, params, NULL, NULL, 0, NULL);
    if (st)
        return st;
    return eb_db_exec(db, "bus_dedup_delete",
                      "DELETE FROM event_dedup WHERE bus_id = ANY($1::bigint[])", 1, params, NULL,
                      NULL, 0, NULL);
}

/* --- Tenants ------------------------------------------------------------ */

eb_status eb_store_tenant_list(eb_db *db, const char *after, int limit,
                               struct eb_tenant_rec **out, size_t *n)
{
    char lim[16];
    const char *params[2] = {after, lim};
    PGresult *res;
    eb_status st;
    int rows;

    snprintf(lim, sizeof lim, "%d", limit);
    st = eb_db_exec(db, "tenant_list",
                    "SELECT " TENANT_COLS " FROM tenants WHERE name > $1 ORDER BY name LIMIT $2",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    *out = eb_calloc((size_t)rows, sizeof **out);
    for (int i = 0; i < rows; i++)
        eb_db_tenant_from_row(res, i, &(*out)[i]);
    *n = (size_t)rows;
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_tenant_update(eb_db *db, int64_t tenant_id, const char *display_name,
                                 int disabled, struct eb_tenant_rec *out)
{
    char tid[24], dis[2] = {disabled > 0 ? 't' : 'f', '\0'};
    const char *params[3] = {tid, display_name, disabled < 0 ? NULL : dis};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    st = eb_db_exec(db, "tenant_update",
                    "UPDATE tenants SET display_name = COALESCE($2, display_name),"
                    " disabled = COALESCE($3::boolean, disabled) WHERE id = $1"
                    " RETURNING " TENANT_COLS,
                    3, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        eb_db_tenant_from_row(res, 0, out);
    PQclear(res);
    return st;
}

eb_status eb_store_tenant_delete(eb_db *db, int64_t tenant_id)
{
    char tid[24];
    const char *params[1] = {tid};
    PGresult *res = NULL;
    char *ids = NULL;
    int64_t *bus_ids = NULL;
    int rows;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    st = eb_db_simple(db, "tenant_delete_begin", "BEGIN");
    if (st)
        return st;
    /* The tenant's row lock keeps new buses out (their foreign key check
     * waits for it), and the buses' row locks keep appenders out: an
     * append that committed before is deleted below, one that waits finds
     * its bus gone. */
    st = eb_db_exec(db, "tenant_delete_lock", "SELECT id FROM tenants WHERE id = $1 FOR UPDATE", 1,
                    params, NULL, NULL, 0, &res);
    if (st)
        return eb_db_tx_fail(db, st);
    rows = PQntuples(res);
    PQclear(res);
    if (rows == 0)
        return eb_db_tx_fail(db, EB_ENOTFOUND);
    st = eb_db_exec(db, "tenant_delete_buses",
                    "SELECT id FROM buses WHERE tenant_id = $1 ORDER BY id FOR UPDATE", 1, params,
                    NULL, NULL, 0, &res);
    if (st)
        return eb_db_tx_fail(db, st);
    rows = PQntuples(res);
    bus_ids = eb_calloc((size_t)rows + 1, sizeof *bus_ids);
    for (int i = 0; i < rows; i++)
        bus_ids[i] = eb_db_int(res, i, 0);
    PQclear(res);
    ids = eb_db_id_array(bus_ids, (size_t)rows);
    free(bus_ids);
    st = delete_bus_rows(db, ids);
    free(ids);
    if (st)
        return eb_db_tx_fail(db, st);
    /* Keys, buses, rules and targets go by ON DELETE CASCADE. */
    st = eb_db_exec(db, "tenant_delete", "DELETE FROM tenants WHERE id = $1", 1, params, NULL,
                    NULL, 0, NULL);
    if (st)
        return eb_db_tx_fail(db, st);
    st = eb_db_simple(db, "tenant_delete_commit", "COMMIT");
    if (st)
        return eb_db_tx_fail(db, st);
    return EB_OK;
}

/* --- Keys --------------------------------------------------------------- */

#define KEY_COLS                                                                       \
    "k.prefix, t.name, k.role, k.description, " EPOCH_US("k.created_at")               \
    ", COALESCE(" EPOCH_US("k.expires_at") ", 0), k.revoked_at IS NOT NULL, k.tenant_id"

static void key_from_row(PGresult *res, int row, struct eb_key_info *k)
{
    memset(k, 0, sizeof *k);
    eb_strlcpy(k->prefix, PQgetvalue(res, row, 0), sizeof k->prefix);
    eb_strlcpy(k->tenant, PQgetvalue(res, row, 1), sizeof k->tenant);
    k->role = (int)eb_db_int(res, row, 2);
    eb_strlcpy(k->description, PQgetvalue(res, row, 3), sizeof k->description);
    k->created_us = eb_db_int(res, row, 4);
    k->expires_us = eb_db_int(res, row, 5);
    k->revoked = PQgetvalue(res, row, 6)[0] == 't';
    k->tenant_id = eb_db_int(res, row, 7);
}

eb_status eb_store_key_list(eb_db *db, int64_t tenant_id, const char *after, int limit,
                            struct eb_key_info **out, size_t *n)
{
    char tid[24], lim[16];
    const char *params[3] = {tid, after, lim};
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    snprintf(lim, sizeof lim, "%d", limit);
    st = eb_db_exec(db, "key_list",
                    "SELECT " KEY_COLS " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
                    " WHERE k.tenant_id = $1 AND k.prefix > $2 ORDER BY k.prefix LIMIT $3",
                    3, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    *out = eb_calloc((size_t)rows, sizeof **out);
    for (int i = 0; i < rows; i++)
        key_from_row(res, i, &(*out)[i]);
    *n = (size_t)rows;
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_key_revoke(eb_db *db, int64_t tenant_id, const char *prefix, bool admin_keys,
                              struct eb_key_info *out)
{
    char tid[24];
    const char *params[2] = {prefix, tid};
    struct eb_key_info k;
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    st = eb_db_simple(db, "key_revoke_begin", "BEGIN");
    if (st)
        return st;
    st = eb_db_exec(db, "key_revoke_get",
                    "SELECT " KEY_COLS " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
                    " WHERE k.prefix = $1 AND ($2::bigint = 0 OR k.tenant_id = $2::bigint)"
                    " FOR UPDATE OF k",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return eb_db_tx_fail(db, st);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return eb_db_tx_fail(db, EB_ENOTFOUND);
    }
    key_from_row(res, 0, &k);
    PQclear(res);
    if (k.role == 1 && !admin_keys)
        return eb_db_tx_fail(db, EB_EPERM);
    if (k.revoked) {
        /* Revoking twice changes nothing and is not an error. */
        eb_db_simple(db, "key_revoke_rollback", "ROLLBACK");
        *out = k;
        return EB_OK;
    }
    if (k.role == 1) {
        int64_t usable;
        /* Locking every usable platform admin key serializes concurrent
         * revocations, so that two of them cannot each leave the other
         * as "the last one" and both succeed. */
        st = eb_db_exec(db, "key_revoke_admins",
                        "SELECT count(*) FROM (SELECT id FROM api_keys WHERE role = 1"
                        " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
                        " FOR UPDATE) a",
                        0, NULL, NULL, NULL, 0, &res);
        if (st)
            return eb_db_tx_fail(db, st);
        usable = eb_db_int(res, 0, 0);
        PQclear(res);
        if (usable <= 1)
            return eb_db_tx_fail(db, EB_EPRECOND);
    }
    st = eb_db_exec(db, "key_revoke",
                    "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1", 1, params, NULL,
                    NULL, 0, NULL);
    if (st)
        return eb_db_tx_fail(db, st);
    st = eb_db_simple(db, "key_revoke_commit", "COMMIT");
    if (st)
        return eb_db_tx_fail(db, st);
    k.revoked = true;
    *out = k;
    return EB_OK;
}

/* --- Buses -------------------------------------------------------------- */

eb_status eb_store_bus_update(eb_db *db, int64_t bus_id, int retention_hours,
                              int dedup_window_seconds, struct eb_bus_rec *out)
{
    char bid[24], ret[16], dedup[16];
    const char *params[3] = {bid, retention_hours < 0 ? NULL : ret,
                             dedup_window_seconds < 0 ? NULL : dedup};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    snprintf(ret, sizeof ret, "%d", retention_hours);
    snprintf(dedup, sizeof dedup, "%d", dedup_window_seconds);
    if (retention_hours >= 0)
        eb_store_partitions_for_retention(db, retention_hours);
    st = eb_db_exec(db, "bus_update",
                    "WITH b AS (UPDATE buses SET retention_hours = COALESCE($2::integer,"
                    " retention_hours), dedup_window_seconds = COALESCE($3::integer,"
                    " dedup_window_seconds) WHERE id = $1 RETURNING *)"
                    " SELECT " BUS_COLS " FROM b JOIN tenants t ON t.id = b.tenant_id",
                    3, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        eb_db_bus_from_row(res, 0, out);
    PQclear(res);
    return st;
}

eb_status eb_store_bus_delete(eb_db *db, int64_t bus_id)
{
    char bid[24], ids[32];
    const char *params[1] = {bid};
    PGresult *res;
    eb_status st;
    int rows;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    snprintf(ids, sizeof ids, "{%lld}", (long long)bus_id);
    st = eb_db_simple(db, "bus_delete_begin", "BEGIN");
    if (st)
        return st;
    /* The counter row's lock waits for appends in flight and keeps later
     * ones out until the bus is gone (they then find no bus). */
    st = eb_db_exec(db, "bus_delete_lock", "SELECT id FROM buses WHERE id = $1 FOR UPDATE", 1,
                    params, NULL, NULL, 0, &res);
    if (st)
        return eb_db_tx_fail(db, st);
    rows = PQntuples(res);
    PQclear(res);
    if (rows == 0)
        return eb_db_tx_fail(db, EB_ENOTFOUND);
    st = delete_bus_rows(db, ids);
    if (st)
        return eb_db_tx_fail(db, st);
    /* Rules and targets go by ON DELETE CASCADE. */
    st = eb_db_exec(db, "bus_delete", "DELETE FROM buses WHERE id = $1", 1, params, NULL, NULL, 0,
                    NULL);
    if (st)
        return eb_db_tx_fail(db, st);
    st = eb_db_simple(db, "bus_delete_commit", "COMMIT");
    if (st)
        return eb_db_tx_fail(db, st);
    return EB_OK;
}

/* --- Streams ------------------------------------------------------------ */

eb_status eb_store_streams_check(eb_db *db, const int64_t *key_ids, size_t nkeys,
                                 const int64_t *bus_ids, size_t nbuses, int64_t **bad_keys,
                                 size_t *nbad_keys, int64_t **gone_buses, size_t *ngone)
{
    char *keys = eb_db_id_array(key_ids, nkeys), *buses = eb_db_id_array(bus_ids, nbuses);
    const char *params[2] = {keys, buses};
    int64_t *bk = NULL, *gb = NULL;
    size_t nbk = 0, ngb = 0;
    PGresult *res;
    eb_status st;
    int rows;

    st = eb_db_exec(db, "streams_check",
                    "SELECT 0, u.id FROM unnest($1::bigint[]) AS u(id) WHERE NOT EXISTS ("
                    "SELECT 1 FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
                    " WHERE k.id = u.id AND k.revoked_at IS NULL AND NOT t.disabled"
                    " AND (k.expires_at IS NULL OR k.expires_at > now()))"
                    " UNION ALL"
                    " SELECT 1, u.id FROM unnest($2::bigint[]) AS u(id)"
                    " WHERE NOT EXISTS (SELECT 1 FROM buses b WHERE b.id = u.id)",
                    2, params, NULL, NULL, 0, &res);
    free(keys);
    free(buses);
    if (st)
        return st;
    rows = PQntuples(res);
    bk = eb_calloc((size_t)rows + 1, sizeof *bk);
    gb = eb_calloc((size_t)rows + 1, sizeof *gb);
    for (int i = 0; i < rows; i++) {
        if (eb_db_int(res, i, 0) == 0)
            bk[nbk++] = eb_db_int(res, i, 1);
        else
            gb[ngb++] = eb_db_int(res, i, 1);
    }
    PQclear(res);
    *bad_keys = bk;
    *nbad_keys = nbk;
    *gone_buses = gb;
    *ngone = ngb;
    return EB_OK;
}
