/* Rule management: CreateRule, GetRule, ListRules, UpdateRule, DeleteRule.
 * UpdateRule and DeleteRule notify every server's delivery thread, which
 * moves the streams that subscribed through the rule onto its new state
 * (docs/decisions/0010-live-rule-changes.md). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/eventbus.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "pattern.h"
#include "rpc.h"
#include "store_durable.h"
#include "util.h"

/* Limits, documented in README.md. */
#define MAX_TARGETS 5
#define MAX_DESCRIPTION 512

/* A Rule message built from a record; owns its pieces until rule_msg_clear. */
struct rule_msg {
    Cebus__V1__Rule rule;
    Google__Protobuf__Timestamp created, updated;
    Cebus__V1__Target *targets;
    Cebus__V1__Target **target_ptrs;
    Cebus__V1__SubscriptionTarget *subs;
    Cebus__V1__HttpTarget *https;
    Cebus__V1__BusTarget *buses;
};

static void rule_msg_init(struct rule_msg *m, const char *bus, const struct eb_rule_rec *r)
{
    size_t n = r->ntargets;

    cebus__v1__rule__init(&m->rule);
    m->rule.bus = (char *)bus;
    m->rule.name = (char *)r->name;
    m->rule.pattern = r->pattern;
    m->rule.description = r->description;
    m->rule.enabled = r->enabled;
    eb_rpc_timestamp(&m->created, r->created_us);
    eb_rpc_timestamp(&m->updated, r->updated_us);
    m->rule.create_time = &m->created;
    m->rule.update_time = &m->updated;
    m->targets = eb_calloc(n, sizeof *m->targets);
    m->target_ptrs = eb_calloc(n, sizeof *m->target_ptrs);
    m->subs = eb_calloc(n, sizeof *m->subs);
    m->https = eb_calloc(n, sizeof *m->https);
    m->buses = eb_calloc(n, sizeof *m->buses);
    for (size_t i = 0; i < n; i++) {
        Cebus__V1__Target *t = &m->targets[i];
        cebus__v1__target__init(t);
        switch (r->targets[i].kind) {
        case EB_TARGET_SUBSCRIPTION:
            cebus__v1__subscription_target__init(&m->subs[i]);
            m->subs[i].name = r->targets[i].value;
            /* As stored: 0 stands for the default, as in requests. */
            m->subs[i].ack_deadline_seconds = (uint32_t)r->targets[i].sub.ack_deadline_s;
            m->subs[i].max_attempts = (uint32_t)r->targets[i].sub.max_attempts;
            m->subs[i].max_age_seconds = (uint32_t)r->targets[i].sub.max_age_s;
            m->subs[i].max_outstanding = (uint32_t)r->targets[i].sub.max_outstanding;
            t->kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
            t->subscription = &m->subs[i];
            break;
        case EB_TARGET_HTTP:
            cebus__v1__http_target__init(&m->https[i]);
            m->https[i].url = r->targets[i].value;
            t->kind_case = CEBUS__V1__TARGET__KIND_HTTP;
            t->http = &m->https[i];
            break;
        case EB_TARGET_BUS:
            cebus__v1__bus_target__init(&m->buses[i]);
            m->buses[i].bus = r->targets[i].value;
            t->kind_case = CEBUS__V1__TARGET__KIND_BUS;
            t->bus = &m->buses[i];
            break;
        }
        m->target_ptrs[i] = t;
    }
    m->rule.n_targets = n;
    m->rule.targets = m->target_ptrs;
}

static void rule_msg_clear(struct rule_msg *m)
{
    free(m->targets);
    free(m->target_ptrs);
    free(m->subs);
    free(m->https);
    free(m->buses);
}

/* Reading another tenant's rules takes either grant: a subscriber needs
 * them to find subscriptions, a rule manager to see what it manages. */
#define READ_PERMS (EB_PERMS(EB_PERMISSION_SUBSCRIBE) | EB_PERMS(EB_PERMISSION_MANAGE_RULES))

/* Resolves the bus of a rule request, reaching another tenant's bus
 * through a grant of one of perms; fails the call on error. */
static bool rule_bus(struct eb_rpc *rpc, unsigned roles, unsigned perms, const char *what,
                     const char *ref, struct eb_bus_rec *bus)
{
    eb_status st = eb_auth_require(&rpc->who, roles, what, rpc->err, sizeof rpc->err);
    if (!st)
        st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, ref, perms, bus,
                                         NULL, rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return false;
    }
    return true;
}

/* Checks one setting of targets[i].subscription: 0 (the default) or
 * lo..hi. Fails the call and returns false when out of range. */
static bool setting_ok(struct eb_rpc *rpc, size_t i, const char *field, uint32_t v, uint32_t lo,
                       uint32_t hi, const char *why)
{
    if (v == 0 || (v >= lo && v <= hi))
        return true;
    eb_rpc_fail(rpc, EB_EINVAL, "targets[%zu].subscription.%s: %u to %u%s (0: the default)", i,
                field, lo, hi, why);
    return false;
}

/* Validates the settings of subscription target i against their limits
 * (store_durable.h) and the bus's retention, and copies them to out. */
static bool sub_settings_from_request(struct eb_rpc *rpc, size_t i,
                                      const Cebus__V1__SubscriptionTarget *t,
                                      int retention_hours, struct eb_sub_settings *out)
{
    uint32_t max_age = (uint32_t)retention_hours * 3600u;

    if (!setting_ok(rpc, i, "ack_deadline_seconds", t->ack_deadline_seconds, 1,
                    EB_SUB_ACK_DEADLINE_MAX, "") ||
        !setting_ok(rpc, i, "max_attempts", t->max_attempts, 1, EB_SUB_MAX_ATTEMPTS_MAX, "") ||
        !setting_ok(rpc, i, "max_age_seconds", t->max_age_seconds, 1, max_age,
                    ", the bus's retention") ||
        !setting_ok(rpc, i, "max_outstanding", t->max_outstanding, 1,
                    EB_SUB_MAX_OUTSTANDING_MAX, ""))
        return false;
    out->ack_deadline_s = (int32_t)t->ack_deadline_seconds;
    out->max_attempts = (int32_t)t->max_attempts;
    out->max_age_s = (int32_t)t->max_age_seconds;
    out->max_outstanding = (int32_t)t->max_outstanding;
    return true;
}

/* Validates targets[0..n) (the caller has capped n) of a rule on a bus
 * with retention_hours and appends them to rec's targets. Fails the call
 * and returns false on the first bad one. */
static bool targets_from_request(struct eb_rpc *rpc, Cebus__V1__Target *const *targets, size_t n,
                                 int retention_hours, struct eb_rule_rec *rec)
{
    rec->targets = eb_calloc(n ? n : 1, sizeof *rec->targets);
    for (size_t i = 0; i < n; i++) {
        const Cebus__V1__Target *t = targets[i];
        switch (t->kind_case) {
        case CEBUS__V1__TARGET__KIND_SUBSCRIPTION:
            if (!eb_name_valid(t->subscription->name)) {
                eb_rpc_fail(rpc, EB_EINVAL,
                            "targets[%zu].subscription.name: 1 to 64 of [A-Za-z0-9._-], "
                            "starting with a letter or digit",
                            i);
                return false;
            }
            for (size_t k = 0; k < rec->ntargets; k++)
                if (strcmp(rec->targets[k].value, t->subscription->name) == 0) {
                    eb_rpc_fail(rpc, EB_EINVAL, "targets[%zu].subscription.name: duplicate", i);
                    return false;
                }
            if (!sub_settings_from_request(rpc, i, t->subscription, retention_hours,
                                           &rec->targets[rec->ntargets].sub))
                return false;
            rec->targets[rec->ntargets].kind = EB_TARGET_SUBSCRIPTION;
            rec->targets[rec->ntargets++].value = eb_strdup(t->subscription->name);
            break;
        case CEBUS__V1__TARGET__KIND_HTTP:
        case CEBUS__V1__TARGET__KIND_BUS:
            eb_rpc_fail(rpc, EB_EUNIMPL,
                        "targets[%zu]: %s targets are not available in this version", i,
                        t->kind_case == CEBUS__V1__TARGET__KIND_HTTP ? "http" : "bus");
            return false;
        default:
            eb_rpc_fail(rpc, EB_EINVAL, "targets[%zu]: kind not set", i);
            return false;
        }
    }
    return true;
}

void eb_rpc_create_rule(struct eb_rpc *rpc)
{
    Cebus__V1__CreateRuleRequest *req;
    struct eb_rule_rec rec = {0};
    struct eb_rule_limits limits;
    struct eb_bus_rec bus;
    struct rule_msg msg;
    const char *conflict;
    eb_pattern *pat = NULL;
    char err[512];
    eb_status st;

    req = cebus__v1__create_rule_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid CreateRuleRequest message");
        return;
    }
    if (!rule_bus(rpc, EB_ADMINS, EB_PERMS(EB_PERMISSION_MANAGE_RULES), "create rules", req->bus,
                  &bus))
        goto out;
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL,
                    "name: 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit");
        goto out;
    }
    if (!req->pattern[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "pattern: required ({} matches every event)");
        goto out;
    }
    if (eb_pattern_compile(req->pattern, strlen(req->pattern), &pat, err, sizeof err)) {
        eb_rpc_fail_pattern(rpc, err);
        goto out;
    }
    if (strlen(req->description) > MAX_DESCRIPTION) {
        eb_rpc_fail(rpc, EB_EINVAL, "description: longer than %d bytes", MAX_DESCRIPTION);
        goto out;
    }
    if (req->n_targets > MAX_TARGETS) {
        eb_rpc_fail(rpc, EB_EINVAL, "targets: at most %d per rule", MAX_TARGETS);
        goto out;
    }
    if (!eb_rpc_rule_limits(rpc, &bus, &limits)) /* rpc_quota.c */
        goto out;
    if (!targets_from_request(rpc, req->targets, req->n_targets, bus.retention_hours, &rec))
        goto out;
    eb_strlcpy(rec.name, req->name, sizeof rec.name);
    rec.pattern = eb_strdup(req->pattern);
    rec.description = eb_strdup(req->description);
    rec.enabled = !req->disabled;
    st = eb_store_rule_insert_limited(rpc->db, bus.id, &rec, &limits, &conflict);
    if (st == EB_EEXHAUSTED) {
        eb_rpc_fail_rule_limits(rpc, &limits, req->bus);
        goto out;
    }
    if (st == EB_EEXIST) {
        if (strcmp(conflict, "name") == 0)
            eb_rpc_fail(rpc, st, "name: rule \"%s\" already exists on bus \"%s\"", req->name,
                        req->bus);
        else
            eb_rpc_fail(rpc, st, "targets: a subscription of that name already exists on bus "
                                 "\"%s\"",
                        req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "rule");
        goto out;
    }
    rule_msg_init(&msg, req->bus, &rec);
    eb_rpc_reply(rpc, &msg.rule.base);
    rule_msg_clear(&msg);
out:
    eb_pattern_free(pat);
    eb_rule_rec_clear(&rec);
    cebus__v1__create_rule_request__free_unpacked(req, NULL);
}

void eb_rpc_get_rule(struct eb_rpc *rpc)
{
    Cebus__V1__GetRuleRequest *req;
    struct eb_rule_rec rec = {0};
    struct eb_bus_rec bus;
    struct rule_msg msg;
    eb_status st;

    req = cebus__v1__get_rule_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid GetRuleRequest message");
        return;
    }
    if (!rule_bus(rpc, EB_ADMINS | EB_ROLES(EB_ROLE_SUBSCRIBER), READ_PERMS, "read rules",
                  req->bus, &bus))
        goto out;
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "name: not a valid rule name");
        goto out;
    }
    st = eb_store_rule_get(rpc->db, bus.id, req->name, &rec);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "name: no rule \"%s\" on bus \"%s\"", req->name, req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "rule");
        goto out;
    }
    rule_msg_init(&msg, req->bus, &rec);
    eb_rpc_reply(rpc, &msg.rule.base);
    rule_msg_clear(&msg);
out:
    eb_rule_rec_clear(&rec);
    cebus__v1__get_rule_request__free_unpacked(req, NULL);
}

void eb_rpc_list_rules(struct eb_rpc *rpc)
{
    Cebus__V1__ListRulesRequest *req;
    Cebus__V1__ListRulesResponse resp = CEBUS__V1__LIST_RULES_RESPONSE__INIT;
    struct eb_rule_rec *recs = NULL;
    struct rule_msg *msgs = NULL;
    struct eb_bus_rec bus;
    char after[EB_NAME_MAX + 1], token[2 * EB_NAME_MAX + 1] = "";
    size_t n = 0, fetched = 0;
    int limit;
    eb_status st;

    req = cebus__v1__list_rules_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListRulesRequest message");
        return;
    }
    if (!rule_bus(rpc, EB_ADMINS | EB_ROLES(EB_ROLE_SUBSCRIBER), READ_PERMS, "read rules",
                  req->bus, &bus))
        goto out;
    if (!eb_rpc_page_start(rpc, "ListRules", req->page_token, req->page_size, after, sizeof after,
                           &limit))
        goto out;
    st = eb_store_rule_list(rpc->db, bus.id, after, limit + 1, &recs, &fetched);
    n = fetched;
    if (st) {
        eb_rpc_fail_store(rpc, st, "rules");
        goto out;
    }
    n = eb_rpc_page_end(recs, sizeof *recs, offsetof(struct eb_rule_rec, name), n,
                        limit, token, sizeof token);
    msgs = eb_calloc(n, sizeof *msgs);
    resp.rules = eb_calloc(n, sizeof *resp.rules);
    for (size_t i = 0; i < n; i++) {
        rule_msg_init(&msgs[i], req->bus, &recs[i]);
        resp.rules[i] = &msgs[i].rule;
    }
    resp.n_rules = n;
    resp.next_page_token = token;
    eb_rpc_reply(rpc, &resp.base);
    for (size_t i = 0; i < n; i++)
        rule_msg_clear(&msgs[i]);
out:
    /* Every fetched record, including the look-ahead one. */
    for (size_t i = 0; i < fetched; i++)
        eb_rule_rec_clear(&recs[i]);
    free(recs);
    free(msgs);
    free(resp.rules);
    cebus__v1__list_rules_request__free_unpacked(req, NULL);
}

/* The update_mask paths UpdateRule knows, for its error messages. */
#define UPDATE_FIELDS "fields are \"pattern\", \"targets\", \"description\", \"enabled\""

/* Whether s is short printable ASCII, safe to quote back in a message. */
static bool quotable(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (n >= 64 || s[n] < 0x20 || s[n] > 0x7e || s[n] == '"')
            return false;
    return true;
}

void eb_rpc_update_rule(struct eb_rpc *rpc)
{
    Cebus__V1__UpdateRuleRequest *req;
    const Cebus__V1__Rule *in;
    struct eb_rule_change change = {.enabled = -1};
    struct eb_rule_rec targets = {0}, rec = {0};
    struct eb_rule_limits limits;
    struct eb_bus_rec bus;
    struct rule_msg msg;
    const char *conflict;
    eb_pattern *pat = NULL;
    char err[512];
    eb_status st;

    req = cebus__v1__update_rule_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid UpdateRuleRequest message");
        return;
    }
    if (!rule_bus(rpc, EB_ADMINS, EB_PERMS(EB_PERMISSION_MANAGE_RULES), "update rules", req->bus,
                  &bus))
        goto out;
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "name: not a valid rule name");
        goto out;
    }
    if (req->n_update_mask == 0) {
        eb_rpc_fail(rpc, EB_EINVAL, "update_mask: required; " UPDATE_FIELDS);
        goto out;
    }
    if (!req->rule) {
        eb_rpc_fail(rpc, EB_EINVAL, "rule: required; it holds the new values of update_mask's "
                                    "fields");
        goto out;
    }
    in = req->rule;
    for (size_t i = 0; i < req->n_update_mask; i++) {
        const char *f = req->update_mask[i];
        if (strcmp(f, "pattern") == 0) {
            change.pattern = in->pattern;
        } else if (strcmp(f, "description") == 0) {
            change.description = in->description;
        } else if (strcmp(f, "enabled") == 0) {
            change.enabled = in->enabled ? 1 : 0;
        } else if (strcmp(f, "targets") == 0) {
            change.set_targets = true;
        } else if (quotable(f)) {
            eb_rpc_fail(rpc, EB_EINVAL, "update_mask[%zu]: unknown field \"%s\"; " UPDATE_FIELDS,
                        i, f);
            goto out;
        } else {
            eb_rpc_fail(rpc, EB_EINVAL, "update_mask[%zu]: unknown field; " UPDATE_FIELDS, i);
            goto out;
        }
    }
    if (change.pattern) {
        if (!change.pattern[0]) {
            eb_rpc_fail(rpc, EB_EINVAL, "pattern: required ({} matches every event)");
            goto out;
        }
        if (eb_pattern_compile(change.pattern, strlen(change.pattern), &pat, err, sizeof err)) {
            eb_rpc_fail_pattern(rpc, err);
            goto out;
        }
    }
    if (change.description && strlen(change.description) > MAX_DESCRIPTION) {
        eb_rpc_fail(rpc, EB_EINVAL, "description: longer than %d bytes", MAX_DESCRIPTION);
        goto out;
    }
    if (change.set_targets) {
        if (in->n_targets > MAX_TARGETS) {
            eb_rpc_fail(rpc, EB_EINVAL, "targets: at most %d per rule", MAX_TARGETS);
            goto out;
        }
        if (!targets_from_request(rpc, in->targets, in->n_targets, bus.retention_hours,
                                  &targets))
            goto out;
        change.targets = targets.targets;
        change.ntargets = targets.ntargets;
        if (!eb_rpc_rule_limits(rpc, &bus, &limits)) /* rpc_quota.c */
            goto out;
        change.limits = &limits;
    }
    st = eb_store_rule_update(rpc->db, bus.id, req->name, &change, &rec, &conflict);
    if (st == EB_EEXHAUSTED) {
        eb_rpc_fail_rule_limits(rpc, &limits, req->bus);
        goto out;
    }
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "name: no rule \"%s\" on bus \"%s\"", req->name, req->bus);
        goto out;
    }
    if (st == EB_EEXIST) {
        eb_rpc_fail(rpc, st, "targets: a subscription of that name already exists on bus "
                             "\"%s\"",
                    req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "rule");
        goto out;
    }
    rule_msg_init(&msg, req->bus, &rec);
    eb_rpc_reply(rpc, &msg.rule.base);
    rule_msg_clear(&msg);
out:
    eb_pattern_free(pat);
    eb_rule_rec_clear(&targets);
    eb_rule_rec_clear(&rec);
    cebus__v1__update_rule_request__free_unpacked(req, NULL);
}

void eb_rpc_delete_rule(struct eb_rpc *rpc)
{
    Cebus__V1__DeleteRuleRequest *req;
    Cebus__V1__DeleteRuleResponse resp = CEBUS__V1__DELETE_RULE_RESPONSE__INIT;
    struct eb_bus_rec bus;
    eb_status st;

    req = cebus__v1__delete_rule_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid DeleteRuleRequest message");
        return;
    }
    if (!rule_bus(rpc, EB_ADMINS, EB_PERMS(EB_PERMISSION_MANAGE_RULES), "delete rules", req->bus,
                  &bus))
        goto out;
    if (!eb_name_valid(req->name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "name: not a valid rule name");
        goto out;
    }
    st = eb_store_rule_delete(rpc->db, bus.id, req->name);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "name: no rule \"%s\" on bus \"%s\"", req->name, req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "rule");
        goto out;
    }
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__delete_rule_request__free_unpacked(req, NULL);
}
