/* The PostgreSQL store: connections, migrations and every statement cebus
 * runs. The only files that include libpq-fe.h are store*.c.
 *
 * Every function returns EB_OK, or: EB_ENOTFOUND (no such row),
 * EB_EEXIST (unique violation), EB_EUNAVAIL (the connection failed; the
 * caller may retry on a fresh one), EB_EINTERNAL (anything else, logged
 * here without the database's text reaching a client).
 * THREAD SAFETY: one connection is used by one thread at a time.
 */
#ifndef EB_STORE_H
#define EB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct eb_db eb_db;

#define EB_NAME_MAX 64

/* Opens a connection. Returns EB_OK and sets *out, or EB_EUNAVAIL. */
eb_status eb_db_connect(const char *url, eb_db **out);

/* Returns a connection object even when the database cannot be reached;
 * it then reports EB_EUNAVAIL from every statement until eb_db_ensure()
 * succeeds. Close with eb_db_close(). */
eb_db *eb_db_open(const char *url);

/* Reconnects when the connection is broken. Returns EB_OK when usable. */
eb_status eb_db_ensure(eb_db *db);

/* Closes db. NULL is allowed. */
void eb_db_close(eb_db *db);

/* The socket, for waiting on notifications with poll(). */
int eb_db_socket(eb_db *db);

/* Applies pending migrations from dir (files NNNN_name.sql, in order), each
 * in its own transaction, holding an advisory lock so that replicas
 * starting together do not race. Sets *applied to how many ran. */
eb_status eb_store_migrate(eb_db *db, const char *dir, int *applied);

/* --- Tenants and keys ---------------------------------------------------- */

struct eb_tenant_rec {
    int64_t id;
    char name[EB_NAME_MAX + 1];
    char display_name[257];
    bool disabled;
    int64_t created_us;
};

eb_status eb_store_tenant_insert(eb_db *db, const char *name, const char *display_name,
                                 struct eb_tenant_rec *out);
eb_status eb_store_tenant_get(eb_db *db, const char *name, struct eb_tenant_rec *out);

/* What an authenticated key stands for. */
struct eb_key_rec {
    int64_t id;
    int64_t tenant_id;
    char tenant[EB_NAME_MAX + 1];
    char prefix[32];
    int role;              /* cebus.v1.Role */
    bool tenant_disabled;
    bool revoked;
    int64_t expires_us;    /* 0: never */
};

eb_status eb_store_key_insert(eb_db *db, int64_t tenant_id, const char *prefix,
                              const uint8_t hash[32], int role, const char *description,
                              int64_t expires_us, int64_t *created_us);
/* Looks a key up by the SHA-256 of its secret. */
eb_status eb_store_key_lookup(eb_db *db, const uint8_t hash[32], struct eb_key_rec *out);
/* Counts the platform admin keys that are not revoked. */
eb_status eb_store_admin_key_count(eb_db *db, int64_t *count);

/* Up to limit tenants with names after `after` (may be ""), by name. *out
 * is a new array (free()). */
eb_status eb_store_tenant_list(eb_db *db, const char *after, int limit,
                               struct eb_tenant_rec **out, size_t *n);
/* Sets a tenant's display name (NULL: unchanged) and disabled flag (< 0:
 * unchanged, 0 or 1) and returns the updated row. */
eb_status eb_store_tenant_update(eb_db *db, int64_t tenant_id, const char *display_name,
                                 int disabled, struct eb_tenant_rec *out);
/* Deletes a tenant with its keys, buses, rules, targets, events and dedup
 * entries, in one transaction. */
eb_status eb_store_tenant_delete(eb_db *db, int64_t tenant_id);

/* A key as lists show it: never its hash. */
struct eb_key_info {
    char prefix[32];
    int64_t tenant_id;
    char tenant[EB_NAME_MAX + 1];
    int role;              /* cebus.v1.Role */
    char description[257];
    int64_t created_us;
    int64_t expires_us;    /* 0: never */
    bool revoked;
};

/* Up to limit keys of a tenant with prefixes after `after` (may be ""),
 * by prefix. *out is a new array (free()). */
eb_status eb_store_key_list(eb_db *db, int64_t tenant_id, const char *after, int limit,
                            struct eb_key_info **out, size_t *n);
/* Revokes the key with this prefix; tenant_id != 0 limits the search to
 * that tenant (another tenant's key is EB_ENOTFOUND). Revoking a revoked
 * key succeeds and changes nothing. EB_EPERM when the key is a platform
 * admin key and admin_keys is false; EB_EPRECOND when it is the last usable
 * platform admin key. Sets *out to the key as it now is. */
eb_status eb_store_key_revoke(eb_db *db, int64_t tenant_id, const char *prefix, bool admin_keys,
                              struct eb_key_info *out);

/* --- Buses ------------------------------------------------------------- */

struct eb_bus_rec {
    int64_t id;
    int64_t tenant_id;
    char tenant[EB_NAME_MAX + 1];
    char name[EB_NAME_MAX + 1];
    int retention_hours;
    int dedup_window_seconds;
    int64_t created_us;
};

/* Inserts a bus, after making the event log partitions its retention
 * needs (eb_store_partitions_for_retention): not to be called inside a
 * transaction. */
eb_status eb_store_bus_insert(eb_db *db, int64_t tenant_id, const char *name,
                              int retention_hours, int dedup_window_seconds,
                              struct eb_bus_rec *out);
eb_status eb_store_bus_get(eb_db *db, const char *tenant, const char *name,
                           struct eb_bus_rec *out);
/* Lists up to limit buses of a tenant with names after `after` (may be
 * ""), by name. *out is a new array (free()). */
eb_status eb_store_bus_list(eb_db *db, int64_t tenant_id, const char *after, int limit,
                            struct eb_bus_rec **out, size_t *n);
/* Sets a bus's retention and dedup window (each < 0: unchanged) and
 * returns the updated row. Like eb_store_bus_insert, first makes the event
 * log partitions the retention needs (eb_store_partitions_for_retention):
 * not to be called inside a transaction. */
eb_status eb_store_bus_update(eb_db *db, int64_t bus_id, int retention_hours,
                              int dedup_window_seconds, struct eb_bus_rec *out);
/* Deletes a bus with its rules, targets, events and dedup entries, in one
 * transaction. */
eb_status eb_store_bus_delete(eb_db *db, int64_t bus_id);

/* For the open streams' keys and buses: which keys can no longer
 * authenticate (revoked, expired, tenant disabled or deleted) and which
 * buses no longer exist, in one query. *bad_keys and *gone_buses are new
 * arrays (free()); ids may repeat in the input. */
eb_status eb_store_streams_check(eb_db *db, const int64_t *key_ids, size_t nkeys,
                                 const int64_t *bus_ids, size_t nbuses, int64_t **bad_keys,
                                 size_t *nbad_keys, int64_t **gone_buses, size_t *ngone);

/* --- Rules ------------------------------------------------------------- */

enum eb_target_kind { EB_TARGET_SUBSCRIPTION = 1, EB_TARGET_HTTP = 2, EB_TARGET_BUS = 3 };

/* Settings of a subscription target (cebus.v1.SubscriptionTarget); 0 means
 * the default, which eb_sub_settings_resolve() fills in. */
struct eb_sub_settings {
    int32_t ack_deadline_s;  /* 1..600; default 30 */
    int32_t max_attempts;    /* 1..100; default 5 */
    int32_t max_age_s;       /* 0: only the bus's retention; else >= 1 */
    int32_t max_outstanding; /* 1..100000; default 10000 */
};

struct eb_target_rec {
    enum eb_target_kind kind;
    char *value; /* subscription name, URL or bus reference */
    struct eb_sub_settings sub; /* EB_TARGET_SUBSCRIPTION only; as stored (0: default) */
};

struct eb_rule_rec {
    int64_t id;
    char name[EB_NAME_MAX + 1];
    char *pattern;
    char *description;
    bool enabled;
    int64_t version;    /* 1 when created; each update adds one */
    int64_t created_us;
    int64_t updated_us;
    size_t ntargets;
    struct eb_target_rec *targets;
};

/* Frees what a rule record owns (not the record). NULL is allowed. */
void eb_rule_rec_clear(struct eb_rule_rec *r);

/* Inserts rule r (its id and times are filled in) and its targets in one
 * transaction. EB_EEXIST names no field: the caller knows whether the rule
 * name or a subscription name collided from *conflict ("name" or
 * "subscription"). */
eb_status eb_store_rule_insert(eb_db *db, int64_t bus_id, struct eb_rule_rec *r,
                               const char **conflict);

/* Quota limits checked inside the transaction that adds rules or
 * subscription targets (README.md, Quotas). */
struct eb_rule_limits {
    int64_t tenant_id;         /* the bus owner, whose quota applies */
    int64_t max_rules;         /* rules on the bus */
    int64_t max_subscriptions; /* subscription targets on all of the tenant's buses */
    const char *exceeded;      /* out, on EB_EEXHAUSTED: "rules_per_bus" or "subscriptions" */
};

/* eb_store_rule_insert() within lim: EB_EEXHAUSTED (lim->exceeded set)
 * when the bus would hold more than lim->max_rules rules or the tenant more
 * than lim->max_subscriptions subscription targets. */
eb_status eb_store_rule_insert_limited(eb_db *db, int64_t bus_id, struct eb_rule_rec *r,
                                       struct eb_rule_limits *lim, const char **conflict);

/* Checks lim inside the caller's transaction (store_quota.c): first takes a
 * lock on lim->tenant_id's rule changes, held until the transaction ends
 * (take it before any row lock of the transaction: rule creates take it
 * first), then counts the rules of bus_id and the tenant's subscription
 * targets, both without the rule named except_rule on bus_id (the rule
 * being updated; NULL for a new rule, which also counts one more rule).
 * Returns EB_EEXHAUSTED, with lim->exceeded set, when one more rule (new
 * rules only) or new_subscriptions more subscription targets would exceed
 * lim; EB_ENOTFOUND when except_rule does not exist.
 * REQUIRES: inside a transaction on db. */
eb_status eb_store_rule_limits_check_tx(eb_db *db, int64_t bus_id, const char *except_rule,
                                        int64_t new_subscriptions,
                                        struct eb_rule_limits *lim);
eb_status eb_store_rule_get(eb_db *db, int64_t bus_id, const char *name,
                            struct eb_rule_rec *out);
/* Up to limit rules with names after `after`, by name; *out is a new array
 * (clear each, then free()). */
eb_status eb_store_rule_list(eb_db *db, int64_t bus_id, const char *after, int limit,
                             struct eb_rule_rec **out, size_t *n);
/* Deletes a rule with its targets and notifies channel "cebus_rules" with
 * the bus id, in one statement. */
eb_status eb_store_rule_delete(eb_db *db, int64_t bus_id, const char *name);

/* What an update replaces; NULL, < 0 and false leave a field as it is. */
struct eb_rule_change {
    const char *pattern;
    const char *description;
    int enabled;                        /* < 0: unchanged; 0 or 1 */
    bool set_targets;                   /* replace the targets with these */
    const struct eb_target_rec *targets; /* borrowed */
    size_t ntargets;
    /* Set with set_targets: the new targets must fit these quota limits,
     * else EB_EEXHAUSTED with limits->exceeded set; NULL: unchecked. */
    struct eb_rule_limits *limits;
};

/* Applies c to the rule `name` of the bus in one transaction (within
 * c->limits when it replaces the targets): sets its
 * update time, adds one to its version, and notifies channel "cebus_rules"
 * with the bus id, so that open streams follow it. On success *out is the
 * rule as it now is (clear it with eb_rule_rec_clear()). EB_ENOTFOUND when
 * there is no such rule; EB_EEXIST when a new subscription target's name
 * is taken on the bus (*conflict = "subscription"). */
eb_status eb_store_rule_update(eb_db *db, int64_t bus_id, const char *name,
                               const struct eb_rule_change *c, struct eb_rule_rec *out,
                               const char **conflict);

/* A rule as an open stream knows it: the rule it subscribed through, the
 * subscription target's name and the rule version it was built from. */
struct eb_rule_follow {
    int64_t rule_id;
    const char *subscription; /* borrowed */
    int64_t version;
};

/* The new state of a followed rule that changed. */
struct eb_rule_state {
    size_t index;   /* into the follows array */
    bool gone;      /* deleted, or no longer targets the subscription */
    int64_t version;
    bool enabled;
    char *pattern;  /* owned; NULL when gone */
};

/* For follows[0..n): reports, in one statement and so from one snapshot,
 * the ones whose rule changed since their version or is gone. *out is a
 * new array (free each pattern, then the array); unchanged rules are not
 * in it. */
eb_status eb_store_rules_changed(eb_db *db, const struct eb_rule_follow *follows, size_t n,
                                 struct eb_rule_state **out, size_t *nout);
/* Counts the rules of a bus. */
eb_status eb_store_rule_count(eb_db *db, int64_t bus_id, int64_t *count);
/* The rule that owns subscription target `subscription` on the bus. */
eb_status eb_store_rule_by_subscription(eb_db *db, int64_t bus_id, const char *subscription,
                                        struct eb_rule_rec *out);

/* --- Events ------------------------------------------------------------ */

struct eb_append_row {
    int64_t bus_id;
    int64_t tenant_id;  /* the publishing tenant: deduplication is per tenant */
    int64_t received_us;
    const char *source;
    const char *event_id;
    const char *type;
    const uint8_t *body;
    size_t body_len;
    int64_t seq;        /* out: assigned sequence (the original one for duplicates) */
    bool duplicate;     /* out: (tenant, source, event_id) was accepted within the window */
    eb_status status;   /* out: EB_OK, or EB_ENOTFOUND when the bus is gone */
};

/* Appends rows in one transaction: for each bus, in increasing bus id
 * order, takes the bus's sequence counter row lock, answers rows whose
 * (tenant_id, source, event_id) the bus accepted within its dedup window (or earlier
 * in this call) as duplicates with the original sequence, assigns
 * consecutive sequences to the others in row order, inserts them, and
 * notifies channel "cebus_events" with the bus id. Returns EB_OK only after
 * COMMIT succeeded; on any failure no row is stored (and none may be
 * reported as stored). */
eb_status eb_store_events_append(eb_db *db, struct eb_append_row *rows, size_t n);

/* Removes up to limit expired dedup entries; sets *removed. */
eb_status eb_store_dedup_expire(eb_db *db, int limit, int64_t *removed);

struct eb_event_rec {
    int64_t seq;
    int64_t received_us;
    int64_t expires_us; /* forward reads only; 0 otherwise */
    uint8_t *body; /* owned; free() */
    size_t body_len;
};

/* Reads up to limit events of a bus with sequence > after_seq, in order,
 * leaving out expired ones. *out is a new array; free each body, then the
 * array. */
eb_status eb_store_events_read(eb_db *db, int64_t bus_id, int64_t after_seq, int limit,
                               struct eb_event_rec **out, size_t *n);

/* Like eb_store_events_read, for readers that know a lower bound of the
 * expiries of the events they ask for (min_expires_us; 0: none): a bus's
 * expiries never decrease along its sequences, so the expiry of the event
 * at after_seq is one. Partitions of earlier expiries are not read. */
eb_status eb_store_events_tail(eb_db *db, int64_t bus_id, int64_t after_seq,
                               int64_t min_expires_us, int limit, struct eb_event_rec **out,
                               size_t *n);

/* The highest committed sequence of the bus (0 when empty). */
eb_status eb_store_events_head(eb_db *db, int64_t bus_id, int64_t *seq);

/* The sequence just before the first retained event received at or after
 * time_us (so a time older than the retention starts at the oldest retained
 * event), or the head when there is none. */
eb_status eb_store_events_before_time(eb_db *db, int64_t bus_id, int64_t time_us,
                                      int64_t *seq);

/* --- Retention (store_retention.c) --------------------------------------- */

/* The oldest retained sequence of the bus: every event of the bus with a
 * lower sequence has expired (it is gone, or invisible to every read until
 * its partition is dropped); the bus's next sequence when none is retained.
 * EB_ENOTFOUND when the bus does not exist. */
eb_status eb_store_events_oldest(eb_db *db, int64_t bus_id, int64_t *seq);

struct eb_maintain_result {
    bool skipped; /* another session was running maintenance */
    int created;  /* partitions created */
    int dropped;  /* partitions dropped */
};

/* Runs one partition maintenance pass as of now_us (0: the database's
 * clock): creates the partitions the next appends need, records each bus's
 * oldest retained sequence and drops the partitions wholly expired. At most
 * one session runs it at a time; the others return at once with skipped
 * set. See cebus_maintain_partitions in migrations/0007_retention.sql. */
eb_status eb_store_partitions_maintain(eb_db *db, int64_t now_us,
                                       struct eb_maintain_result *out);

/* Creates the partitions that appends to a bus with a retention of
 * retention_hours need over the next two days, in a transaction of its
 * own. Called before a bus gets that retention (never inside a transaction
 * that holds a bus row). Best effort: a failure is logged and left to the
 * next maintenance run. */
void eb_store_partitions_for_retention(eb_db *db, int retention_hours);

/* LISTENs on "cebus_events" (new events) and "cebus_rules" (a rule
 * changed or was deleted) on this connection. */
eb_status eb_store_listen(eb_db *db);

/* The channels eb_store_listen() and eb_store_listen_subs() listen on. */
enum eb_notify_channel { EB_NOTIFY_EVENTS, EB_NOTIFY_RULES, EB_NOTIFY_SUBS };

/* Consumes input and calls fn with the channel and id of each notification
 * that arrived: a bus id for EB_NOTIFY_EVENTS and EB_NOTIFY_RULES, a
 * subscription id for EB_NOTIFY_SUBS. Returns EB_EUNAVAIL when the
 * connection broke. */
eb_status eb_store_drain_notifications(eb_db *db,
                                       void (*fn)(void *arg, enum eb_notify_channel ch,
                                                  int64_t id),
                                       void *arg);

/* Reads, newest first, up to limit events of a bus with
 * after_seq < seq < before_seq, in one statement. Stops early, after at
 * least one event, once the bodies read reach max_bytes, so that a page of
 * large events stays small. *out is a new array; free each body, then the
 * array. */
eb_status eb_store_events_read_back(eb_db *db, int64_t bus_id, int64_t after_seq,
                                    int64_t before_seq, int limit, size_t max_bytes,
                                    struct eb_event_rec **out, size_t *n);

/* --- Grants and event sources ------------------------------------------ */

/* Permissions a grant gives: the values of cebus.v1.Permission. */
enum eb_permission {
    EB_PERMISSION_PUBLISH = 1,
    EB_PERMISSION_SUBSCRIBE = 2,
    EB_PERMISSION_MANAGE_RULES = 3,
};

struct eb_grant_rec {
    int64_t bus_id;
    int64_t grantee_id;
    char grantee[EB_NAME_MAX + 1];
    int permission; /* enum eb_permission */
    int64_t created_us;
    char page_key[EB_NAME_MAX + 3]; /* "grantee/permission": where a page may end */
};

/* Grants permission on a bus to tenant grantee_id and sets *created_us.
 * EB_EEXIST when that grant exists; EB_ENOTFOUND when the bus or the
 * grantee is gone. */
eb_status eb_store_grant_insert(eb_db *db, int64_t bus_id, int64_t grantee_id, int permission,
                                int64_t *created_us);
/* Revokes a grant; EB_ENOTFOUND when there was none. */
eb_status eb_store_grant_delete(eb_db *db, int64_t bus_id, int64_t grantee_id, int permission);
/* Up to limit grants on a bus, by grantee name and permission, starting
 * after (after_grantee, after_permission); after_grantee "" starts at the
 * first. *out is a new array (free()). */
eb_status eb_store_grant_list(eb_db *db, int64_t bus_id, const char *after_grantee,
                              int after_permission, int limit, struct eb_grant_rec **out,
                              size_t *n);
/* Sets *mask to the permissions grantee_id holds on the bus, as bits
 * 1 << permission (0: none). */
eb_status eb_store_grant_mask(eb_db *db, int64_t bus_id, int64_t grantee_id, unsigned *mask);
/* For the open streams opened through a grant: sets present[i] to whether
 * grantee_ids[i] still holds permission on bus_ids[i], in one query. */
eb_status eb_store_grants_check(eb_db *db, const int64_t *grantee_ids, const int64_t *bus_ids,
                                size_t n, int permission, bool *present);

#define EB_SOURCE_PREFIX_MAX 1024

struct eb_source_rec {
    char prefix[EB_SOURCE_PREFIX_MAX + 1];
};

/* Registers a source prefix for a tenant that has fewer than max. A prefix
 * belongs to one tenant: EB_EPERM when it starts with, or is the start of,
 * another tenant's prefix. EB_EEXIST when registered already; EB_EEXHAUSTED
 * when the tenant has max; EB_ENOTFOUND when the tenant is gone. */
eb_status eb_store_source_insert(eb_db *db, int64_t tenant_id, const char *prefix, int max);
/* Who holds a source prefix: one row of eb_store_source_owners(). */
struct eb_source_owner {
    int64_t tenant_id;
    char *prefix; /* owned by the array's holder; see eb_source_owners_free() */
};

/* Up to limit registered prefixes of every tenant, in byte order (strcmp).
 * *out is a new array, free with eb_source_owners_free(). Also sets *total
 * to the number registered in all (which may exceed limit). */
eb_status eb_store_source_owners(eb_db *db, int limit, struct eb_source_owner **out, size_t *n,
                                 int64_t *total);

/* Sets *total to the number of source prefixes registered in all. */
eb_status eb_store_source_count(eb_db *db, int64_t *total);

/* Frees an array from eb_store_source_owners(). NULL is allowed. */
void eb_source_owners_free(struct eb_source_owner *v, size_t n);

/* Removes a source prefix; EB_ENOTFOUND when it was not registered. */
eb_status eb_store_source_delete(eb_db *db, int64_t tenant_id, const char *prefix);
/* Up to limit source prefixes of a tenant, in byte order. *out is a new
 * array (free()). */
eb_status eb_store_source_list(eb_db *db, int64_t tenant_id, int limit,
                               struct eb_source_rec **out, size_t *n);

#endif
