#include "auth.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "cache.h"
#include "log.h"
#include "util.h"

/* Buckets of the source-prefix cache; past SOURCES_MAX_TENANTS cached
 * tenants it is emptied and refilled, like eb_cache. */
#define SOURCE_BUCKETS 256
#define SOURCES_MAX_TENANTS 10000

/* Every tenant's prefixes in byte order, as read at fetched_us: who owns
 * which sources. Shared like struct eb_sources. */
struct owners {
    int refs; /* under eb_auth.smu */
    int64_t fetched_us;
    size_t n;
    struct eb_source_owner *v;
};

/* One tenant's registered source prefixes as read at fetched_us. Shared by
 * the cache and its callers; freed when the last reference goes. A tenant
 * without prefixes also holds the owners of all prefixes, since it may
 * publish any source but theirs. */
struct eb_sources {
    int refs;  /* under eb_auth.smu */
    int64_t tenant_id;
    int64_t fetched_us;
    size_t n;
    struct eb_source_rec *prefixes;
    struct owners *owners; /* when n == 0 */
    struct eb_sources *next; /* in its bucket */
};

struct eb_auth {
    eb_cache *keys;   /* SHA-256 -> struct cached_key */
    eb_cache *buses;  /* "tenant/name" -> struct eb_bus_rec */
    eb_cache *grants; /* struct grant_key -> unsigned permission mask */
    int64_t ttl_us;
    pthread_mutex_t smu;
    struct eb_sources *sources[SOURCE_BUCKETS];
    size_t nsources;
    struct owners *owners; /* the cached owner list, or NULL */
};

struct grant_key {
    int64_t bus_id;
    int64_t grantee_id;
};

struct cached_key {
    bool valid;
    struct eb_key_rec rec;
};

eb_auth *eb_auth_new(int64_t ttl_us)
{
    eb_auth *a = eb_calloc(1, sizeof *a);
    a->keys = eb_cache_new(sizeof(struct cached_key), ttl_us, 100000);
    a->buses = eb_cache_new(sizeof(struct eb_bus_rec), ttl_us, 100000);
    a->grants = eb_cache_new(sizeof(unsigned), ttl_us, 100000);
    a->ttl_us = ttl_us;
    pthread_mutex_init(&a->smu, NULL);
    return a;
}

static void owners_unref_locked(struct owners *o)
{
    if (o && --o->refs == 0) {
        eb_source_owners_free(o->v, o->n);
        free(o);
    }
}

static void sources_unref_locked(struct eb_sources *s)
{
    if (s && --s->refs == 0) {
        owners_unref_locked(s->owners);
        free(s->prefixes);
        free(s);
    }
}

/* Drops the cache's reference to every cached list. */
static void sources_clear_locked(eb_auth *a)
{
    for (size_t i = 0; i < SOURCE_BUCKETS; i++) {
        struct eb_sources *s = a->sources[i], *next;
        for (; s; s = next) {
            next = s->next;
            s->next = NULL;
            sources_unref_locked(s);
        }
        a->sources[i] = NULL;
    }
    a->nsources = 0;
    owners_unref_locked(a->owners);
    a->owners = NULL;
}

void eb_auth_free(eb_auth *a)
{
    if (!a)
        return;
    eb_cache_free(a->keys);
    eb_cache_free(a->buses);
    eb_cache_free(a->grants);
    sources_clear_locked(a);
    pthread_mutex_destroy(&a->smu);
    free(a);
}

void eb_auth_invalidate(eb_auth *a)
{
    eb_cache_clear(a->keys);
    eb_cache_clear(a->buses);
    eb_cache_clear(a->grants);
    pthread_mutex_lock(&a->smu);
    sources_clear_locked(a);
    pthread_mutex_unlock(&a->smu);
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void eb_auth_hash(const char *key, uint8_t hash[32])
{
    unsigned int len = 32;
    EVP_Digest(key, strlen(key), hash, &len, EVP_sha256(), NULL);
}

void eb_auth_generate(char *key, char *prefix, uint8_t hash[32])
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char id[8], secret[33];
    size_t n = 0;

    eb_random_bytes(id, sizeof id);
    eb_random_bytes(secret, 32);
    secret[32] = 0;
    memcpy(key, "cb_", 3);
    n = 3;
    for (int i = 0; i < 8; i++)
        key[n++] = alnum[id[i] % 36];
    key[n++] = '_';
    /* 256 bits as 43 base64url characters (the last carries 4 bits). */
    for (int i = 0; i < 43; i++) {
        int bit = i * 6, byte = bit / 8, off = bit % 8;
        unsigned v = ((unsigned)secret[byte] << 8 | secret[byte + 1]) >> (10 - off);
        key[n++] = b64url[v & 63];
    }
    key[n] = '\0';
    memcpy(prefix, key, EB_KEY_PREFIX_LEN);
    prefix[EB_KEY_PREFIX_LEN] = '\0';
    eb_auth_hash(key, hash);
}

eb_status eb_auth_authenticate(eb_auth *a, eb_db *db, const char *authorization,
                               struct eb_principal *p, char *err, size_t errlen)
{
    struct cached_key ck;
    const char *key;
    uint8_t hash[32];
    eb_status st;

    if (!authorization) {
        snprintf(err, errlen, "authorization: missing; send \"authorization: Bearer <api key>\"");
        return EB_EUNAUTH;
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0) {
        snprintf(err, errlen, "authorization: expected \"Bearer <api key>\"");
        return EB_EUNAUTH;
    }
    key = authorization + 7;
    while (*key == ' ')
        key++;
    if (strlen(key) < 16 || strlen(key) > 256) {
        snprintf(err, errlen, "authorization: invalid API key");
        return EB_EUNAUTH;
    }
    eb_auth_hash(key, hash);
    if (!eb_cache_get(a->keys, hash, sizeof hash, &ck)) {
        memset(&ck, 0, sizeof ck);
        st = eb_store_key_lookup(db, hash, &ck.rec);
        if (st == EB_OK)
            ck.valid = true;
        else if (st != EB_ENOTFOUND)
            return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL;
        eb_cache_put(a->keys, hash, sizeof hash, &ck);
    }
    if (!ck.valid || ck.rec.revoked || ck.rec.tenant_disabled ||
        (ck.rec.expires_us && ck.rec.expires_us <= eb_now_wall_us())) {
        snprintf(err, errlen, "authorization: invalid API key");
        return EB_EUNAUTH;
    }
    p->tenant_id = ck.rec.tenant_id;
    eb_strlcpy(p->tenant, ck.rec.tenant, sizeof p->tenant);
    p->role = (enum eb_role)ck.rec.role;
    eb_strlcpy(p->key_prefix, ck.rec.prefix, sizeof p->key_prefix);
    p->key_id = ck.rec.id;
    return EB_OK;
}

bool eb_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > EB_NAME_MAX || !isalnum((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

/* Whether p's tenant holds one of perms on bus (cached). */
static eb_status granted(eb_auth *a, eb_db *db, const struct eb_principal *p,
                         const struct eb_bus_rec *bus, unsigned perms, bool *ok)
{
    struct grant_key gk;
    unsigned mask = 0;
    eb_status st;

    memset(&gk, 0, sizeof gk);
    gk.bus_id = bus->id;
    gk.grantee_id = p->tenant_id;
    if (!eb_cache_get(a->grants, &gk, sizeof gk, &mask)) {
        st = eb_store_grant_mask(db, bus->id, p->tenant_id, &mask);
        if (st)
            return st;
        eb_cache_put(a->grants, &gk, sizeof gk, &mask);
    }
    *ok = (mask & perms) != 0;
    return EB_OK;
}

eb_status eb_auth_resolve_bus_granted(eb_auth *a, eb_db *db, const struct eb_principal *p,
                                      const char *ref, unsigned perms, struct eb_bus_rec *bus,
                                      bool *via_grant, char *err, size_t errlen)
{
    char tenant[EB_NAME_MAX + 1], name[EB_NAME_MAX + 1], key[2 * EB_NAME_MAX + 2];
    const char *slash = strchr(ref, '/');
    struct eb_bus_rec b;
    bool foreign, ok = false;
    eb_status st;

    if (!ref[0]) {
        snprintf(err, errlen, "bus: required");
        return EB_EINVAL;
    }
    if (slash) {
        size_t tlen = (size_t)(slash - ref);
        if (tlen == 0 || tlen > EB_NAME_MAX || strlen(slash + 1) > EB_NAME_MAX) {
            snprintf(err, errlen, "bus: expected \"name\" or \"tenant/name\"");
            return EB_EINVAL;
        }
        memcpy(tenant, ref, tlen);
        tenant[tlen] = '\0';
        eb_strlcpy(name, slash + 1, sizeof name);
    } else {
        eb_strlcpy(tenant, p->tenant, sizeof tenant);
        if (strlen(ref) > EB_NAME_MAX) {
            snprintf(err, errlen, "bus: name longer than %d characters", EB_NAME_MAX);
            return EB_EINVAL;
        }
        eb_strlcpy(name, ref, sizeof name);
    }
    if (!eb_name_valid(tenant) || !eb_name_valid(name)) {
        snprintf(err, errlen,
                 "bus: names are 1 to 64 of [A-Za-z0-9._-], starting with a letter or digit");
        return EB_EINVAL;
    }
    /* A tenant reaches its own buses, the platform admin every bus, and
     * anyone else another tenant's bus only through a grant. A bus without
     * the grant and a bus that does not exist get the same message, so
     * existence is not leaked. */
    foreign = strcmp(tenant, p->tenant) != 0 && p->role != EB_ROLE_PLATFORM_ADMIN;
    if (foreign && perms == 0) {
        snprintf(err, errlen, "bus: no bus \"%s\"", ref);
        return EB_ENOTFOUND;
    }
    snprintf(key, sizeof key, "%s/%s", tenant, name);
    if (!eb_cache_get(a->buses, key, strlen(key), &b)) {
        st = eb_store_bus_get(db, tenant, name, &b);
        if (st == EB_ENOTFOUND) {
            snprintf(err, errlen, "bus: no bus \"%s\"", ref);
            return st;
        }
        if (st) {
            snprintf(err, errlen, "bus: cannot be looked up now; retry");
            return st;
        }
        eb_cache_put(a->buses, key, strlen(key), &b);
    }
    if (foreign) {
        st = granted(a, db, p, &b, perms, &ok);
        if (st) {
            snprintf(err, errlen, "bus: cannot be looked up now; retry");
            return st == EB_EUNAVAIL ? EB_EUNAVAIL : EB_EINTERNAL;
        }
        if (!ok) {
            snprintf(err, errlen, "bus: no bus \"%s\"", ref);
            return EB_ENOTFOUND;
        }
    }
    *bus = b;
    if (via_grant)
        *via_grant = foreign;
    return EB_OK;
}

eb_status eb_auth_resolve_bus(eb_auth *a, eb_db *db, const struct eb_principal *p,
                              const char *ref, struct eb_bus_rec *bus, char *err,
                              size_t errlen)
{
    return eb_auth_resolve_bus_granted(a, db, p, ref, 0, bus, NULL, err, errlen);
}

/* Sets *out to a new reference to the owner list, fetched when the cached
 * one is older than the TTL. */
static eb_status owners_get(eb_auth *a, eb_db *db, int64_t now, struct owners **out)
{
    struct owners *o;
    int64_t total = 0;
    eb_status st;

    pthread_mutex_lock(&a->smu);
    o = a->owners;
    if (o && now - o->fetched_us < a->ttl_us) {
        o->refs++;
        pthread_mutex_unlock(&a->smu);
        *out = o;
        return EB_OK;
    }
    pthread_mutex_unlock(&a->smu);

    o = eb_calloc(1, sizeof *o);
    o->fetched_us = now;
    st = eb_store_source_owners(db, EB_SOURCES_TOTAL_MAX, &o->v, &o->n, &total);
    if (st) {
        free(o);
        return st;
    }
    if (total > EB_SOURCES_TOTAL_MAX)
        eb_log_warn("msg=\"more source prefixes than the server checks ownership of\" "
                    "registered=%lld checked=%d",
                    (long long)total, EB_SOURCES_TOTAL_MAX);
    o->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&a->smu);
    owners_unref_locked(a->owners);
    a->owners = o;
    pthread_mutex_unlock(&a->smu);
    *out = o;
    return EB_OK;
}

eb_status eb_auth_sources_get(eb_auth *a, eb_db *db, int64_t tenant_id, eb_sources **out)
{
    size_t h = (size_t)((uint64_t)tenant_id % SOURCE_BUCKETS);
    int64_t now = eb_now_mono_us();
    struct eb_sources *s, **pp;
    eb_status st;

    pthread_mutex_lock(&a->smu);
    for (s = a->sources[h]; s; s = s->next)
        if (s->tenant_id == tenant_id && now - s->fetched_us < a->ttl_us) {
            s->refs++;
            pthread_mutex_unlock(&a->smu);
            *out = s;
            return EB_OK;
        }
    pthread_mutex_unlock(&a->smu);

    /* Fetched without the lock: two callers may both fetch; the later one's
     * list replaces the earlier in the cache, and both are correct. */
    s = eb_calloc(1, sizeof *s);
    s->tenant_id = tenant_id;
    s->fetched_us = now;
    st = eb_store_source_list(db, tenant_id, EB_SOURCES_MAX, &s->prefixes, &s->n);
    if (st == EB_OK && s->n == 0)
        st = owners_get(a, db, now, &s->owners);
    if (st) {
        free(s->prefixes);
        free(s);
        return st;
    }
    s->refs = 2; /* the cache's and the caller's */
    pthread_mutex_lock(&a->smu);
    if (a->nsources >= SOURCES_MAX_TENANTS)
        sources_clear_locked(a);
    for (pp = &a->sources[h]; *pp; pp = &(*pp)->next)
        if ((*pp)->tenant_id == tenant_id) {
            struct eb_sources *old = *pp;
            *pp = old->next;
            old->next = NULL;
            sources_unref_locked(old);
            a->nsources--;
            break;
        }
    s->next = a->sources[h];
    a->sources[h] = s;
    a->nsources++;
    pthread_mutex_unlock(&a->smu);
    *out = s;
    return EB_OK;
}

void eb_auth_sources_release(eb_auth *a, eb_sources *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&a->smu);
    sources_unref_locked(s);
    pthread_mutex_unlock(&a->smu);
}

/* Compares the NUL-terminated p with key[0..len) in byte order. */
static int cmp_key(const char *p, const char *key, size_t len)
{
    size_t plen = strlen(p);
    int c = memcmp(p, key, plen < len ? plen : len);

    if (c)
        return c;
    return plen < len ? -1 : plen > len;
}

/* Returns whether a tenant other than tenant_id owns a prefix of source.
 * The greatest prefix p <= key is found by binary search; if p is not a
 * prefix of key, no registered string longer than their common prefix L
 * can be one either (it would lie between p and key), so the search goes on
 * with key cut to L. */
static bool owned_by_another(const struct owners *o, int64_t tenant_id, const char *source)
{
    size_t len = strlen(source);

    while (len > 0 && o->n > 0) {
        size_t lo = 0, hi = o->n, l = 0;
        const char *p;

        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cmp_key(o->v[mid].prefix, source, len) <= 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == 0)
            return false;
        p = o->v[lo - 1].prefix;
        while (p[l] && l < len && p[l] == source[l])
            l++;
        if (p[l] == '\0')
            return o->v[lo - 1].tenant_id != tenant_id;
        len = l;
    }
    return false;
}

size_t eb_sources_count(const eb_sources *s)
{
    return s->n;
}

bool eb_sources_allow(const eb_sources *s, bool require, const char *source)
{
    if (s->n == 0)
        return !require && !(s->owners && owned_by_another(s->owners, s->tenant_id, source));
    for (size_t i = 0; i < s->n; i++)
        if (strncmp(source, s->prefixes[i].prefix, strlen(s->prefixes[i].prefix)) == 0)
            return true;
    return false;
}

eb_status eb_auth_require(const struct eb_principal *p, unsigned mask, const char *what,
                          char *err, size_t errlen)
{
    static const char *names[] = {"", "platform admin", "tenant admin", "publisher",
                                  "subscriber"};
    if (mask & EB_ROLES(p->role))
        return EB_OK;
    snprintf(err, errlen, "the %s role may not %s",
             p->role >= 1 && p->role <= 4 ? names[p->role] : "unknown",
             what);
    return EB_EPERM;
}
