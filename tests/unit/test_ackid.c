/* Unit tests for the ack id codec (server/ackid.c): round trips with
 * extreme values, and refusal of every length but the right one, of
 * characters outside base64url, of '=' padding and of unknown versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ackid.h"

static void round_trip(int64_t epoch, int64_t seq, int32_t attempt)
{
    struct eb_ackid a = {.epoch = epoch, .seq = seq, .attempt = attempt}, b;
    char id[EB_ACKID_LEN + 1];

    memset(id, '#', sizeof id);
    eb_ackid_encode(&a, id);
    assert_int_equal(strlen(id), EB_ACKID_LEN);
    for (size_t i = 0; i < EB_ACKID_LEN; i++)
        assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                           id[i]) != NULL);
    assert_true(eb_ackid_decode(id, EB_ACKID_LEN, &b));
    assert_int_equal(b.epoch, epoch);
    assert_int_equal(b.seq, seq);
    assert_int_equal(b.attempt, attempt);
}

static void test_round_trip(void **state)
{
    (void)state;
    round_trip(0, 0, 0);
    round_trip(1, 1, 1);
    round_trip(INT64_MAX, INT64_MAX, INT32_MAX);
    round_trip(INT64_MIN, INT64_MIN, INT32_MIN);
    round_trip(-1, -1, -1);
    round_trip(0x0123456789abcdefLL, 42, 100);
    round_trip(7305966543120049152LL, 9007199254740993LL, 5);
}

static void test_known_encoding(void **state)
{
    struct eb_ackid a = {.epoch = 0, .seq = 0, .attempt = 0};
    char id[EB_ACKID_LEN + 1];

    (void)state;
    /* Version 1 then 20 zero bytes: 0x01 0x00 0x00 is "AQAA". */
    eb_ackid_encode(&a, id);
    assert_string_equal(id, "AQAAAAAAAAAAAAAAAAAAAAAAAAAA");
}

static void test_bad_lengths(void **state)
{
    struct eb_ackid a = {.epoch = 5, .seq = 6, .attempt = 7}, b;
    char id[EB_ACKID_LEN + 1], longer[EB_ACKID_MAX + 8];

    (void)state;
    eb_ackid_encode(&a, id);
    for (size_t len = 0; len < EB_ACKID_LEN; len++)
        assert_false(eb_ackid_decode(id, len, &b));
    /* Longer: the id followed by valid characters, up to 64 bytes and past. */
    memset(longer, 'A', sizeof longer);
    memcpy(longer, id, EB_ACKID_LEN);
    for (size_t len = EB_ACKID_LEN + 1; len <= sizeof longer; len++)
        assert_false(eb_ackid_decode(longer, len, &b));
    assert_false(eb_ackid_decode(NULL, EB_ACKID_LEN, &b));
    /* The length given counts, not a NUL: the id itself still decodes. */
    assert_true(eb_ackid_decode(longer, EB_ACKID_LEN, &b));
    assert_int_equal(b.seq, 6);
}

static void test_bad_characters(void **state)
{
    struct eb_ackid a = {.epoch = 5, .seq = 6, .attempt = 7}, b;
    const char bad[] = {'+', '/', '=', '.', ' ', '\0', '\n', '~', (char)0xc3, (char)0x80};
    char id[EB_ACKID_LEN + 1];

    (void)state;
    eb_ackid_encode(&a, id);
    for (size_t pos = 0; pos < EB_ACKID_LEN; pos++) {
        for (size_t k = 0; k < sizeof bad; k++) {
            char copy[EB_ACKID_LEN + 1];
            memcpy(copy, id, sizeof copy);
            copy[pos] = bad[k];
            assert_false(eb_ackid_decode(copy, EB_ACKID_LEN, &b));
        }
    }
}

static void test_padding(void **state)
{
    struct eb_ackid b;

    (void)state;
    /* Standard base64 of the 21 bytes needs no padding either; '=' at the
     * end, in place of a character or added, is refused. */
    assert_false(eb_ackid_decode("AQAAAAAAAAAAAAAAAAAAAAAAAA==", EB_ACKID_LEN, &b));
    assert_false(eb_ackid_decode("AQAAAAAAAAAAAAAAAAAAAAAAAAAA=", EB_ACKID_LEN + 1, &b));
    assert_false(eb_ackid_decode("AQAAAAAAAAAAAAAAAAAAAAAAAAAA==", EB_ACKID_LEN + 2, &b));
}

static void test_unknown_version(void **state)
{
    struct eb_ackid b;

    (void)state;
    /* Version 0, 2 and 255 in the first byte. */
    assert_false(eb_ackid_decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAA", EB_ACKID_LEN, &b));
    assert_false(eb_ackid_decode("AgAAAAAAAAAAAAAAAAAAAAAAAAAA", EB_ACKID_LEN, &b));
    assert_false(eb_ackid_decode("_wAAAAAAAAAAAAAAAAAAAAAAAAAA", EB_ACKID_LEN, &b));
    assert_true(eb_ackid_decode("AQAAAAAAAAAAAAAAAAAAAAAAAAAA", EB_ACKID_LEN, &b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_known_encoding),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_bad_characters),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_unknown_version),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
