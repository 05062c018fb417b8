/* Unit tests for server/util.c: the UTF-8 validator against a table of
 * well-formed and ill-formed sequences, eb_strlcpy truncation, and
 * eb_random_bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

struct utf8_case {
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
    bool want;
    const char *what;
};

#define U(s, want, what) {s, sizeof(s) - 1, want, what}

static const struct utf8_case utf8_cases[] = {
    U("", true, "empty"),
    U("hello, world", true, "ASCII"),
    U("\x7f", true, "DEL"),
    U("\xc2\x80", true, "U+0080, smallest 2-byte"),
    U("\xc3\xa9t\xc3\xa9", true, "été"),
    U("\xdf\xbf", true, "U+07FF, largest 2-byte"),
    U("\xe0\xa0\x80", true, "U+0800, smallest 3-byte"),
    U("\xe2\x82\xac", true, "euro sign"),
    U("\xed\x9f\xbf", true, "U+D7FF, below the surrogates"),
    U("\xee\x80\x80", true, "U+E000, above the surrogates"),
    U("\xef\xbf\xbd", true, "U+FFFD"),
    U("\xef\xbf\xbf", true, "U+FFFF"),
    U("\xf0\x90\x80\x80", true, "U+10000, smallest 4-byte"),
    U("\xf0\x9f\x98\x80", true, "emoji"),
    U("\xf4\x8f\xbf\xbf", true, "U+10FFFF, largest"),
    U("a\xe2\x82\xac" "b\xf0\x9f\x98\x80" "c", true, "mixed"),

    U("\x00", false, "NUL alone"),
    U("ab\x00" "cd", false, "NUL inside"),
    U("abc\x00", false, "NUL at the end"),
    U("\xc0\x80", false, "overlong NUL"),
    U("\xc0\xaf", false, "overlong '/' (2 bytes)"),
    U("\xc1\xbf", false, "overlong U+007F"),
    U("\xe0\x80\xaf", false, "overlong '/' (3 bytes)"),
    U("\xe0\x9f\xbf", false, "overlong U+07FF"),
    U("\xf0\x80\x80\xaf", false, "overlong '/' (4 bytes)"),
    U("\xf0\x8f\xbf\xbf", false, "overlong U+FFFF"),
    U("\xed\xa0\x80", false, "U+D800, high surrogate"),
    U("\xed\xaf\xbf", false, "U+DBFF"),
    U("\xed\xb0\x80", false, "U+DC00, low surrogate"),
    U("\xed\xbf\xbf", false, "U+DFFF"),
    U("\xed\xa0\xbd\xed\xb8\x80", false, "CESU-8 surrogate pair"),
    U("\xf4\x90\x80\x80", false, "U+110000"),
    U("\xf5\x80\x80\x80", false, "lead F5"),
    U("\xf7\xbf\xbf\xbf", false, "lead F7"),
    U("\xf8\x88\x80\x80\x80", false, "5-byte form"),
    U("\xfc\x84\x80\x80\x80\x80", false, "6-byte form"),
    U("\xfe", false, "FE"),
    U("\xff", false, "FF"),
    U("\x80", false, "lone continuation"),
    U("\xbf", false, "lone continuation BF"),
    U("a\x80" "b", false, "continuation between ASCII"),
    U("\xc3", false, "truncated 2-byte"),
    U("abc\xc3", false, "truncated 2-byte at the end"),
    U("\xe2\x82", false, "truncated 3-byte (2 of 3)"),
    U("\xe2", false, "truncated 3-byte (1 of 3)"),
    U("\xf0\x9f\x98", false, "truncated 4-byte (3 of 4)"),
    U("\xf0\x9f", false, "truncated 4-byte (2 of 4)"),
    U("\xc3" "a", false, "2-byte with ASCII continuation"),
    U("\xe2\x82" "a", false, "3-byte with ASCII third byte"),
    U("\xe2\x28\xa1", false, "3-byte with bad second byte"),
    U("\xf0\x9f\x98\xc0", false, "4-byte with bad last byte"),
    U("\xc3\xa9\xa9", false, "extra continuation"),
};

static void test_utf8_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof utf8_cases / sizeof utf8_cases[0]; i++) {
        const struct utf8_case *c = &utf8_cases[i];
        bool got = eb_utf8_valid(c->bytes, c->len);
        if (got != c->want)
            print_error("case %zu (%s): got %d, want %d\n", i, c->what, got, c->want);
        assert_int_equal(got, c->want);
    }
}

/* The length bounds the check: a truncated view of a valid string is
 * invalid, and bytes past len are never read. */
static void test_utf8_length_bounds(void **state)
{
    const char euro[] = "\xe2\x82\xac";
    char *heap;

    (void)state;
    assert_true(eb_utf8_valid(euro, 3));
    assert_false(eb_utf8_valid(euro, 2));
    assert_false(eb_utf8_valid(euro, 1));
    assert_true(eb_utf8_valid(euro, 0));
    assert_true(eb_utf8_valid("ab\xff", 2));

    /* Exactly-sized heap buffer, no terminator: ASan catches an over-read. */
    heap = malloc(4);
    assert_non_null(heap);
    memcpy(heap, "\xf0\x9f\x98\x80", 4);
    assert_true(eb_utf8_valid(heap, 4));
    assert_false(eb_utf8_valid(heap, 3));
    memcpy(heap, "ab\xe2\x82", 4);
    assert_false(eb_utf8_valid(heap, 4));
    free(heap);
}

/* Every code point round-trips: encoded well-formed, the validator agrees
 * exactly with the scalar-value rule. */
static void test_utf8_every_code_point(void **state)
{
    (void)state;
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
        unsigned char b[4];
        size_t n;
        bool want = !(cp >= 0xD800 && cp <= 0xDFFF);
        if (cp < 0x80) {
            b[0] = (unsigned char)cp, n = 1;
        } else if (cp < 0x800) {
            b[0] = (unsigned char)(0xC0 | cp >> 6);
            b[1] = (unsigned char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            b[0] = (unsigned char)(0xE0 | cp >> 12);
            b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (unsigned char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            b[0] = (unsigned char)(0xF0 | cp >> 18);
            b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            b[3] = (unsigned char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        if (eb_utf8_valid((const char *)b, n) != want) {
            print_error("U+%04X: got %d\n", (unsigned)cp, !want);
            fail();
        }
    }
}

static void test_strlcpy(void **state)
{
    char buf[8];

    (void)state;
    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "abc", sizeof buf), 3);
    assert_string_equal(buf, "abc");

    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "abcdefg", sizeof buf), 7); /* exactly fits */
    assert_string_equal(buf, "abcdefg");

    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "abcdefgh", sizeof buf), 8); /* one too long */
    assert_string_equal(buf, "abcdefg");

    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "a much longer string", sizeof buf), 20);
    assert_string_equal(buf, "a much ");

    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "", sizeof buf), 0);
    assert_string_equal(buf, "");

    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "abc", 1), 3);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], 'x');

    /* size 0 writes nothing and still reports the source length. */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(eb_strlcpy(buf, "abc", 0), 3);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(eb_strlcpy(NULL, "abcd", 0), 4);
}

static void test_random_bytes(void **state)
{
    unsigned char a[64], b[64], zero[64] = {0};
    unsigned char big[100000];
    size_t counts[256] = {0};

    (void)state;
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    eb_random_bytes(a, sizeof a);
    eb_random_bytes(b, sizeof b);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_memory_not_equal(b, zero, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);

    /* Zero bytes is allowed and touches nothing. */
    eb_random_bytes(NULL, 0);

    /* A large request is filled entirely; every byte value shows up. */
    memset(big, 0, sizeof big);
    eb_random_bytes(big, sizeof big);
    for (size_t i = 0; i < sizeof big; i++)
        counts[big[i]]++;
    for (size_t v = 0; v < 256; v++)
        assert_true(counts[v] > 100); /* expected ~390 each */
    /* The tail was written too. */
    assert_memory_not_equal(big + sizeof big - 64, zero, 64);
}

static void test_alloc_helpers(void **state)
{
    char *s, *t;
    unsigned char *z;

    (void)state;
    s = eb_strdup("hello");
    assert_string_equal(s, "hello");
    t = eb_strndup("hello", 3);
    assert_string_equal(t, "hel");
    free(s);
    free(t);
    z = eb_calloc(16, 4);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    z = eb_realloc(z, 128);
    z[127] = 1;
    free(z);
    free(eb_malloc(0)); /* zero-size allocations are real allocations */
    free(eb_calloc(0, 0));
}

static void test_clocks(void **state)
{
    int64_t m1, m2, w;

    (void)state;
    m1 = eb_now_mono_us();
    m2 = eb_now_mono_us();
    assert_true(m2 >= m1);
    w = eb_now_wall_us();
    /* After 2020-01-01 and before 2100-01-01, in microseconds. */
    assert_true(w > INT64_C(1577836800) * 1000000);
    assert_true(w < INT64_C(4102444800) * 1000000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_length_bounds),
        cmocka_unit_test(test_utf8_every_code_point),
        cmocka_unit_test(test_strlcpy),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_alloc_helpers),
        cmocka_unit_test(test_clocks),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
