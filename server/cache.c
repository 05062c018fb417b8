#include "cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NBUCKETS 4096

struct entry {
    struct entry *next;
    int64_t expires_us;
    size_t keylen;
    unsigned char *key;
    unsigned char value[]; /* value_size bytes */
};

struct eb_cache {
    pthread_mutex_t mu;
    size_t value_size;
    int64_t ttl_us;
    size_t max_entries, count;
    struct entry *buckets[NBUCKETS];
};

static uint64_t hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

eb_cache *eb_cache_new(size_t value_size, int64_t ttl_us, size_t max_entries)
{
    eb_cache *c = eb_calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->value_size = value_size;
    c->ttl_us = ttl_us;
    c->max_entries = max_entries;
    return c;
}

static void clear_locked(eb_cache *c)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        struct entry *e = c->buckets[i];
        while (e) {
            struct entry *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

bool eb_cache_get(eb_cache *c, const void *key, size_t keylen, void *value)
{
    size_t b = hash(key, keylen) % NBUCKETS;
    int64_t now = eb_now_mono_us();
    bool found = false;

    pthread_mutex_lock(&c->mu);
    for (struct entry *e = c->buckets[b]; e; e = e->next) {
        if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0) {
            if (e->expires_us > now) {
                memcpy(value, e->value, c->value_size);
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

void eb_cache_put(eb_cache *c, const void *key, size_t keylen, const void *value)
{
    size_t b = hash(key, keylen) % NBUCKETS;
    struct entry *e;

    pthread_mutex_lock(&c->mu);
    for (e = c->buckets[b]; e; e = e->next)
        if (e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            break;
    if (!e) {
        if (c->count >= c->max_entries)
            clear_locked(c);
        e = eb_malloc(sizeof *e + c->value_size);
        e->key = eb_malloc(keylen ? keylen : 1);
        memcpy(e->key, key, keylen);
        e->keylen = keylen;
        e->next = c->buckets[b];
        c->buckets[b] = e;
        c->count++;
    }
    memcpy(e->value, value, c->value_size);
    e->expires_us = eb_now_mono_us() + c->ttl_us;
    pthread_mutex_unlock(&c->mu);
}

void eb_cache_clear(eb_cache *c)
{
    pthread_mutex_lock(&c->mu);
    clear_locked(c);
    pthread_mutex_unlock(&c->mu);
}

void eb_cache_free(eb_cache *c)
{
    if (!c)
        return;
    clear_locked(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
