#include "auth.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "cache.h"
#include "log.h"
#include "util.h"

struct eb_auth {
    eb_cache *keys;  /* SHA-256 -> struct cached_key */
    eb_cache *buses; /* "tenant/name" -> struct eb_bus_rec */
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
    return a;
}

void eb_auth_free(eb_auth *a)
{
    if (!a)
        return;
    eb_cache_free(a->keys);
    eb_cache_free(a->buses);
    free(a);
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

eb_status eb_auth_resolve_bus(eb_auth *a, eb_db *db, const struct eb_principal *p,
                              const char *ref, struct eb_bus_rec *bus, char *err,
                              size_t errlen)
{
    char tenant[EB_NAME_MAX + 1], name[EB_NAME_MAX + 1], key[2 * EB_NAME_MAX + 2];
    const char *slash = strchr(ref, '/');
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
    /* Grants come with their own issue; until then a tenant reaches only
     * its own buses, and the platform admin every bus. The message is the
     * same whether the bus exists or not. */
    if (strcmp(tenant, p->tenant) != 0 && p->role != EB_ROLE_PLATFORM_ADMIN) {
        snprintf(err, errlen, "bus: no bus \"%s\"", ref);
        return EB_ENOTFOUND;
    }
    snprintf(key, sizeof key, "%s/%s", tenant, name);
    if (eb_cache_get(a->buses, key, strlen(key), bus))
        return EB_OK;
    st = eb_store_bus_get(db, tenant, name, bus);
    if (st == EB_ENOTFOUND) {
        snprintf(err, errlen, "bus: no bus \"%s\"", ref);
        return st;
    }
    if (st) {
        snprintf(err, errlen, "bus: cannot be looked up now; retry");
        return st;
    }
    eb_cache_put(a->buses, key, strlen(key), bus);
    return EB_OK;
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
