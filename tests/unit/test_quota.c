/* Unit tests for the pure parts of server/quota.c: token bucket arithmetic
 * with an injected clock (start full, refill, cap, waits, debt from a batch
 * larger than the burst, a lowered capacity), and the quota limit helpers
 * (maxima, defaults).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "quota.h"

#define SEC 1000000LL

/* 100 events/s, 1 s of burst: a new bucket holds 100 tokens at once. */
static void test_bucket_starts_full(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 100, 100, 5 * SEC);
    assert_true(b.started);
    assert_true(b.tokens == 100.0);
    assert_int_equal(eb_bucket_wait_ms(&b, 100, 100, 100), 0);
    eb_bucket_take(&b, 100);
    assert_true(b.tokens == 0.0);
}

static void test_bucket_waits_for_refill(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 100, 100, 0);
    eb_bucket_take(&b, 100);
    /* 1 token takes 10 ms at 100/s; 25 tokens 250 ms. */
    assert_int_equal(eb_bucket_wait_ms(&b, 100, 100, 1), 10);
    assert_int_equal(eb_bucket_wait_ms(&b, 100, 100, 25), 250);
    /* 100 ms later, 10 tokens are back. */
    eb_bucket_refill(&b, 100, 100, SEC / 10);
    assert_true(b.tokens > 9.999 && b.tokens < 10.001);
    assert_int_equal(eb_bucket_wait_ms(&b, 100, 100, 10), 0);
    assert_int_equal(eb_bucket_wait_ms(&b, 100, 100, 11), 10);
}

static void test_bucket_caps_at_capacity(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 100, 200, 0);
    eb_bucket_take(&b, 50);
    /* An hour idle refills to the capacity, not beyond. */
    eb_bucket_refill(&b, 100, 200, 3600 * SEC);
    assert_true(b.tokens == 200.0);
}

static void test_bucket_wait_rounds_up_to_1ms(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 1e6, 1e6, 0);
    eb_bucket_take(&b, 1e6);
    /* 1 token at 1,000,000/s is 1 us away: reported as 1 ms, never 0. */
    assert_int_equal(eb_bucket_wait_ms(&b, 1e6, 1e6, 1), 1);
}

/* A batch above the capacity passes from a full bucket and leaves a debt
 * that the next caller waits out: the long-run rate holds. */
static void test_bucket_batch_above_capacity(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 10, 10, 0);
    assert_int_equal(eb_bucket_wait_ms(&b, 10, 10, 50), 0);
    eb_bucket_take(&b, 50);
    assert_true(b.tokens == -40.0);
    /* 40 tokens of debt plus 1: 4.1 s at 10/s. */
    assert_int_equal(eb_bucket_wait_ms(&b, 10, 10, 1), 4100);
    /* Not full yet after 4 s, so a batch of 50 still waits for all 10. */
    eb_bucket_refill(&b, 10, 10, 4 * SEC);
    assert_true(b.tokens == 0.0);
    assert_int_equal(eb_bucket_wait_ms(&b, 10, 10, 50), 1000);
    eb_bucket_refill(&b, 10, 10, 5 * SEC);
    assert_int_equal(eb_bucket_wait_ms(&b, 10, 10, 50), 0);
}

/* Another server joining halves this one's share: the capacity drops and
 * the tokens with it, at once. */
static void test_bucket_capacity_lowered(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 100, 100, 0);
    eb_bucket_refill(&b, 50, 50, SEC / 1000);
    assert_true(b.tokens == 50.0);
    assert_int_equal(eb_bucket_wait_ms(&b, 50, 50, 51), 0); /* full: may go into debt */
    eb_bucket_take(&b, 30);
    assert_int_equal(eb_bucket_wait_ms(&b, 50, 50, 21), 20);
}

/* The clock going backwards (it is monotonic, but callers race) neither
 * adds nor removes tokens. */
static void test_bucket_clock_not_backwards(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 100, 100, 10 * SEC);
    eb_bucket_take(&b, 60);
    eb_bucket_refill(&b, 100, 100, 9 * SEC);
    assert_true(b.tokens == 40.0);
    assert_true(b.last_us == 10 * SEC);
}

static void test_bucket_zero_rate(void **state)
{
    struct eb_bucket b = {0};
    (void)state;

    eb_bucket_refill(&b, 0, 0, 0);
    assert_int_equal(eb_bucket_wait_ms(&b, 0, 0, 0), 0);
    eb_bucket_take(&b, 1);
    assert_true(eb_bucket_wait_ms(&b, 0, 0, 1) > 1000000000LL);
}

static void test_limits_invalid(void **state)
{
    struct eb_quota_limits q;
    int64_t max = 0;
    (void)state;

    memset(&q, 0, sizeof q);
    assert_null(eb_quota_limits_invalid(&q, &max));
    q.events_per_second = EB_QUOTA_MAX_EVENTS_PER_SECOND;
    q.bytes_per_second = EB_QUOTA_MAX_BYTES_PER_SECOND;
    q.burst_seconds = EB_QUOTA_MAX_BURST_SECONDS;
    q.rules_per_bus = EB_QUOTA_MAX_RULES_PER_BUS;
    q.subscriptions = EB_QUOTA_MAX_SUBSCRIPTIONS;
    q.concurrent_streams = EB_QUOTA_MAX_CONCURRENT_STREAMS;
    assert_null(eb_quota_limits_invalid(&q, &max));
    q.burst_seconds++;
    assert_string_equal(eb_quota_limits_invalid(&q, &max), "burst_seconds");
    assert_int_equal(max, EB_QUOTA_MAX_BURST_SECONDS);
    q.burst_seconds = 1;
    q.subscriptions = EB_QUOTA_MAX_SUBSCRIPTIONS + 1;
    assert_string_equal(eb_quota_limits_invalid(&q, &max), "subscriptions");
    q.subscriptions = 1;
    q.events_per_second = -1;
    assert_string_equal(eb_quota_limits_invalid(&q, &max), "events_per_second");
}

static void test_limits_fill(void **state)
{
    const struct eb_quota_limits d = {100, 200, 3, 4, 5, 6};
    struct eb_quota_limits q = {0, 7, 0, 8, 0, 9};
    (void)state;

    eb_quota_limits_fill(&q, &d);
    assert_int_equal(q.events_per_second, 100);
    assert_int_equal(q.bytes_per_second, 7);
    assert_int_equal(q.burst_seconds, 3);
    assert_int_equal(q.rules_per_bus, 8);
    assert_int_equal(q.subscriptions, 5);
    assert_int_equal(q.concurrent_streams, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_starts_full),
        cmocka_unit_test(test_bucket_waits_for_refill),
        cmocka_unit_test(test_bucket_caps_at_capacity),
        cmocka_unit_test(test_bucket_wait_rounds_up_to_1ms),
        cmocka_unit_test(test_bucket_batch_above_capacity),
        cmocka_unit_test(test_bucket_capacity_lowered),
        cmocka_unit_test(test_bucket_clock_not_backwards),
        cmocka_unit_test(test_bucket_zero_rate),
        cmocka_unit_test(test_limits_invalid),
        cmocka_unit_test(test_limits_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
