/* Statements for tenants, API keys, buses and rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "store_internal.h"
#include "util.h"

/* Runs a keyset-paged listing: sql takes $1 = owner id, $2 = the last
 * name of the previous page ("" for the first), $3 = limit. */
static eb_status page_query(eb_db *db, const char *what, const char *sql, int64_t owner,
                            const char *after, int limit, PGresult **res)
{
    char oid[24], lim[16];
    const char *params[3] = {oid, after, lim};

    eb_db_fmt_i64(oid, sizeof oid, owner);
    snprintf(lim, sizeof lim, "%d", limit);
    return eb_db_exec(db, what, sql, 3, params, NULL, NULL, 0, res);
}

/* --- Tenants ------------------------------------------------------------ */

eb_status eb_store_tenant_insert(eb_db *db, const char *name, const char *display_name,
                                 struct eb_tenant_rec *out)
{
    const char *params[2] = {name, display_name};
    PGresult *res;
    eb_status st;

    st = eb_db_exec(db, "tenant_insert",
                    "INSERT INTO tenants (name, display_name) VALUES ($1, $2) RETURNING " TENANT_COLS,
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    eb_db_tenant_from_row(res, 0, out);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_tenant_get(eb_db *db, const char *name, struct eb_tenant_rec *out)
{
    const char *params[1] = {name};
    PGresult *res;
    eb_status st;

    st = eb_db_exec(db, "tenant_get", "SELECT " TENANT_COLS " FROM tenants WHERE name = $1", 1,
                    params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        eb_db_tenant_from_row(res, 0, out);
    PQclear(res);
    return st;
}

/* --- Keys --------------------------------------------------------------- */

eb_status eb_store_key_insert(eb_db *db, int64_t tenant_id, const char *prefix,
                              const uint8_t hash[32], int role, const char *description,
                              int64_t expires_us, int64_t *created_us)
{
    char tid[24], rolebuf[8], exp[24];
    const char *params[6] = {tid, prefix, (const char *)hash, rolebuf, description,
                             expires_us ? exp : NULL};
    int lengths[6] = {0, 0, 32, 0, 0, 0};
    int formats[6] = {0, 0, 1, 0, 0, 0};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    snprintf(rolebuf, sizeof rolebuf, "%d", role);
    eb_db_fmt_i64(exp, sizeof exp, expires_us);
    st = eb_db_exec(db, "key_insert",
                    "INSERT INTO api_keys (tenant_id, prefix, hash, role, description, expires_at)"
                    " VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint / 1000000.0))"
                    " RETURNING " EPOCH_US("created_at"),
                    6, params, lengths, formats, 0, &res);
    if (st)
        return st;
    if (created_us)
        *created_us = eb_db_int(res, 0, 0);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_key_lookup(eb_db *db, const uint8_t hash[32], struct eb_key_rec *out)
{
    const char *params[1] = {(const char *)hash};
    int lengths[1] = {32};
    int formats[1] = {1};
    PGresult *res;
    eb_status st;

    st = eb_db_exec(db, "key_lookup",
                    "SELECT k.id, k.tenant_id, t.name, k.prefix, k.role, t.disabled,"
                    " k.revoked_at IS NOT NULL, COALESCE(" EPOCH_US("k.expires_at") ", 0)"
                    " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = $1",
                    1, params, lengths, formats, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0) {
        st = EB_ENOTFOUND;
    } else {
        out->id = eb_db_int(res, 0, 0);
        out->tenant_id = eb_db_int(res, 0, 1);
        eb_strlcpy(out->tenant, PQgetvalue(res, 0, 2), sizeof out->tenant);
        eb_strlcpy(out->prefix, PQgetvalue(res, 0, 3), sizeof out->prefix);
        out->role = (int)eb_db_int(res, 0, 4);
        out->tenant_disabled = PQgetvalue(res, 0, 5)[0] == 't';
        out->revoked = PQgetvalue(res, 0, 6)[0] == 't';
        out->expires_us = eb_db_int(res, 0, 7);
    }
    PQclear(res);
    return st;
}

eb_status eb_store_admin_key_count(eb_db *db, int64_t *count)
{
    PGresult *res;
    eb_status st;

    st = eb_db_exec(db, "admin_key_count",
                    "SELECT count(*) FROM api_keys WHERE role = 1 AND revoked_at IS NULL", 0, NULL,
                    NULL, NULL, 0, &res);
    if (st)
        return st;
    *count = eb_db_int(res, 0, 0);
    PQclear(res);
    return EB_OK;
}

/* --- Buses -------------------------------------------------------------- */

eb_status eb_store_bus_insert(eb_db *db, int64_t tenant_id, const char *name,
                              int retention_hours, int dedup_window_seconds,
                              struct eb_bus_rec *out)
{
    char tid[24], ret[16], dedup[16];
    const char *params[4] = {tid, name, ret, dedup};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(tid, sizeof tid, tenant_id);
    snprintf(ret, sizeof ret, "%d", retention_hours);
    snprintf(dedup, sizeof dedup, "%d", dedup_window_seconds);
    eb_store_partitions_for_retention(db, retention_hours);
    st = eb_db_exec(db, "bus_insert",
                    "WITH b AS (INSERT INTO buses (tenant_id, name, retention_hours,"
                    " dedup_window_seconds) VALUES ($1, $2, $3, $4) RETURNING *)"
                    " SELECT " BUS_COLS " FROM b JOIN tenants t ON t.id = b.tenant_id",
                    4, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    eb_db_bus_from_row(res, 0, out);
    PQclear(res);
    return EB_OK;
}

eb_status eb_store_bus_get(eb_db *db, const char *tenant, const char *name,
                           struct eb_bus_rec *out)
{
    const char *params[2] = {tenant, name};
    PGresult *res;
    eb_status st;

    st = eb_db_exec(db, "bus_get",
                    "SELECT " BUS_COLS " FROM buses b JOIN tenants t ON t.id = b.tenant_id"
                    " WHERE t.name = $1 AND b.name = $2",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0)
        st = EB_ENOTFOUND;
    else
        eb_db_bus_from_row(res, 0, out);
    PQclear(res);
    return st;
}

eb_status eb_store_bus_list(eb_db *db, int64_t tenant_id, const char *after, int limit,
                            struct eb_bus_rec **out, size_t *n)
{
    PGresult *res;
    eb_status st;
    int rows;

    st = page_query(db, "bus_list",
                    "SELECT " BUS_COLS " FROM buses b JOIN tenants t ON t.id = b.tenant_id"
                    " WHERE b.tenant_id = $1 AND b.name > $2 ORDER BY b.name LIMIT $3",
                    tenant_id, after, limit, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    *out = eb_calloc((size_t)rows, sizeof **out);
    for (int i = 0; i < rows; i++)
        eb_db_bus_from_row(res, i, &(*out)[i]);
    *n = (size_t)rows;
    PQclear(res);
    return EB_OK;
}

/* --- Rules -------------------------------------------------------------- */

void eb_rule_rec_clear(struct eb_rule_rec *r)
{
    if (!r)
        return;
    free(r->pattern);
    free(r->description);
    for (size_t i = 0; i < r->ntargets; i++)
        free(r->targets[i].value);
    free(r->targets);
    memset(r, 0, sizeof *r);
}

#define RULE_COLS                                                                   \
    "r.id, r.name, r.pattern, r.description, r.enabled, " EPOCH_US("r.created_at") \
    ", " EPOCH_US("r.updated_at") ", r.version"

static void rule_from_row(PGresult *res, int row, struct eb_rule_rec *r)
{
    memset(r, 0, sizeof *r);
    r->id = eb_db_int(res, row, 0);
    eb_strlcpy(r->name, PQgetvalue(res, row, 1), sizeof r->name);
    r->pattern = eb_strdup(PQgetvalue(res, row, 2));
    r->description = eb_strdup(PQgetvalue(res, row, 3));
    r->enabled = PQgetvalue(res, row, 4)[0] == 't';
    r->created_us = eb_db_int(res, row, 5);
    r->updated_us = eb_db_int(res, row, 6);
    r->version = eb_db_int(res, row, 7);
}

/* Loads the targets of the rules in rules[0..n), by rule id. */
static eb_status load_targets(eb_db *db, struct eb_rule_rec *rules, size_t n)
{
    int64_t *rule_ids;
    char *ids;
    const char *params[1];
    PGresult *res;
    eb_status st;

    if (n == 0)
        return EB_OK;
    rule_ids = eb_malloc(n * sizeof *rule_ids);
    for (size_t i = 0; i < n; i++)
        rule_ids[i] = rules[i].id;
    ids = eb_db_id_array(rule_ids, n);
    free(rule_ids);
    params[0] = ids;
    st = eb_db_exec(db, "targets_load",
                    "SELECT rule_id, kind, COALESCE(subscription, url, target_bus, ''),"
                    " COALESCE(ack_deadline_s, 0), COALESCE(max_attempts, 0),"
                    " COALESCE(max_age_s, 0), COALESCE(max_outstanding, 0)"
                    " FROM targets WHERE rule_id = ANY($1::bigint[]) ORDER BY rule_id, position",
                    1, params, NULL, NULL, 0, &res);
    free(ids);
    if (st)
        return st;
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t rid = eb_db_int(res, row, 0);
        for (size_t i = 0; i < n; i++) {
            struct eb_rule_rec *r = &rules[i];
            if (r->id != rid)
                continue;
            struct eb_target_rec *t;

            r->targets = eb_realloc(r->targets, (r->ntargets + 1) * sizeof *r->targets);
            t = &r->targets[r->ntargets++];
            memset(t, 0, sizeof *t);
            t->kind = (enum eb_target_kind)eb_db_int(res, row, 1);
            t->value = eb_strdup(PQgetvalue(res, row, 2));
            t->sub.ack_deadline_s = (int32_t)eb_db_int(res, row, 3);
            t->sub.max_attempts = (int32_t)eb_db_int(res, row, 4);
            t->sub.max_age_s = (int32_t)eb_db_int(res, row, 5);
            t->sub.max_outstanding = (int32_t)eb_db_int(res, row, 6);
            break;
        }
    }
    PQclear(res);
    return EB_OK;
}

/* Formats a subscription setting for a parameter: NULL (the default) when
 * v is 0 or the target is no subscription. */
static const char *setting_param(char *buf, size_t size, const struct eb_target_rec *t,
                                 int32_t v)
{
    if (t->kind != EB_TARGET_SUBSCRIPTION || v == 0)
        return NULL;
    snprintf(buf, size, "%d", (int)v);
    return buf;
}

/* Inserts targets[0..n) of rule rule_id. REQUIRES: an open transaction. */
static eb_status insert_targets(eb_db *db, int64_t bus_id, int64_t rule_id,
                                const struct eb_target_rec *targets, size_t n)
{
    char bid[24], rid[24];

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    eb_db_fmt_i64(rid, sizeof rid, rule_id);
    for (size_t i = 0; i < n; i++) {
        char pos[24], kind[24], dl[16], ma[16], age[16], mo[16];
        const struct eb_target_rec *t = &targets[i];
        const char *tp[11] = {rid, bid, pos, kind,
                              t->kind == EB_TARGET_SUBSCRIPTION ? t->value : NULL,
                              t->kind == EB_TARGET_HTTP ? t->value : NULL,
                              t->kind == EB_TARGET_BUS ? t->value : NULL,
                              setting_param(dl, sizeof dl, t, t->sub.ack_deadline_s),
                              setting_param(ma, sizeof ma, t, t->sub.max_attempts),
                              setting_param(age, sizeof age, t, t->sub.max_age_s),
                              setting_param(mo, sizeof mo, t, t->sub.max_outstanding)};
        eb_status st;

        snprintf(pos, sizeof pos, "%zu", i);
        snprintf(kind, sizeof kind, "%d", (int)t->kind);
        st = eb_db_exec(db, "target_insert",
                        "INSERT INTO targets (rule_id, bus_id, position, kind, subscription, url,"
                        " target_bus, ack_deadline_s, max_attempts, max_age_s, max_outstanding)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                        11, tp, NULL, NULL, 0, NULL);
        if (st)
            return st;
    }
    return EB_OK;
}

/* Creates the subscription state of new subscription targets of the bus
 * and deletes that of names no target has any more (cebus_subs_sync), so
 * that a subscription lives exactly as long as its name has a target.
 * REQUIRES: an open transaction, after the targets changed. */
static eb_status sync_subscriptions(eb_db *db, int64_t bus_id)
{
    char bid[24];
    const char *params[1] = {bid};

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    return eb_db_exec(db, "subs_sync", "SELECT cebus_subs_sync($1)", 1, params, NULL, NULL, 0,
                      NULL);
}

eb_status eb_store_rule_insert(eb_db *db, int64_t bus_id, struct eb_rule_rec *r,
                               const char **conflict)
{
    return eb_store_rule_insert_limited(db, bus_id, r, NULL, conflict);
}

eb_status eb_store_rule_insert_limited(eb_db *db, int64_t bus_id, struct eb_rule_rec *r,
                                       struct eb_rule_limits *lim, const char **conflict)
{
    char bid[24], enabled[2] = {r->enabled ? 't' : 'f', '\0'};
    const char *params[5] = {bid, r->name, r->pattern, r->description ? r->description : "",
                             enabled};
    PGresult *res;
    eb_status st;

    *conflict = "name";
    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    st = eb_db_simple(db, "rule_begin", "BEGIN");
    if (st)
        return st;
    if (lim) {
        int64_t subs = 0;
        for (size_t i = 0; i < r->ntargets; i++)
            subs += r->targets[i].kind == EB_TARGET_SUBSCRIPTION;
        st = eb_store_rule_limits_check_tx(db, bus_id, NULL, subs, lim);
        if (st)
            goto fail;
    }
    st = eb_db_exec(db, "rule_insert",
                    "INSERT INTO rules AS r (bus_id, name, pattern, description, enabled)"
                    " VALUES ($1, $2, $3, $4, $5) RETURNING " RULE_COLS,
                    5, params, NULL, NULL, 0, &res);
    if (st)
        goto fail;
    r->id = eb_db_int(res, 0, 0);
    r->created_us = eb_db_int(res, 0, 5);
    r->updated_us = eb_db_int(res, 0, 6);
    r->version = eb_db_int(res, 0, 7);
    PQclear(res);
    st = insert_targets(db, bus_id, r->id, r->targets, r->ntargets);
    if (st) {
        *conflict = "subscription";
        goto fail;
    }
    st = sync_subscriptions(db, bus_id);
    if (st)
        goto fail;
    /* No notification: a new rule concerns no open stream. */
    st = eb_db_simple(db, "rule_commit", "COMMIT");
    if (st)
        goto fail;
    return EB_OK;
fail:
    return eb_db_tx_fail(db, st);
}

/* Loads the one rule that sql ($1 = bus id, $2 = key) selects, with its
 * targets. */
static eb_status rule_one(eb_db *db, const char *what, const char *sql, int64_t bus_id,
                          const char *key, struct eb_rule_rec *out)
{
    char bid[24];
    const char *params[2] = {bid, key};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    st = eb_db_exec(db, what, sql, 2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return EB_ENOTFOUND;
    }
    rule_from_row(res, 0, out);
    PQclear(res);
    st = load_targets(db, out, 1);
    if (st)
        eb_rule_rec_clear(out);
    return st;
}

eb_status eb_store_rule_get(eb_db *db, int64_t bus_id, const char *name,
                            struct eb_rule_rec *out)
{
    return rule_one(db, "rule_get",
                    "SELECT " RULE_COLS " FROM rules r WHERE r.bus_id = $1 AND r.name = $2",
                    bus_id, name, out);
}

eb_status eb_store_rule_list(eb_db *db, int64_t bus_id, const char *after, int limit,
                             struct eb_rule_rec **out, size_t *n)
{
    struct eb_rule_rec *rules;
    PGresult *res;
    eb_status st;
    int rows;

    st = page_query(db, "rule_list",
                    "SELECT " RULE_COLS " FROM rules r WHERE r.bus_id = $1 AND r.name > $2"
                    " ORDER BY r.name LIMIT $3",
                    bus_id, after, limit, &res);
    if (st)
        return st;
    rows = PQntuples(res);
    rules = eb_calloc((size_t)rows, sizeof *rules);
    for (int i = 0; i < rows; i++)
        rule_from_row(res, i, &rules[i]);
    PQclear(res);
    st = load_targets(db, rules, (size_t)rows);
    if (st) {
        for (int i = 0; i < rows; i++)
            eb_rule_rec_clear(&rules[i]);
        free(rules);
        return st;
    }
    *out = rules;
    *n = (size_t)rows;
    return EB_OK;
}

eb_status eb_store_rule_delete(eb_db *db, int64_t bus_id, const char *name)
{
    char bid[24];
    const char *params[2] = {bid, name};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    /* One statement, so the notification goes out exactly when the delete
     * commits. */
    st = eb_db_exec(db, "rule_delete",
                    "WITH d AS (DELETE FROM rules WHERE bus_id = $1 AND name = $2"
                    " RETURNING id, bus_id),"
                    /* A subscription name has one target on its bus: the
                     * rule's targets' subscriptions go with the rule. */
                    " s AS (DELETE FROM subscriptions WHERE bus_id = $1 AND name IN"
                    " (SELECT t.subscription FROM targets t JOIN d ON t.rule_id = d.id))"
                    " SELECT pg_notify('cebus_rules', bus_id::text) FROM d",
                    2, params, NULL, NULL, 0, &res);
    if (st)
        return st;
    st = PQntuples(res) == 0 ? EB_ENOTFOUND : EB_OK;
    PQclear(res);
    return st;
}

eb_status eb_store_rule_update(eb_db *db, int64_t bus_id, const char *name,
                               const struct eb_rule_change *c, struct eb_rule_rec *out,
                               const char **conflict)
{
    char bid[24], enabled[2] = {c->enabled > 0 ? 't' : 'f', '\0'};
    const char *params[5] = {bid, name, c->pattern, c->description,
                             c->enabled < 0 ? NULL : enabled};
    struct eb_rule_rec r;
    PGresult *res;
    eb_status st;

    *conflict = "subscription";
    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    st = eb_db_simple(db, "rule_update_begin", "BEGIN");
    if (st)
        return st;
    if (c->set_targets && c->limits) {
        int64_t subs = 0;
        for (size_t i = 0; i < c->ntargets; i++)
            subs += c->targets[i].kind == EB_TARGET_SUBSCRIPTION;
        /* Before the rule's row lock, in the order rule creates take them. */
        st = eb_store_rule_limits_check_tx(db, bus_id, name, subs, c->limits);
        if (st)
            goto fail;
    }
    st = eb_db_exec(db, "rule_update",
                    "UPDATE rules AS r SET pattern = COALESCE($3, r.pattern),"
                    " description = COALESCE($4, r.description),"
                    " enabled = COALESCE($5::boolean, r.enabled),"
                    " version = r.version + 1, updated_at = now()"
                    " WHERE r.bus_id = $1 AND r.name = $2 RETURNING " RULE_COLS,
                    5, params, NULL, NULL, 0, &res);
    if (st)
        goto fail;
    if (PQntuples(res) == 0) {
        PQclear(res);
        st = EB_ENOTFOUND;
        goto fail;
    }
    rule_from_row(res, 0, &r);
    PQclear(res);
    if (c->set_targets) {
        char rid[24];
        const char *tp[1] = {rid};

        eb_db_fmt_i64(rid, sizeof rid, r.id);
        st = eb_db_exec(db, "rule_update_targets", "DELETE FROM targets WHERE rule_id = $1", 1,
                        tp, NULL, NULL, 0, NULL);
        if (!st)
            st = insert_targets(db, bus_id, r.id, c->targets, c->ntargets);
        if (!st)
            st = sync_subscriptions(db, bus_id);
    }
    if (!st)
        st = load_targets(db, &r, 1);
    if (!st)
        st = eb_db_exec(db, "rule_update_notify", "SELECT pg_notify('cebus_rules', $1)", 1,
                        params, NULL, NULL, 0, NULL);
    if (!st)
        st = eb_db_simple(db, "rule_update_commit", "COMMIT");
    if (st) {
        eb_rule_rec_clear(&r);
        goto fail;
    }
    *out = r;
    return EB_OK;
fail:
    return eb_db_tx_fail(db, st);
}

/* Returns a PostgreSQL array literal of the strings v[0..n) for a text[]
 * parameter, each quoted; free() it. */
static char *text_array(const char *const *v, size_t n)
{
    size_t cap = 3, len = 0;
    char *s;

    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(v[i]) + 3;
    s = eb_malloc(cap);
    s[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[len++] = ',';
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

eb_status eb_store_rules_changed(eb_db *db, const struct eb_rule_follow *follows, size_t n,
                                 struct eb_rule_state **out, size_t *nout)
{
    int64_t *ids = eb_malloc((n ? n : 1) * sizeof *ids);
    int64_t *versions = eb_malloc((n ? n : 1) * sizeof *versions);
    const char **subs = eb_malloc((n ? n : 1) * sizeof *subs);
    const char *params[3];
    struct eb_rule_state *states;
    PGresult *res;
    eb_status st;
    int rows;

    for (size_t i = 0; i < n; i++) {
        ids[i] = follows[i].rule_id;
        versions[i] = follows[i].version;
        subs[i] = follows[i].subscription;
    }
    params[0] = eb_db_id_array(ids, n);
    params[1] = text_array(subs, n);
    params[2] = eb_db_id_array(versions, n);
    st = eb_db_exec(db, "rules_changed",
                    "SELECT u.ord - 1, r.id IS NULL OR g.rule_id IS NULL,"
                    " COALESCE(r.version, 0), COALESCE(r.enabled, false), r.pattern"
                    " FROM unnest($1::bigint[], $2::text[], $3::bigint[]) WITH ORDINALITY"
                    "  AS u(rid, sub, ver, ord)"
                    " LEFT JOIN rules r ON r.id = u.rid"
                    " LEFT JOIN targets g ON g.rule_id = u.rid AND g.subscription = u.sub"
                    " WHERE r.id IS NULL OR g.rule_id IS NULL OR r.version <> u.ver",
                    3, params, NULL, NULL, 0, &res);
    free((char *)params[0]);
    free((char *)params[1]);
    free((char *)params[2]);
    free(ids);
    free(versions);
    free(subs);
    if (st)
        return st;
    rows = PQntuples(res);
    states = eb_calloc(rows ? (size_t)rows : 1, sizeof *states);
    for (int i = 0; i < rows; i++) {
        struct eb_rule_state *s = &states[i];
        s->index = (size_t)eb_db_int(res, i, 0);
        s->gone = PQgetvalue(res, i, 1)[0] == 't';
        s->version = eb_db_int(res, i, 2);
        s->enabled = PQgetvalue(res, i, 3)[0] == 't';
        if (!s->gone)
            s->pattern = eb_strdup(PQgetvalue(res, i, 4));
    }
    PQclear(res);
    *out = states;
    *nout = (size_t)rows;
    return EB_OK;
}

eb_status eb_store_rule_by_subscription(eb_db *db, int64_t bus_id, const char *subscription,
                                        struct eb_rule_rec *out)
{
    return rule_one(db, "rule_by_subscription",
                    "SELECT " RULE_COLS " FROM rules r JOIN targets g ON g.rule_id = r.id"
                    " WHERE g.bus_id = $1 AND g.subscription = $2",
                    bus_id, subscription, out);
}

eb_status eb_store_rule_count(eb_db *db, int64_t bus_id, int64_t *count)
{
    char bid[24];
    const char *params[1] = {bid};
    PGresult *res;
    eb_status st;

    eb_db_fmt_i64(bid, sizeof bid, bus_id);
    st = eb_db_exec(db, "rule_count", "SELECT count(*) FROM rules WHERE bus_id = $1", 1, params,
                    NULL, NULL, 0, &res);
    if (st)
        return st;
    *count = eb_db_int(res, 0, 0);
    PQclear(res);
    return EB_OK;
}
