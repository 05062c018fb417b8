/* API keys and the principal a call acts as: key generation and hashing,
 * authentication with a short-lived cache, role checks, and resolving bus
 * references within the caller's reach. */
#ifndef EB_AUTH_H
#define EB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "store.h"

/* Roles: the values of cebus.v1.Role. */
enum eb_role {
    EB_ROLE_PLATFORM_ADMIN = 1,
    EB_ROLE_TENANT_ADMIN = 2,
    EB_ROLE_PUBLISHER = 3,
    EB_ROLE_SUBSCRIBER = 4,
};

/* The platform operator's tenant, created by the first migration. */
#define EB_PLATFORM_TENANT "platform"

/* Keys look like "cb_" + 8 identifier characters + "_" + 43 characters
 * of base64url secret (256 bits). The first 11 characters are the
 * non-secret prefix shown in lists and logs. */
#define EB_KEY_LEN 55
#define EB_KEY_PREFIX_LEN 11

struct eb_principal {
    int64_t tenant_id;
    char tenant[EB_NAME_MAX + 1];
    enum eb_role role;
    char key_prefix[EB_KEY_PREFIX_LEN + 1];
    int64_t key_id; /* api_keys.id: streams re-check it while open */
};

typedef struct eb_auth eb_auth;

/* Returns a new authenticator whose caches live ttl_us. */
eb_auth *eb_auth_new(int64_t ttl_us);
void eb_auth_free(eb_auth *a);

/* Forgets every cached key, bus, grant and source list, so that a change
 * made through this server (revocation, disabling, deletion) applies to
 * its next call at once; other servers see it when their caches expire.
 * THREAD SAFETY: any thread. */
void eb_auth_invalidate(eb_auth *a);

/* Generates a new key: key (EB_KEY_LEN + 1 bytes), prefix
 * (EB_KEY_PREFIX_LEN + 1 bytes) and the SHA-256 hash to store. */
void eb_auth_generate(char *key, char *prefix, uint8_t hash[32]);

/* SHA-256 of key. */
void eb_auth_hash(const char *key, uint8_t hash[32]);

/* Authenticates the value of the "authorization" metadata ("Bearer KEY").
 * Returns EB_OK and fills *p; EB_EUNAUTH with a message in err when the key
 * is missing, malformed, unknown, revoked, expired or its tenant disabled
 * (one message for all of those that concern a key's state, so that probing
 * learns nothing); EB_EUNAVAIL when the database cannot be asked.
 * THREAD SAFETY: any thread; db is the caller's connection. */
eb_status eb_auth_authenticate(eb_auth *a, eb_db *db, const char *authorization,
                               struct eb_principal *p, char *err, size_t errlen);

/* Returns whether name is a valid tenant, bus, rule or subscription name:
 * 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit. */
bool eb_name_valid(const char *name);

/* Resolves a bus reference ("name" or "tenant/name") for p. Another
 * tenant's bus, and a bus that does not exist, are both EB_ENOTFOUND with
 * the same message, so existence is not leaked. Messages go to err and name
 * the field ("bus"). Uses the cache. */
eb_status eb_auth_resolve_bus(eb_auth *a, eb_db *db, const struct eb_principal *p,
                              const char *ref, struct eb_bus_rec *bus, char *err,
                              size_t errlen);

/* Resolves a bus reference like eb_auth_resolve_bus(), and also reaches
 * another tenant's bus when p's tenant holds one of the permissions in
 * perms (EB_PERMS() bits of enum eb_permission) on it; perms 0 is
 * eb_auth_resolve_bus(). A bus without such a grant and a bus that does not
 * exist are both EB_ENOTFOUND with the same message. When via_grant is not
 * NULL, sets it to whether access comes from a grant (not from owning the
 * bus or being platform admin). Grants are cached like buses (the auth TTL):
 * a revoked grant stops working within it. */
eb_status eb_auth_resolve_bus_granted(eb_auth *a, eb_db *db, const struct eb_principal *p,
                                      const char *ref, unsigned perms, struct eb_bus_rec *bus,
                                      bool *via_grant, char *err, size_t errlen);

#define EB_PERMS(perm) (1u << (perm))

/* At most this many source prefixes per tenant, and in all (README.md,
 * limits). */
#define EB_SOURCES_MAX 100
#define EB_SOURCES_TOTAL_MAX 100000

/* A snapshot of one tenant's registered source prefixes. */
typedef struct eb_sources eb_sources;

/* Sets *out to tenant_id's source prefixes, cached for the auth TTL.
 * Release with eb_auth_sources_release(). Returns EB_EUNAVAIL or
 * EB_EINTERNAL when the database cannot be asked.
 * THREAD SAFETY: any thread; db is the caller's connection. */
eb_status eb_auth_sources_get(eb_auth *a, eb_db *db, int64_t tenant_id, eb_sources **out);

/* Releases a snapshot from eb_auth_sources_get(). NULL is allowed. */
void eb_auth_sources_release(eb_auth *a, eb_sources *s);

/* Returns whether source starts with one of the prefixes of s. A tenant
 * without prefixes may publish any source that no other tenant owns (no
 * other tenant's prefix starts it), unless require is set
 * (docs/decisions/0008-event-sources.md). */
bool eb_sources_allow(const eb_sources *s, bool require, const char *source);

/* Returns how many prefixes the tenant of s has registered. */
size_t eb_sources_count(const eb_sources *s);

/* Returns EB_OK when p's role is one of the roles in mask (bit 1 << role),
 * else EB_EPERM with a message in err. */
eb_status eb_auth_require(const struct eb_principal *p, unsigned mask, const char *what,
                          char *err, size_t errlen);

#define EB_ROLES(r) (1u << (r))
#define EB_ANY_ROLE                                                                    \
    (EB_ROLES(EB_ROLE_PLATFORM_ADMIN) | EB_ROLES(EB_ROLE_TENANT_ADMIN) |              \
     EB_ROLES(EB_ROLE_PUBLISHER) | EB_ROLES(EB_ROLE_SUBSCRIBER))
#define EB_ADMINS (EB_ROLES(EB_ROLE_PLATFORM_ADMIN) | EB_ROLES(EB_ROLE_TENANT_ADMIN))

#endif
