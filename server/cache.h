/* A small thread-safe cache from byte-string keys to fixed-size values
 * with a time to live. It spares the database a lookup per call for API
 * keys and bus names while changes (revocation, deletion) still take
 * effect within the TTL. */
#ifndef EB_CACHE_H
#define EB_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct eb_cache eb_cache;

/* Returns a new cache of values of value_size bytes, living ttl_us, with
 * at most max_entries (past that, the cache is emptied and refilled). */
eb_cache *eb_cache_new(size_t value_size, int64_t ttl_us, size_t max_entries);

/* Copies the value for key into value and returns true when present and
 * fresh. */
bool eb_cache_get(eb_cache *c, const void *key, size_t keylen, void *value);

/* Stores a copy of value under key. */
void eb_cache_put(eb_cache *c, const void *key, size_t keylen, const void *value);

/* Empties c. */
void eb_cache_clear(eb_cache *c);

/* Frees c. NULL is allowed. */
void eb_cache_free(eb_cache *c);

#endif
