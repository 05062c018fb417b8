/* The isolation matrix (issue 4): every RPC of cebus.v1.EventBus and
 * cebus.v1.Admin, the unimplemented ones included, called with tenant B's
 * keys of each tenant role (tenant admin, publisher, subscriber) on tenant
 * A's resources (bus, rule, subscription, API key id, tenant, grant, event
 * source), with B holding no grant and then each kind of grant on A's bus.
 *
 * Each cell asserts the exact status code. A refused cell must also answer
 * exactly what the same call on resources that do not exist answers (the
 * "ghost twin"), once the names B itself sent are masked, and neither its
 * message nor any response field may carry anything of A that B did not
 * send: tenant and display name, bus, rule and subscription names, the
 * prefixes of A's keys, its source prefix, the tenant A granted to, a
 * payload marker. A grant opens exactly the calls README.md lists for it
 * and nothing more. List calls made by B return B's things only. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A owns two buses and everything else the matrix aims at; every string is
 * distinctive, so that finding it in an answer means it leaked. */
#define A_TENANT "acmeiso"
#define A_DISPLAY "Acme Isolation Display"
#define A_BUS "ledgerA1"
#define A_BUSREF A_TENANT "/" A_BUS
#define A_OTHER_BUS "vaultA2"
#define A_RULE "ruleA3"
#define A_SUB "subA4"
#define A_PAYLOAD "PAYLOADA5"
#define A_SOURCE "/srcA6"
#define A_DESCRIPTION "DESCA7"
#define A_EVENT_TYPE "a.secret"
#define A_RULE_PATTERN "{\"type\":[\"" A_EVENT_TYPE "\"]}"
#define C_TENANT "initechC8" /* A granted it SUBSCRIBE on A_BUS */

#define B_TENANT "globex"
#define B_BUS "ordersB"

/* Key ids are the keys' first 11 characters ("cb_xxxxxxxx"). */
#define KEY_ID_LEN 11

enum { ADMIN, PUBLISHER, SUBSCRIBER, NROLES };
static const char *const role_names[NROLES] = {"tenant admin", "publisher", "subscriber"};

/* Grant kinds as bits: 1 << Cebus__V1__Permission. */
#define P (1u << CEBUS__V1__PERMISSION__PERMISSION_PUBLISH)
#define S (1u << CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE)
#define M (1u << CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES)
#define ANY_GRANT (P | S | M)

#define NF GRPC_STATUS_NOT_FOUND
#define PD GRPC_STATUS_PERMISSION_DENIED
#define UI GRPC_STATUS_UNIMPLEMENTED

/* What a cell aims at. The real target is A's; its ghost twin names
 * nothing that exists. */
struct target {
    const char *tenant, *bus, *busref, *rule, *sub, *key_id, *prefix, *grantee;
};

static struct h_tenant A, B;
static char a_key_ids[3][KEY_ID_LEN + 1];
static struct target real_t;
static const struct target ghost_t = {"nosuchT", "nobusX", "nosuchT/nobusX", "noruleX",
                                      "nosubX",  "cb_zzzzzzzz", "/nosrcX", "nosuchC"};

/* ---- Calls and their outcomes ------------------------------------------------ */

struct outcome {
    int code;
    char message[512];
    uint8_t *bytes; /* the response message re-encoded, on OK */
    size_t len;
};

static void outcome_clear(struct outcome *o)
{
    free(o->bytes);
    memset(o, 0, sizeof *o);
}

/* One unary call through libcebus; on OK keeps the response's bytes. */
static void unary(cebus_client *c, const char *method, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, struct outcome *o)
{
    ProtobufCMessage *resp = NULL;
    cebus_error err;

    memset(o, 0, sizeof *o);
    o->code = cebus_call_unary(c, method, req, desc, 0, &resp, &err);
    snprintf(o->message, sizeof o->message, "%s", o->code ? err.message : "");
    if (o->code == 0) {
        o->len = protobuf_c_message_get_packed_size(resp);
        o->bytes = malloc(o->len + 1);
        protobuf_c_message_pack(resp, o->bytes);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
}

typedef void (*cell_fn)(cebus_client *c, const struct target *t, struct outcome *o);

/* -- EventBus -- */

static void call_put_events(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;
    h_event *ev = h_event_new("intruder-1", "/intruder", "b.intrusion", "{\"n\":1}");

    req.bus = (char *)t->busref;
    req.n_events = 1;
    req.events = &ev;
    unary(c, "/cebus.v1.EventBus/PutEvents", &req.base,
          &cebus__v1__put_events_response__descriptor, o);
    h_event_free(ev);
}

static void call_create_rule(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.name = "intruder";
    req.pattern = "{}";
    unary(c, "/cebus.v1.EventBus/CreateRule", &req.base, &cebus__v1__rule__descriptor, o);
}

static void call_get_rule(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__GetRuleRequest req = CEBUS__V1__GET_RULE_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.name = (char *)t->rule;
    unary(c, "/cebus.v1.EventBus/GetRule", &req.base, &cebus__v1__rule__descriptor, o);
}

static void call_list_rules(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListRulesRequest req = CEBUS__V1__LIST_RULES_REQUEST__INIT;

    req.bus = (char *)t->busref;
    unary(c, "/cebus.v1.EventBus/ListRules", &req.base,
          &cebus__v1__list_rules_response__descriptor, o);
}

static void call_update_rule(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__UpdateRuleRequest req = CEBUS__V1__UPDATE_RULE_REQUEST__INIT;
    Cebus__V1__Rule rule = CEBUS__V1__RULE__INIT;
    char *mask = "description";

    rule.description = "defaced";
    req.bus = (char *)t->busref;
    req.name = (char *)t->rule;
    req.rule = &rule;
    req.n_update_mask = 1;
    req.update_mask = &mask;
    unary(c, "/cebus.v1.EventBus/UpdateRule", &req.base, &cebus__v1__rule__descriptor, o);
}

static void call_delete_rule(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__DeleteRuleRequest req = CEBUS__V1__DELETE_RULE_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.name = (char *)t->rule;
    unary(c, "/cebus.v1.EventBus/DeleteRule", &req.base,
          &cebus__v1__delete_rule_response__descriptor, o);
}

static void call_test_pattern_bus(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__TestEventPatternRequest req = CEBUS__V1__TEST_EVENT_PATTERN_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.pattern = "{}";
    unary(c, "/cebus.v1.EventBus/TestEventPattern", &req.base,
          &cebus__v1__test_event_pattern_response__descriptor, o);
}

/* Subscribe answers through the stream: its final status, or OK once the
 * stream is open and delivering. */
static void subscribe(cebus_client *c, const char *bus, const char *pattern, const char *sub,
                      struct outcome *o)
{
    Cebus__V1__SubscribeRequest req;
    cebus_error err;

    memset(o, 0, sizeof *o);
    h_subscribe_request(&req, bus, pattern, sub,
                        CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    o->code = h_subscribe_status(c, &req, &err);
    snprintf(o->message, sizeof o->message, "%s", o->code ? err.message : "");
}

static void call_subscribe_pattern(cebus_client *c, const struct target *t, struct outcome *o)
{
    subscribe(c, t->busref, "{}", NULL, o);
}

static void call_subscribe_sub(cebus_client *c, const struct target *t, struct outcome *o)
{
    subscribe(c, t->busref, NULL, t->sub, o);
}

/* An ack id of no delivery (version 1, epoch, sequence and attempt 0):
 * well formed, so a caller allowed on the subscription gets OK with it
 * listed in not_applied. */
#define WELL_FORMED_ACK_ID "AQAAAAAAAAAAAAAAAAAAAAAAAAAA"

static void call_ack(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;
    char *id = WELL_FORMED_ACK_ID;

    req.bus = (char *)t->busref;
    req.subscription = (char *)t->sub;
    req.n_ack_ids = 1;
    req.ack_ids = &id;
    unary(c, "/cebus.v1.EventBus/Ack", &req.base, &cebus__v1__ack_response__descriptor, o);
}

static void call_nack(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__NackRequest req = CEBUS__V1__NACK_REQUEST__INIT;
    char *id = WELL_FORMED_ACK_ID;

    req.bus = (char *)t->busref;
    req.subscription = (char *)t->sub;
    req.n_ack_ids = 1;
    req.ack_ids = &id;
    unary(c, "/cebus.v1.EventBus/Nack", &req.base, &cebus__v1__nack_response__descriptor, o);
}

static void call_seek(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__SeekRequest req = CEBUS__V1__SEEK_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.subscription = (char *)t->sub;
    req.position = CEBUS__V1__START_POSITION__START_POSITION_LATEST;
    unary(c, "/cebus.v1.EventBus/Seek", &req.base, &cebus__v1__seek_response__descriptor, o);
}

/* -- Admin: tenants -- */

static void call_create_tenant(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__CreateTenantRequest req = CEBUS__V1__CREATE_TENANT_REQUEST__INIT;

    req.name = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/CreateTenant", &req.base, &cebus__v1__tenant__descriptor, o);
}

static void call_get_tenant(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__GetTenantRequest req = CEBUS__V1__GET_TENANT_REQUEST__INIT;

    req.name = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/GetTenant", &req.base, &cebus__v1__tenant__descriptor, o);
}

static void call_list_tenants(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListTenantsRequest req = CEBUS__V1__LIST_TENANTS_REQUEST__INIT;

    (void)t;
    unary(c, "/cebus.v1.Admin/ListTenants", &req.base,
          &cebus__v1__list_tenants_response__descriptor, o);
}

static void call_update_tenant(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__UpdateTenantRequest req = CEBUS__V1__UPDATE_TENANT_REQUEST__INIT;
    Cebus__V1__Tenant tenant = CEBUS__V1__TENANT__INIT;
    char *mask = "display_name";

    tenant.name = (char *)t->tenant;
    tenant.display_name = "defaced";
    req.tenant = &tenant;
    req.n_update_mask = 1;
    req.update_mask = &mask;
    unary(c, "/cebus.v1.Admin/UpdateTenant", &req.base, &cebus__v1__tenant__descriptor, o);
}

static void call_delete_tenant(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__DeleteTenantRequest req = CEBUS__V1__DELETE_TENANT_REQUEST__INIT;

    req.name = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/DeleteTenant", &req.base,
          &cebus__v1__delete_tenant_response__descriptor, o);
}

/* -- Admin: API keys -- */

static void call_create_api_key(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__CreateApiKeyRequest req = CEBUS__V1__CREATE_API_KEY_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    req.role = CEBUS__V1__ROLE__ROLE_TENANT_ADMIN;
    unary(c, "/cebus.v1.Admin/CreateApiKey", &req.base,
          &cebus__v1__create_api_key_response__descriptor, o);
}

static void call_list_api_keys(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListApiKeysRequest req = CEBUS__V1__LIST_API_KEYS_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/ListApiKeys", &req.base,
          &cebus__v1__list_api_keys_response__descriptor, o);
}

static void call_revoke_api_key(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__RevokeApiKeyRequest req = CEBUS__V1__REVOKE_API_KEY_REQUEST__INIT;

    req.id = (char *)t->key_id;
    unary(c, "/cebus.v1.Admin/RevokeApiKey", &req.base,
          &cebus__v1__revoke_api_key_response__descriptor, o);
}

/* -- Admin: buses -- */

static void call_create_bus(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__CreateBusRequest req = CEBUS__V1__CREATE_BUS_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    req.name = "stolen";
    unary(c, "/cebus.v1.Admin/CreateBus", &req.base, &cebus__v1__bus__descriptor, o);
}

static void call_get_bus(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__GetBusRequest req = CEBUS__V1__GET_BUS_REQUEST__INIT;

    req.bus = (char *)t->busref;
    unary(c, "/cebus.v1.Admin/GetBus", &req.base, &cebus__v1__bus__descriptor, o);
}

static void call_list_buses(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListBusesRequest req = CEBUS__V1__LIST_BUSES_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/ListBuses", &req.base, &cebus__v1__list_buses_response__descriptor,
          o);
}

static void call_update_bus(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__UpdateBusRequest req = CEBUS__V1__UPDATE_BUS_REQUEST__INIT;
    Cebus__V1__Bus bus = CEBUS__V1__BUS__INIT;
    char *mask = "retention_hours";

    bus.tenant = (char *)t->tenant;
    bus.name = (char *)t->bus;
    bus.retention_hours = 1;
    req.bus = &bus;
    req.n_update_mask = 1;
    req.update_mask = &mask;
    unary(c, "/cebus.v1.Admin/UpdateBus", &req.base, &cebus__v1__bus__descriptor, o);
}

static void call_delete_bus(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__DeleteBusRequest req = CEBUS__V1__DELETE_BUS_REQUEST__INIT;

    req.bus = (char *)t->busref;
    unary(c, "/cebus.v1.Admin/DeleteBus", &req.base, &cebus__v1__delete_bus_response__descriptor,
          o);
}

/* -- Admin: grants -- */

static void call_create_grant(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__CreateGrantRequest req = CEBUS__V1__CREATE_GRANT_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.grantee_tenant = B_TENANT;
    req.permission = CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES;
    unary(c, "/cebus.v1.Admin/CreateGrant", &req.base, &cebus__v1__grant__descriptor, o);
}

static void call_list_grants(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListGrantsRequest req = CEBUS__V1__LIST_GRANTS_REQUEST__INIT;

    req.bus = (char *)t->busref;
    unary(c, "/cebus.v1.Admin/ListGrants", &req.base,
          &cebus__v1__list_grants_response__descriptor, o);
}

static void call_revoke_grant(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__RevokeGrantRequest req = CEBUS__V1__REVOKE_GRANT_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.grantee_tenant = (char *)t->grantee;
    req.permission = CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE;
    unary(c, "/cebus.v1.Admin/RevokeGrant", &req.base,
          &cebus__v1__revoke_grant_response__descriptor, o);
}

/* -- Admin: event sources -- */

static void call_create_event_source(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__CreateEventSourceRequest req = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    req.prefix = "/intruder";
    unary(c, "/cebus.v1.Admin/CreateEventSource", &req.base,
          &cebus__v1__event_source__descriptor, o);
}

static void call_list_event_sources(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListEventSourcesRequest req = CEBUS__V1__LIST_EVENT_SOURCES_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/ListEventSources", &req.base,
          &cebus__v1__list_event_sources_response__descriptor, o);
}

static void call_delete_event_source(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__DeleteEventSourceRequest req = CEBUS__V1__DELETE_EVENT_SOURCE_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    req.prefix = (char *)t->prefix;
    unary(c, "/cebus.v1.Admin/DeleteEventSource", &req.base,
          &cebus__v1__delete_event_source_response__descriptor, o);
}

/* -- Admin: quotas, and dead letters -- */

static void call_set_quota(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__SetQuotaRequest req = CEBUS__V1__SET_QUOTA_REQUEST__INIT;
    Cebus__V1__Quota quota = CEBUS__V1__QUOTA__INIT;

    quota.tenant = (char *)t->tenant;
    quota.events_per_second = 1;
    req.quota = &quota;
    unary(c, "/cebus.v1.Admin/SetQuota", &req.base, &cebus__v1__quota__descriptor, o);
}

static void call_get_quota(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__GetQuotaRequest req = CEBUS__V1__GET_QUOTA_REQUEST__INIT;

    req.tenant = (char *)t->tenant;
    unary(c, "/cebus.v1.Admin/GetQuota", &req.base, &cebus__v1__quota__descriptor, o);
}

static void call_list_dead_letters(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__ListDeadLettersRequest req = CEBUS__V1__LIST_DEAD_LETTERS_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.subscription = (char *)t->sub;
    unary(c, "/cebus.v1.Admin/ListDeadLetters", &req.base,
          &cebus__v1__list_dead_letters_response__descriptor, o);
}

static void call_redrive_dead_letters(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__RedriveDeadLettersRequest req = CEBUS__V1__REDRIVE_DEAD_LETTERS_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.subscription = (char *)t->sub;
    unary(c, "/cebus.v1.Admin/RedriveDeadLetters", &req.base,
          &cebus__v1__redrive_dead_letters_response__descriptor, o);
}

static void call_purge_dead_letters(cebus_client *c, const struct target *t, struct outcome *o)
{
    Cebus__V1__PurgeDeadLettersRequest req = CEBUS__V1__PURGE_DEAD_LETTERS_REQUEST__INIT;

    req.bus = (char *)t->busref;
    req.subscription = (char *)t->sub;
    unary(c, "/cebus.v1.Admin/PurgeDeadLetters", &req.base,
          &cebus__v1__purge_dead_letters_response__descriptor, o);
}

/* ---- The matrix ------------------------------------------------------------------ */

/* One row: a call aimed at one of A's resources. want[role] is the status
 * B's key of that role gets without a grant; opens[role] the grant kinds on
 * A's bus that turn it into OK for that role (README.md's role and grant
 * tables). */
struct row {
    const char *name;
    cell_fn fn;
    int want[NROLES];
    unsigned opens[NROLES];
};

/* Rows that change A's bus come last, so a grant that opens them (DeleteRule
 * with MANAGE_RULES) does not change what the rows before it see. */
static const struct row rows[] = {
    /* EventBus */
    {"PutEvents(A's bus)", call_put_events, {NF, NF, PD}, {P, P, 0}},
    {"CreateRule(on A's bus)", call_create_rule, {NF, PD, PD}, {M, 0, 0}},
    {"GetRule(A's rule)", call_get_rule, {NF, PD, NF}, {S | M, 0, S | M}},
    {"ListRules(A's bus)", call_list_rules, {NF, PD, NF}, {S | M, 0, S | M}},
    {"TestEventPattern(A's bus)", call_test_pattern_bus, {NF, PD, NF}, {S, 0, S}},
    {"Subscribe(A's bus, pattern)", call_subscribe_pattern, {NF, PD, NF}, {S, 0, S}},
    {"Subscribe(A's subscription)", call_subscribe_sub, {NF, PD, NF}, {S, 0, S}},
    {"Ack(A's subscription)", call_ack, {NF, PD, NF}, {S, 0, S}},
    {"Nack(A's subscription)", call_nack, {NF, PD, NF}, {S, 0, S}},
    {"Seek(A's subscription)", call_seek, {NF, PD, NF}, {S, 0, S}},
    /* Admin: tenants */
    {"CreateTenant(A's name)", call_create_tenant, {PD, PD, PD}, {0, 0, 0}},
    {"GetTenant(A)", call_get_tenant, {NF, PD, PD}, {0, 0, 0}},
    {"ListTenants", call_list_tenants, {PD, PD, PD}, {0, 0, 0}},
    {"UpdateTenant(A)", call_update_tenant, {NF, PD, PD}, {0, 0, 0}},
    {"DeleteTenant(A)", call_delete_tenant, {PD, PD, PD}, {0, 0, 0}},
    /* Admin: API keys */
    {"CreateApiKey(in A)", call_create_api_key, {NF, PD, PD}, {0, 0, 0}},
    {"ListApiKeys(A)", call_list_api_keys, {NF, PD, PD}, {0, 0, 0}},
    {"RevokeApiKey(A's key id)", call_revoke_api_key, {NF, PD, PD}, {0, 0, 0}},
    /* Admin: buses */
    {"CreateBus(in A)", call_create_bus, {NF, PD, PD}, {0, 0, 0}},
    {"GetBus(A's bus)", call_get_bus, {NF, NF, NF}, {ANY_GRANT, ANY_GRANT, ANY_GRANT}},
    {"ListBuses(A)", call_list_buses, {NF, NF, NF}, {0, 0, 0}},
    {"UpdateBus(A's bus)", call_update_bus, {NF, PD, PD}, {0, 0, 0}},
    /* Admin: grants */
    {"CreateGrant(on A's bus)", call_create_grant, {NF, PD, PD}, {0, 0, 0}},
    {"ListGrants(A's bus)", call_list_grants, {NF, PD, PD}, {0, 0, 0}},
    {"RevokeGrant(A's grant)", call_revoke_grant, {NF, PD, PD}, {0, 0, 0}},
    /* Admin: event sources */
    {"CreateEventSource(in A)", call_create_event_source, {NF, PD, PD}, {0, 0, 0}},
    {"ListEventSources(A)", call_list_event_sources, {NF, PD, PD}, {0, 0, 0}},
    {"DeleteEventSource(A's prefix)", call_delete_event_source, {NF, PD, PD}, {0, 0, 0}},
    /* Admin: quotas (SetQuota is the platform admin's alone) */
    {"SetQuota(A)", call_set_quota, {PD, PD, PD}, {0, 0, 0}},
    {"GetQuota(A)", call_get_quota, {NF, PD, PD}, {0, 0, 0}},
    /* Admin: dead letters, managed like rules */
    {"ListDeadLetters(A's subscription)", call_list_dead_letters, {NF, PD, PD}, {M, 0, 0}},
    {"RedriveDeadLetters(A's subscription)", call_redrive_dead_letters, {NF, PD, PD}, {M, 0, 0}},
    {"PurgeDeadLetters(A's subscription)", call_purge_dead_letters, {NF, PD, PD}, {M, 0, 0}},
    /* Last: these change A's bus when a grant lets them. */
    {"UpdateRule(A's rule)", call_update_rule, {NF, PD, PD}, {M, 0, 0}},
    {"DeleteRule(A's rule)", call_delete_rule, {NF, PD, PD}, {M, 0, 0}},
    {"DeleteBus(A's bus)", call_delete_bus, {NF, PD, PD}, {0, 0, 0}},
};

#define NROWS (sizeof rows / sizeof rows[0])

/* Fails the test unless every method of service has a row (named after
 * it), so that an RPC added to the API cannot escape the matrix. */
static void assert_rows_cover(const ProtobufCServiceDescriptor *service)
{
    for (unsigned i = 0; i < service->n_methods; i++) {
        const char *m = service->methods[i].name;
        size_t len = strlen(m);
        bool found = false;
        for (size_t r = 0; r < sizeof rows / sizeof rows[0] && !found; r++)
            found = strncmp(rows[r].name, m, len) == 0 &&
                    (rows[r].name[len] == '(' || rows[r].name[len] == '\0');
        if (!found)
            fail_msg("%s/%s has no row in the isolation matrix", service->name, m);
    }
}

/* ---- Searching answers ----------------------------------------------------------- */

/* Whether needle occurs in hay[0..len). */
static bool contains(const void *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    const uint8_t *h = hay;

    if (n == 0 || n > len)
        return false;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(h + i, needle, n) == 0)
            return true;
    return false;
}

/* Replaces, in msg, each string of t that the call sent by a placeholder
 * naming its field, the longest (the bus reference) first. */
static void mask_sent(const char *msg, const struct target *t, char *out, size_t size)
{
    const struct {
        const char *s, *as;
    } subs[] = {
        {t->busref, "<busref>"}, {t->key_id, "<key_id>"}, {t->tenant, "<tenant>"},
        {t->grantee, "<grantee>"}, {t->prefix, "<prefix>"}, {t->bus, "<bus>"},
        {t->rule, "<rule>"},     {t->sub, "<sub>"},
    };
    size_t n = 0;

    while (*msg && n + 16 < size) {
        size_t k;
        for (k = 0; k < sizeof subs / sizeof subs[0]; k++) {
            size_t l = strlen(subs[k].s);
            if (strncmp(msg, subs[k].s, l) == 0) {
                n += (size_t)snprintf(out + n, size - n, "%s", subs[k].as);
                msg += l;
                break;
            }
        }
        if (k == sizeof subs / sizeof subs[0])
            out[n++] = *msg++;
    }
    out[n] = '\0';
}

/* A's secrets: what no answer to B may carry unless B sent it itself or a
 * grant entitles B to it. always_secret marks what no grant reveals. */
struct secret {
    const char *s;
    bool always_secret;
};

static struct secret secrets[] = {
    {A_TENANT, false},    {A_DISPLAY, true},      {A_BUS, false},     {A_OTHER_BUS, true},
    {A_RULE, false},      {A_SUB, false},         {A_PAYLOAD, false}, {A_SOURCE, false},
    {A_DESCRIPTION, false}, {C_TENANT, true},     {a_key_ids[0], true}, {a_key_ids[1], true},
    {a_key_ids[2], true},
};

/* Fails the test when text[0..len) carries one of A's secrets (only the
 * always-secret ones when granted). */
static void assert_no_secret(const char *cell, const char *where, const void *text, size_t len,
                             bool granted)
{
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (granted && !secrets[i].always_secret)
            continue;
        if (contains(text, len, secrets[i].s))
            fail_msg("%s: %s reveals A's \"%s\"", cell, where, secrets[i].s);
    }
}

/* ---- Fixture -------------------------------------------------------------------- */

/* Makes sure A's rule exists (a MANAGE_RULES pass deletes it) and that B's
 * intruder rule does not. */
static void restore_a_rule(cebus_client *a_admin)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__DeleteRuleRequest dreq = CEBUS__V1__DELETE_RULE_REQUEST__INIT;
    Cebus__V1__SubscriptionTarget sub = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__Rule *rule = NULL;
    cebus_error err;
    int rc;

    sub.name = A_SUB;
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &sub;
    req.bus = A_BUS;
    req.name = A_RULE;
    req.pattern = A_RULE_PATTERN;
    req.description = A_DESCRIPTION;
    req.n_targets = 1;
    req.targets = targets;
    rc = cebus_create_rule(a_admin, &req, &rule, &err);
    if (rc == 0)
        cebus__v1__rule__free_unpacked(rule, NULL);
    else if (rc != GRPC_STATUS_ALREADY_EXISTS)
        fail_msg("A CreateRule: %s: %s", cebus_status_name(rc), err.message);
    dreq.bus = A_BUS;
    dreq.name = "intruder";
    rc = cebus_delete_rule(a_admin, &dreq, &err);
    if (rc != 0 && rc != GRPC_STATUS_NOT_FOUND)
        fail_msg("A DeleteRule intruder: %s: %s", cebus_status_name(rc), err.message);
}

static int group_setup(void **state)
{
    Cebus__V1__ListApiKeysRequest kreq = CEBUS__V1__LIST_API_KEYS_REQUEST__INIT;
    Cebus__V1__ListApiKeysResponse *keys = NULL;
    Cebus__V1__CreateEventSourceRequest sreq = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    struct h_tenant C;
    struct h_env *env;
    cebus_client *a_admin, *a_pub;
    cebus_error err;
    int rc;

    if (h_env_setup(state) != 0)
        return -1;
    env = *state;
    h_tenant_create_ok(env->admin, A_TENANT, A_BUS, &A);
    h_tenant_create_ok(env->admin, B_TENANT, B_BUS, &B);
    h_tenant_create_ok(env->admin, C_TENANT, "cbus", &C);

    a_admin = cebus_client_new(env->srv[0].addr, A.admin_key);
    a_pub = cebus_client_new(env->srv[0].addr, A.publisher_key);
    {
        Cebus__V1__UpdateTenantRequest ureq = CEBUS__V1__UPDATE_TENANT_REQUEST__INIT;
        Cebus__V1__Tenant t = CEBUS__V1__TENANT__INIT;
        char *mask = "display_name";
        t.name = A_TENANT;
        t.display_name = A_DISPLAY;
        ureq.tenant = &t;
        ureq.n_update_mask = 1;
        ureq.update_mask = &mask;
        rc = cebus_call_unary(a_admin, "/cebus.v1.Admin/UpdateTenant", &ureq.base,
                              &cebus__v1__tenant__descriptor, 0, &resp, &err);
        h_assert_status("A UpdateTenant", rc, &err, 0, NULL);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    h_assert_status("A CreateBus other", h_bus_create(a_admin, NULL, A_OTHER_BUS, &err), &err, 0,
                    NULL);
    restore_a_rule(a_admin);
    sreq.prefix = A_SOURCE;
    rc = cebus_call_unary(a_admin, "/cebus.v1.Admin/CreateEventSource", &sreq.base,
                          &cebus__v1__event_source__descriptor, 0, &resp, &err);
    h_assert_status("A CreateEventSource", rc, &err, 0, NULL);
    protobuf_c_message_free_unpacked(resp, NULL);
    h_assert_status("A grants C",
                    h_grant(a_admin, true, A_BUS, C_TENANT,
                                 CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE, &err),
                    &err, 0, NULL);
    /* A's events, on the bus B aims at, carry the payload marker. */
    {
        h_event *ev = h_event_new("a-event-1", A_SOURCE "/app", A_EVENT_TYPE,
                                  "{\"secret\":\"" A_PAYLOAD "\"}");
        Cebus__V1__PutEventsResponse *presp = NULL;
        rc = h_put(a_pub, A_BUS, &ev, 1, &presp, &err);
        h_assert_status("A PutEvents", rc, &err, 0, NULL);
        assert_int_equal(presp->failed_count, 0);
        cebus__v1__put_events_response__free_unpacked(presp, NULL);
        h_event_free(ev);
    }
    /* A's key ids, which B must never see. */
    kreq.tenant = A_TENANT;
    rc = cebus_call_unary(env->admin, "/cebus.v1.Admin/ListApiKeys", &kreq.base,
                          &cebus__v1__list_api_keys_response__descriptor, 0,
                          (ProtobufCMessage **)&keys, &err);
    h_assert_status("platform ListApiKeys A", rc, &err, 0, NULL);
    assert_int_equal(keys->n_keys, 3);
    for (size_t i = 0; i < 3; i++)
        snprintf(a_key_ids[i], sizeof a_key_ids[i], "%s", keys->keys[i]->id);
    cebus__v1__list_api_keys_response__free_unpacked(keys, NULL);

    real_t = (struct target){A_TENANT, A_BUS, A_BUSREF, A_RULE, A_SUB,
                             a_key_ids[0], A_SOURCE, C_TENANT};
    cebus_client_free(a_admin);
    cebus_client_free(a_pub);
    return 0;
}

/* ---- Tests ------------------------------------------------------------------------ */

/* Runs one cell and its ghost twin and checks them; returns the real
 * outcome's code. granted_kind is the grant B holds on A's bus (0: none). */
static void run_cell(cebus_client *c, const struct row *r, int role, unsigned granted_kind,
                     int *cells)
{
    struct outcome real, ghost;
    bool opens = (r->opens[role] & granted_kind) != 0;
    int want = opens ? GRPC_STATUS_OK : r->want[role];
    char cell[200], m_real[600], m_ghost[600];

    snprintf(cell, sizeof cell, "B %s, %s, grant %s", role_names[role], r->name,
             granted_kind == P   ? "PUBLISH"
             : granted_kind == S ? "SUBSCRIBE"
             : granted_kind == M ? "MANAGE_RULES"
                                 : "none");
    r->fn(c, &real_t, &real);
    if (real.code != want)
        fail_msg("%s: got %s (%s), want %s", cell, cebus_status_name(real.code), real.message,
                 cebus_status_name(want));
    if (want == GRPC_STATUS_OK) {
        /* What a grant opens shows A's bus; never anything else of A. */
        assert_no_secret(cell, "the response", real.bytes, real.len, true);
    } else {
        mask_sent(real.message, &real_t, m_real, sizeof m_real);
        assert_no_secret(cell, "the message", m_real, strlen(m_real), false);
        r->fn(c, &ghost_t, &ghost);
        mask_sent(ghost.message, &ghost_t, m_ghost, sizeof m_ghost);
        if (ghost.code != real.code || strcmp(m_real, m_ghost) != 0)
            fail_msg("%s: A's resource answers %s \"%s\", a missing one %s \"%s\": B can tell "
                     "them apart",
                     cell, cebus_status_name(real.code), real.message,
                     cebus_status_name(ghost.code), ghost.message);
        outcome_clear(&ghost);
    }
    outcome_clear(&real);
    (*cells)++;
}

/* B without any grant: every row refused, like the ghost twin. */
static void test_matrix_without_grant(void **state)
{
    struct h_env *env = *state;
    const char *keys[NROLES] = {B.admin_key, B.publisher_key, B.subscriber_key};
    int cells = 0;

    assert_rows_cover(&cebus__v1__event_bus__descriptor);
    assert_rows_cover(&cebus__v1__admin__descriptor);
    for (size_t r = 0; r < NROWS; r++)
        for (int role = 0; role < NROLES; role++) {
            cebus_client *c = cebus_client_new(env->srv[0].addr, keys[role]);
            run_cell(c, &rows[r], role, 0, &cells);
            cebus_client_free(c);
        }
    assert_int_equal(cells, (int)NROWS * NROLES);
}

/* B holding one grant on A's bus: exactly the calls of that grant open. */
static void matrix_with_grant(struct h_env *env, Cebus__V1__Permission perm)
{
    const char *keys[NROLES] = {B.admin_key, B.publisher_key, B.subscriber_key};
    cebus_client *a_admin = cebus_client_new(env->srv[0].addr, A.admin_key);
    cebus_error err;
    int cells = 0;

    /* A pass that failed midway may have left its grant behind. */
    for (int k = CEBUS__V1__PERMISSION__PERMISSION_PUBLISH;
         k <= CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES; k++)
        h_grant(a_admin, false, A_BUS, B_TENANT, (Cebus__V1__Permission)k, &err);
    restore_a_rule(a_admin);
    h_assert_status("A grants B", h_grant(a_admin, true, A_BUS, B_TENANT, perm, &err), &err, 0,
                    NULL);
    for (size_t r = 0; r < NROWS; r++)
        for (int role = 0; role < NROLES; role++) {
            cebus_client *c = cebus_client_new(env->srv[0].addr, keys[role]);
            run_cell(c, &rows[r], role, 1u << perm, &cells);
            cebus_client_free(c);
        }
    assert_int_equal(cells, (int)NROWS * NROLES);
    h_assert_status("A revokes B's grant", h_grant(a_admin, false, A_BUS, B_TENANT, perm, &err),
                    &err, 0, NULL);
    restore_a_rule(a_admin);
    cebus_client_free(a_admin);
}

static void test_matrix_with_publish_grant(void **state)
{
    matrix_with_grant(*state, CEBUS__V1__PERMISSION__PERMISSION_PUBLISH);
}

static void test_matrix_with_subscribe_grant(void **state)
{
    matrix_with_grant(*state, CEBUS__V1__PERMISSION__PERMISSION_SUBSCRIBE);
}

static void test_matrix_with_manage_rules_grant(void **state)
{
    matrix_with_grant(*state, CEBUS__V1__PERMISSION__PERMISSION_MANAGE_RULES);
}

/* After all the passes, A's things are as A left them: B's attempts
 * changed nothing that no grant allowed. */
static void test_a_is_intact(void **state)
{
    struct h_env *env = *state;
    cebus_client *a_admin = cebus_client_new(env->srv[0].addr, A.admin_key);
    struct target own = real_t;
    struct outcome o;

    own.busref = A_BUS;
    call_get_tenant(a_admin, &(struct target){.tenant = ""}, &o);
    assert_int_equal(o.code, 0);
    assert_true(contains(o.bytes, o.len, A_DISPLAY));
    outcome_clear(&o);
    call_list_buses(a_admin, &(struct target){.tenant = ""}, &o);
    assert_int_equal(o.code, 0);
    assert_true(contains(o.bytes, o.len, A_BUS) && contains(o.bytes, o.len, A_OTHER_BUS));
    assert_false(contains(o.bytes, o.len, "stolen"));
    outcome_clear(&o);
    call_get_bus(a_admin, &own, &o);
    assert_int_equal(o.code, 0);
    {
        Cebus__V1__Bus *bus = cebus__v1__bus__unpack(NULL, o.len, o.bytes);
        assert_non_null(bus);
        assert_int_equal(bus->retention_hours, 168); /* UpdateBus(retention 1) never applied */
        cebus__v1__bus__free_unpacked(bus, NULL);
    }
    outcome_clear(&o);
    call_get_rule(a_admin, &own, &o);
    assert_int_equal(o.code, 0);
    assert_true(contains(o.bytes, o.len, A_DESCRIPTION));
    outcome_clear(&o);
    call_list_event_sources(a_admin, &(struct target){.tenant = ""}, &o);
    assert_int_equal(o.code, 0);
    assert_true(contains(o.bytes, o.len, A_SOURCE));
    assert_false(contains(o.bytes, o.len, "/intruder"));
    outcome_clear(&o);
    call_list_grants(a_admin, &own, &o);
    assert_int_equal(o.code, 0);
    assert_true(contains(o.bytes, o.len, C_TENANT));
    assert_false(contains(o.bytes, o.len, B_TENANT));
    outcome_clear(&o);
    call_list_api_keys(a_admin, &(struct target){.tenant = ""}, &o);
    assert_int_equal(o.code, 0);
    {
        Cebus__V1__ListApiKeysResponse *keys =
            cebus__v1__list_api_keys_response__unpack(NULL, o.len, o.bytes);
        assert_int_equal(keys->n_keys, 3);
        for (size_t i = 0; i < keys->n_keys; i++)
            assert_false(keys->keys[i]->revoked);
        cebus__v1__list_api_keys_response__free_unpacked(keys, NULL);
    }
    outcome_clear(&o);
    cebus_client_free(a_admin);
}

/* B's own List calls, and the reads of its own tenant, carry B's things
 * only: nothing of A in any byte of the answers. */
static void test_b_lists_show_only_b(void **state)
{
    struct h_env *env = *state;
    const char *keys[NROLES] = {B.admin_key, B.publisher_key, B.subscriber_key};
    const struct target own = {"", B_BUS, B_BUS, "none", "none", "none", "/none", "none"};
    const struct {
        const char *name;
        cell_fn fn;
        bool ok[NROLES];
    } reads[] = {
        {"GetTenant(own)", call_get_tenant, {true, false, false}},
        {"ListBuses(own)", call_list_buses, {true, true, true}},
        {"GetBus(own)", call_get_bus, {true, true, true}},
        {"ListApiKeys(own)", call_list_api_keys, {true, false, false}},
        {"ListRules(own bus)", call_list_rules, {true, false, true}},
        {"ListGrants(own bus)", call_list_grants, {true, false, false}},
        {"ListEventSources(own)", call_list_event_sources, {true, false, false}},
        {"TestEventPattern(own bus)", call_test_pattern_bus, {true, false, true}},
    };
    cebus_client *b_pub = cebus_client_new(env->srv[0].addr, B.publisher_key);
    cebus_client *b_admin = cebus_client_new(env->srv[0].addr, B.admin_key);
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__CreateEventSourceRequest sreq = CEBUS__V1__CREATE_EVENT_SOURCE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    Cebus__V1__Rule *rule = NULL;
    struct h_tenant D;
    cebus_error err;

    rreq.bus = B_BUS;
    rreq.name = "b-rule";
    rreq.pattern = "{}";
    h_assert_status("B CreateRule", cebus_create_rule(b_admin, &rreq, &rule, &err), &err, 0,
                    NULL);
    cebus__v1__rule__free_unpacked(rule, NULL);
    /* B's grant on its own bus, to a tenant of its own choosing. */
    h_tenant_create_ok(env->admin, "hooli", "hbus", &D);
    h_assert_status("B grants hooli",
                    h_grant(b_admin, true, B_BUS, "hooli",
                                 CEBUS__V1__PERMISSION__PERMISSION_PUBLISH, &err),
                    &err, 0, NULL);
    sreq.prefix = "/it"; /* the source h_put_one_ok publishes under */
    h_assert_status("B CreateEventSource",
                    cebus_call_unary(b_admin, "/cebus.v1.Admin/CreateEventSource", &sreq.base,
                                     &cebus__v1__event_source__descriptor, 0, &resp, &err),
                    &err, 0, NULL);
    protobuf_c_message_free_unpacked(resp, NULL);
    cebus_client_free(b_admin);
    h_put_one_ok(b_pub, B_BUS, "b-event-1", "b.thing", "{\"mine\":true}");
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
        for (int role = 0; role < NROLES; role++) {
            cebus_client *c = cebus_client_new(env->srv[0].addr, keys[role]);
            struct outcome o;
            char cell[160];

            snprintf(cell, sizeof cell, "B %s, %s", role_names[role], reads[i].name);
            reads[i].fn(c, &own, &o);
            if (o.code != (reads[i].ok[role] ? 0 : PD))
                fail_msg("%s: got %s (%s)", cell, cebus_status_name(o.code), o.message);
            if (o.code == 0) {
                assert_no_secret(cell, "the response", o.bytes, o.len, false);
                if (!contains(o.bytes, o.len, B_TENANT) && !contains(o.bytes, o.len, B_BUS) &&
                    !contains(o.bytes, o.len, "b-event-1"))
                    fail_msg("%s: the answer shows nothing of B either", cell);
            } else {
                assert_no_secret(cell, "the message", o.message, strlen(o.message), false);
            }
            outcome_clear(&o);
            cebus_client_free(c);
        }

    /* A stream on B's own bus from the start carries B's event only. */
    {
        cebus_client *b_sub = cebus_client_new(env->srv[0].addr, B.subscriber_key);
        cebus_stream *s = h_subscribe_ok(b_sub, B_BUS, "{}",
                                         CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
        Cebus__V1__SubscribeResponse *m = h_expect_next(s);
        uint8_t buf[4096];
        size_t len = cebus__v1__subscribe_response__get_packed_size(m);

        assert_true(len < sizeof buf);
        cebus__v1__subscribe_response__pack(m, buf);
        assert_string_equal(m->event->id, "b-event-1");
        assert_no_secret("B stream on its own bus", "the delivery", buf, len, false);
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        cebus_stream_close(s);
        cebus_client_free(b_sub);
    }
    cebus_client_free(b_pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrix_without_grant),
        cmocka_unit_test(test_matrix_with_publish_grant),
        cmocka_unit_test(test_matrix_with_subscribe_grant),
        cmocka_unit_test(test_matrix_with_manage_rules_grant),
        cmocka_unit_test(test_b_lists_show_only_b),
        cmocka_unit_test(test_a_is_intact),
    };

    return cmocka_run_group_tests(tests, group_setup, h_env_teardown);
}
