/* Unit tests for server/cache.c: get and put, binary keys, TTL expiry,
 * overwrite, the reset past max_entries, and threads hammering one cache
 * (meant to run under ASan and UBSan; a torn value would fail the check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "cache.h"

struct val {
    uint64_t a;
    char text[24];
};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static struct val val_of(uint64_t a, const char *text)
{
    struct val v;

    memset(&v, 0, sizeof v);
    v.a = a;
    snprintf(v.text, sizeof v.text, "%s", text);
    return v;
}

static void test_get_put(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(struct val), 60LL * 1000000, 100);
    struct val v = val_of(1, "one"), got;

    (void)state;
    memset(&got, 0x5a, sizeof got);
    assert_false(eb_cache_get(c, "k1", 2, &got));
    /* A miss leaves the output untouched. */
    for (size_t i = 0; i < sizeof got; i++)
        assert_int_equal(((unsigned char *)&got)[i], 0x5a);

    eb_cache_put(c, "k1", 2, &v);
    assert_true(eb_cache_get(c, "k1", 2, &got));
    assert_memory_equal(&got, &v, sizeof v);

    /* The cache keeps a copy: changing the caller's value changes nothing. */
    v.a = 99;
    assert_true(eb_cache_get(c, "k1", 2, &got));
    assert_int_equal(got.a, 1);

    /* Keys are compared by length and bytes, not as C strings. */
    assert_false(eb_cache_get(c, "k1x", 3, &got));
    assert_false(eb_cache_get(c, "k", 1, &got));
    assert_false(eb_cache_get(c, "K1", 2, &got));
    eb_cache_free(c);
}

static void test_binary_and_empty_keys(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(uint32_t), 60LL * 1000000, 100);
    const unsigned char k1[4] = {0, 1, 0, 2}, k2[4] = {0, 1, 0, 3};
    uint32_t one = 1, two = 2, three = 3, got = 0;

    (void)state;
    eb_cache_put(c, k1, sizeof k1, &one);
    eb_cache_put(c, k2, sizeof k2, &two);
    eb_cache_put(c, "", 0, &three);
    assert_true(eb_cache_get(c, k1, sizeof k1, &got));
    assert_int_equal(got, 1);
    assert_true(eb_cache_get(c, k2, sizeof k2, &got));
    assert_int_equal(got, 2);
    assert_true(eb_cache_get(c, "", 0, &got));
    assert_int_equal(got, 3);
    /* Prefix of a binary key with NULs is a different key. */
    assert_false(eb_cache_get(c, k1, 1, &got));
    eb_cache_free(c);
}

static void test_many_keys(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(uint64_t), 60LL * 1000000, 100000);

    (void)state;
    for (uint64_t i = 0; i < 20000; i++) { /* more keys than buckets */
        char key[32];
        snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
        eb_cache_put(c, key, strlen(key), &i);
    }
    for (uint64_t i = 0; i < 20000; i++) {
        char key[32];
        uint64_t got = UINT64_MAX;
        snprintf(key, sizeof key, "key-%llu", (unsigned long long)i);
        assert_true(eb_cache_get(c, key, strlen(key), &got));
        assert_int_equal(got, i);
    }
    eb_cache_free(c);
}

static void test_ttl_expiry(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(struct val), 50 * 1000, 100); /* 50 ms */
    struct val v = val_of(7, "seven"), got;

    (void)state;
    eb_cache_put(c, "k", 1, &v);
    assert_true(eb_cache_get(c, "k", 1, &got));
    sleep_ms(80);
    assert_false(eb_cache_get(c, "k", 1, &got));

    /* Put again after expiry: fresh again. */
    eb_cache_put(c, "k", 1, &v);
    assert_true(eb_cache_get(c, "k", 1, &got));
    assert_int_equal(got.a, 7);
    eb_cache_free(c);

    /* A zero TTL caches nothing usable. */
    c = eb_cache_new(sizeof(struct val), 0, 100);
    eb_cache_put(c, "k", 1, &v);
    assert_false(eb_cache_get(c, "k", 1, &got));
    eb_cache_free(c);
}

static void test_overwrite(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(struct val), 200 * 1000, 2); /* 200 ms */
    struct val v1 = val_of(1, "first"), v2 = val_of(2, "second"), got;

    (void)state;
    eb_cache_put(c, "k", 1, &v1);
    eb_cache_put(c, "k", 1, &v2);
    assert_true(eb_cache_get(c, "k", 1, &got));
    assert_memory_equal(&got, &v2, sizeof v2);

    /* Overwriting the same key many times does not count as new entries:
     * with max_entries 2 another key survives. */
    eb_cache_put(c, "other", 5, &v1);
    for (int i = 0; i < 10; i++)
        eb_cache_put(c, "k", 1, &v2);
    assert_true(eb_cache_get(c, "other", 5, &got));
    assert_int_equal(got.a, 1);

    /* An overwrite renews the TTL. */
    sleep_ms(120);
    eb_cache_put(c, "k", 1, &v1);
    sleep_ms(120);
    assert_true(eb_cache_get(c, "k", 1, &got));      /* 120 ms since the overwrite */
    assert_int_equal(got.a, 1);
    assert_false(eb_cache_get(c, "other", 5, &got)); /* 240 ms since its put */
    eb_cache_free(c);
}

static void test_max_entries_reset(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(int), 60LL * 1000000, 3);
    int v, got;

    (void)state;
    for (v = 0; v < 3; v++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", v);
        eb_cache_put(c, key, strlen(key), &v);
    }
    for (v = 0; v < 3; v++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", v);
        assert_true(eb_cache_get(c, key, strlen(key), &got));
        assert_int_equal(got, v);
    }
    /* Overwriting a present key at the limit keeps everything. */
    v = 10;
    eb_cache_put(c, "k1", 2, &v);
    assert_true(eb_cache_get(c, "k0", 2, &got));
    assert_true(eb_cache_get(c, "k2", 2, &got));

    /* A fourth key empties the cache and is then the only entry. */
    v = 3;
    eb_cache_put(c, "k3", 2, &v);
    assert_true(eb_cache_get(c, "k3", 2, &got));
    assert_int_equal(got, 3);
    assert_false(eb_cache_get(c, "k0", 2, &got));
    assert_false(eb_cache_get(c, "k1", 2, &got));
    assert_false(eb_cache_get(c, "k2", 2, &got));

    /* And it fills up again from there. */
    v = 4;
    eb_cache_put(c, "k4", 2, &v);
    v = 5;
    eb_cache_put(c, "k5", 2, &v);
    assert_true(eb_cache_get(c, "k3", 2, &got));
    assert_true(eb_cache_get(c, "k4", 2, &got));
    assert_true(eb_cache_get(c, "k5", 2, &got));
    eb_cache_free(c);
}

static void test_free_null(void **state)
{
    (void)state;
    eb_cache_free(NULL);
}

/* --- Threads ------------------------------------------------------------ */

#define NTHREADS 6
#define ROUNDS 20000
#define KEYSPACE 300

/* Every value is self-checking: b is derived from a, and text from both. */
struct tval {
    uint64_t a, b;
    char text[40];
};

static struct tval tval_of(uint64_t key, uint64_t version)
{
    struct tval v;

    memset(&v, 0, sizeof v);
    v.a = key << 32 | version;
    v.b = ~v.a * 2654435761u;
    snprintf(v.text, sizeof v.text, "%llu", (unsigned long long)v.a);
    return v;
}

struct worker {
    eb_cache *c;
    unsigned seed;
    long hits, bad;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;

    for (uint64_t i = 0; i < ROUNDS; i++) {
        uint64_t key = (uint64_t)rand_r(&w->seed) % KEYSPACE;
        char kbuf[16];
        struct tval got;
        int klen = snprintf(kbuf, sizeof kbuf, "k%llu", (unsigned long long)key);

        if (rand_r(&w->seed) % 3 == 0) {
            struct tval v = tval_of(key, i);
            eb_cache_put(w->c, kbuf, (size_t)klen, &v);
        } else if (eb_cache_get(w->c, kbuf, (size_t)klen, &got)) {
            struct tval want = tval_of(got.a >> 32, got.a & 0xffffffffu);
            w->hits++;
            if (got.a >> 32 != key || memcmp(&got, &want, sizeof got) != 0)
                w->bad++;
        }
    }
    return NULL;
}

static void run_threads(eb_cache *c)
{
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    long hits = 0, bad = 0;

    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.c = c, .seed = 1234u + (unsigned)i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        hits += w[i].hits;
        bad += w[i].bad;
    }
    assert_int_equal(bad, 0);
    assert_true(hits > 0);
}

static void test_threads(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(struct tval), 60LL * 1000000, 100000);

    (void)state;
    run_threads(c);
    eb_cache_free(c);
}

/* The same with a limit far below the key space, so that resets race with
 * gets and puts, and a tiny TTL, so that expiry does too. */
static void test_threads_with_resets(void **state)
{
    eb_cache *c = eb_cache_new(sizeof(struct tval), 2000, 50);

    (void)state;
    run_threads(c);
    eb_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_put),
        cmocka_unit_test(test_binary_and_empty_keys),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_overwrite),
        cmocka_unit_test(test_max_entries_reset),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_threads_with_resets),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
