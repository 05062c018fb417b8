/* Unit tests for server/pattern.c that are not one pattern against one
 * event: the size, depth, value and wildcard caps, the compile and explain
 * API contracts (buffers, ownership, lengths) and deeply nested event
 * arrays. The cases of every operator, their error messages and their
 * explanations are in pattern_conformance.txt, run by
 * test_pattern_conformance.c.
 *
 * Patterns written inline use single quotes, which json_of() turns into
 * double quotes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pattern.h"

/* Returns a malloc'd copy of s with every ' replaced by ". */
static char *json_of(const char *s)
{
    char *out = strdup(s);

    assert_non_null(out);
    for (char *p = out; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

static eb_status compile_q(const char *pattern, eb_pattern **out, char *err, size_t errlen)
{
    char *text = json_of(pattern);
    eb_status st = eb_pattern_compile(text, strlen(text), out, err, errlen);

    free(text);
    return st;
}

static void test_explain_truncates(void **state)
{
    eb_pattern *p = NULL;
    char reason[12];
    char big[300];
    json_t *ev;

    (void)state;
    assert_int_equal(compile_q("{'s':['x']}", &p, NULL, 0), EB_OK);

    /* A long value is cut, with an ellipsis, well before the buffer ends. */
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ev = json_pack("{s:s}", "s", big);
    {
        char wide[512];

        assert_false(eb_pattern_explain(p, ev, wide, sizeof wide));
        assert_non_null(strstr(wide, "...\""));
        assert_true(strlen(wide) < 120);
    }
    /* A small buffer is filled and terminated. */
    assert_false(eb_pattern_explain(p, ev, reason, sizeof reason));
    assert_int_equal(strlen(reason), sizeof reason - 1);
    assert_memory_equal(reason, "s: expected", sizeof reason - 1);
    /* No buffer at all still answers. */
    assert_false(eb_pattern_explain(p, ev, NULL, 0));
    assert_false(eb_pattern_explain(p, ev, reason, 0));
    json_decref(ev);
    eb_pattern_free(p);
}

/* Returns a malloc'd pattern nesting depth objects: {"a":{"a":...{"x":["v"]}}}. */
static char *nested_pattern(int depth, const char *key)
{
    size_t cap = (size_t)depth * 16 + 64, len = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    for (int i = 1; i < depth; i++)
        len += (size_t)snprintf(s + len, cap - len, "{\"%s\":", key);
    len += (size_t)snprintf(s + len, cap - len, "{\"x\":[\"v\"]}");
    for (int i = 1; i < depth; i++)
        s[len++] = '}';
    s[len] = '\0';
    return s;
}

static void test_cap_depth(void **state)
{
    eb_pattern *p = NULL;
    char err[256];
    char *text;

    (void)state;
    text = nested_pattern(EB_PATTERN_MAX_DEPTH, "a");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    free(text);

    text = nested_pattern(EB_PATTERN_MAX_DEPTH + 1, "a");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_null(p);
    assert_string_equal(err, "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a: pattern depth exceeds 16");
    free(text);

    /* A very deep pattern (within the size cap) is refused without deep
     * recursion. */
    text = nested_pattern(500, "detail");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_non_null(strstr(err, "detail: pattern depth exceeds 16"));
    free(text);

    /* Each $or alternative is one level deeper. */
    {
        char buf[1024];
        size_t len = 0;

        for (int i = 1; i < EB_PATTERN_MAX_DEPTH + 1; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "{\"$or\":[");
        len += (size_t)snprintf(buf + len, sizeof buf - len, "{\"x\":[1]}");
        for (int i = 1; i < EB_PATTERN_MAX_DEPTH + 1; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "]}");
        assert_int_equal(eb_pattern_compile(buf, len, &p, err, sizeof err), EB_EINVAL);
        assert_non_null(strstr(err, "$or[0]: pattern depth exceeds 16"));
    }
}

static void test_cap_size(void **state)
{
    char text[EB_PATTERN_MAX_BYTES + 2];
    const char *body = "{\"x\":[\"v\"]}";
    eb_pattern *p = NULL;
    char err[256];

    (void)state;
    memset(text, ' ', sizeof text);
    memcpy(text, body, strlen(body));
    assert_int_equal(eb_pattern_compile(text, EB_PATTERN_MAX_BYTES, &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    assert_int_equal(eb_pattern_compile(text, EB_PATTERN_MAX_BYTES + 1, &p, err, sizeof err),
                     EB_EINVAL);
    assert_null(p);
    assert_string_equal(err, "pattern: 8193 bytes exceeds the limit of 8192");
}

/* Builds {"x":[1,1,...]} with n values, plus extra text before the close. */
static char *values_pattern(size_t n, const char *extra)
{
    size_t cap = n * 2 + strlen(extra) + 32, len = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    len += (size_t)snprintf(s, cap, "{\"x\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? ",1" : "1");
    snprintf(s + len, cap - len, "]%s}", extra);
    return s;
}

static void test_cap_values(void **state)
{
    eb_pattern *p = NULL;
    char err[256];
    char *text;

    (void)state;
    text = values_pattern(EB_PATTERN_MAX_VALUES, "");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    free(text);

    text = values_pattern(EB_PATTERN_MAX_VALUES + 1, "");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_string_equal(err, "x[1024]: pattern has more than 1024 values");
    free(text);

    /* Values are counted across fields and inside anything-but lists. */
    text = values_pattern(EB_PATTERN_MAX_VALUES - 2, ",\"y\":[{\"anything-but\":[1,2]}]");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    free(text);
    text = values_pattern(EB_PATTERN_MAX_VALUES - 2, ",\"y\":[{\"anything-but\":[1,2,3]}]");
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_string_equal(err, "y[0]: pattern has more than 1024 values");
    free(text);
}

static void test_cap_wildcard(void **state)
{
    char text[256], stars[64];
    size_t n = 0;
    eb_pattern *p = NULL;
    char err[256];
    json_t *ev;

    (void)state;
    for (int i = 0; i < EB_PATTERN_MAX_WILDCARDS; i++) {
        stars[n++] = 'a';
        stars[n++] = '*';
    }
    stars[n] = '\0';
    snprintf(text, sizeof text, "{\"s\":[{\"wildcard\":\"%s\"}]}", stars);
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    ev = json_pack("{s:s}", "s", "aaaaaaaaaaaaaaaaxyz");
    assert_true(eb_pattern_match(p, ev));
    json_decref(ev);
    ev = json_pack("{s:s}", "s", "aaaaaaaaaaaaaaa");
    assert_false(eb_pattern_match(p, ev));
    json_decref(ev);
    eb_pattern_free(p);
    p = NULL;

    snprintf(text, sizeof text, "{\"s\":[{\"wildcard\":\"%sa*\"}]}", stars);
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_EINVAL);
    assert_string_equal(err, "s[0]: wildcard has more than 16 '*'");

    /* Escaped stars are literals and do not count. */
    snprintf(text, sizeof text, "{\"s\":[{\"wildcard\":\"%s\\\\*\\\\*\"}]}", stars);
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, err, sizeof err), EB_OK);
    eb_pattern_free(p);
}

static void test_compile_contract(void **state)
{
    eb_pattern *sentinel = (eb_pattern *)(uintptr_t)0x1;
    eb_pattern *p = sentinel;
    char err[10];
    const char *text = "{\"a\":[\"x\"]}trailing";

    (void)state;
    /* On failure *out is untouched and a short error buffer is truncated. */
    assert_int_equal(eb_pattern_compile("{\"a\":1}", 7, &p, err, sizeof err), EB_EINVAL);
    assert_ptr_equal(p, sentinel);
    assert_int_equal(strlen(err), sizeof err - 1);
    /* The error buffer is optional. */
    assert_int_equal(eb_pattern_compile("{\"a\":1}", 7, &p, NULL, 0), EB_EINVAL);
    assert_int_equal(eb_pattern_compile(NULL, 0, &p, err, sizeof err), EB_EINVAL);
    assert_ptr_equal(p, sentinel);
    /* Only len bytes are read. */
    p = NULL;
    assert_int_equal(eb_pattern_compile(text, 11, &p, NULL, 0), EB_OK);
    eb_pattern_free(p);
    p = NULL;
    assert_int_equal(eb_pattern_compile(text, strlen(text), &p, NULL, 0), EB_EINVAL);
    /* An embedded NUL is refused. */
    assert_int_equal(eb_pattern_compile("{\"a\":[\"\0\"]}", 11, &p, NULL, 0), EB_EINVAL);
    assert_null(p);
    eb_pattern_free(NULL);
}

/* Arrays nested in arrays are flattened to a bounded depth. */
static void test_deep_event_arrays(void **state)
{
    eb_pattern *p = NULL;
    json_t *ev, *inner;

    (void)state;
    assert_int_equal(compile_q("{'x':['a']}", &p, NULL, 0), EB_OK);
    inner = json_pack("[s]", "a");
    for (int i = 0; i < 3; i++)
        inner = json_pack("[o]", inner);
    ev = json_pack("{s:o}", "x", inner);
    assert_true(eb_pattern_match(p, ev));
    json_decref(ev);

    inner = json_pack("[s]", "a");
    for (int i = 0; i < 100; i++)
        inner = json_pack("[o]", inner);
    ev = json_pack("{s:o}", "x", inner);
    assert_false(eb_pattern_match(p, ev));
    json_decref(ev);
    eb_pattern_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_truncates),
        cmocka_unit_test(test_cap_depth),
        cmocka_unit_test(test_cap_size),
        cmocka_unit_test(test_cap_values),
        cmocka_unit_test(test_cap_wildcard),
        cmocka_unit_test(test_compile_contract),
        cmocka_unit_test(test_deep_event_arrays),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
