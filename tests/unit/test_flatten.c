/* Unit tests for server/flatten.c and server/pattern_flat.c: matching the
 * flattened event (eb_matcher_match_event) must give exactly the answer of
 * the jansson path (ce_to_json() then eb_pattern_match() per pattern), on
 * hand-picked edge cases of JSON validity, numbers, strings, duplicates,
 * nesting, content types and attributes, and on seeded random events and
 * pattern sets, valid and corrupted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cejson.h"
#include "flatten.h"
#include "pattern.h"
#include "pattern_flat.h"

typedef Io__Cloudevents__V1__CloudEvent ce_event;
typedef Io__Cloudevents__V1__CloudEvent__AttributesEntry ce_entry;
typedef Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue ce_value;

#define ATTR(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_##x
#define DATA(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_##x

#define MAX_PATS 4096

/* A set of compiled patterns and a matcher over them (id = index). */
struct set {
    eb_pattern *pats[MAX_PATS];
    size_t n;
    eb_matcher *m;
    eb_matcher_scratch *sc;
};

static void set_add(struct set *s, const char *text)
{
    char err[256];

    assert_true(s->n < MAX_PATS);
    if (eb_pattern_compile(text, strlen(text), &s->pats[s->n], err, sizeof err) != EB_OK)
        fail_msg("pattern %s: %s", text, err);
    s->n++;
}

static void set_build(struct set *s)
{
    s->m = eb_matcher_new();
    for (size_t i = 0; i < s->n; i++)
        eb_matcher_add(s->m, s->pats[i], (uint32_t)i);
    eb_matcher_build(s->m);
    s->sc = eb_matcher_scratch_new(s->m);
}

static void set_free(struct set *s)
{
    eb_matcher_scratch_free(s->sc);
    eb_matcher_free(s->m);
    for (size_t i = 0; i < s->n; i++)
        eb_pattern_free(s->pats[i]);
    memset(s, 0, sizeof *s);
}

/* Checks eb_matcher_match_stored() on the bytes body[0..len): they must
 * be refused exactly when protobuf-c cannot decode them, and otherwise match
 * as the jansson path does on what protobuf-c decodes. */
static void check_bytes(struct set *s, const uint8_t *body, size_t len, const char *what)
{
    ce_event *ref = io__cloudevents__v1__cloud_event__unpack(NULL, len, body);
    bool got[MAX_PATS] = { false };
    const uint32_t *ids;
    size_t n = 0;
    bool ok = eb_matcher_match_stored(s->m, body, len, s->sc, &ids, &n);
    json_t *view;

    if (ref == NULL) {
        if (ok)
            fail_msg("%s: stored bytes protobuf-c refuses were matched", what);
        return;
    }
    if (!ok)
        fail_msg("%s: stored bytes refused", what);
    view = ce_to_json(ref);
    for (size_t k = 0; k < n; k++) {
        assert_true(ids[k] < s->n);
        assert_false(got[ids[k]]);
        got[ids[k]] = true;
    }
    for (size_t i = 0; i < s->n; i++)
        if (eb_pattern_match(s->pats[i], view) != got[i])
            fail_msg("%s: stored bytes: pattern %zu: jansson %d, flattened %d", what, i,
                     !got[i], got[i]);
    json_decref(view);
    io__cloudevents__v1__cloud_event__free_unpacked(ref, NULL);
}

/* Packs ev as cebusd stores it and checks the stored-bytes path. */
static void check_stored(struct set *s, const ce_event *ev, const char *what)
{
    size_t len = io__cloudevents__v1__cloud_event__get_packed_size(ev);
    uint8_t *body = malloc(len ? len : 1);

    assert_non_null(body);
    io__cloudevents__v1__cloud_event__pack(ev, body);
    check_bytes(s, body, len, what);
    free(body);
}

/* Checks that the flattened path agrees with the jansson path on ev for
 * every pattern of s, from the decoded event and from its stored bytes.
 * Returns how many patterns matched. */
static size_t check(struct set *s, const ce_event *ev, const char *what)
{
    json_t *view = ce_to_json(ev);
    bool want[MAX_PATS] = { false }, got[MAX_PATS] = { false };
    const uint32_t *ids;
    size_t n, nwant = 0;

    assert_non_null(view);
    for (size_t i = 0; i < s->n; i++) {
        want[i] = eb_pattern_match(s->pats[i], view);
        nwant += want[i];
    }
    n = eb_matcher_match_event(s->m, ev, s->sc, &ids);
    for (size_t k = 0; k < n; k++) {
        assert_true(ids[k] < s->n);
        assert_false(got[ids[k]]);
        got[ids[k]] = true;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (want[i] != got[i]) {
            char *dump = json_dumps(view, JSON_COMPACT | JSON_ENCODE_ANY);
            fail_msg("%s: pattern %zu: jansson %d, flattened %d; view %s", what, i, want[i],
                     got[i], dump ? dump : "?");
        }
    }
    json_decref(view);
    check_stored(s, ev, what);
    return nwant;
}

/* ---- Building events ------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    assert_non_null(p);
    return p;
}

static ce_event *event_new(void)
{
    ce_event *ev = calloc(1, sizeof *ev);

    assert_non_null(ev);
    io__cloudevents__v1__cloud_event__init(ev);
    ev->id = xstrdup("id-1");
    ev->source = xstrdup("/shop/eu/orders");
    ev->spec_version = xstrdup("1.0");
    ev->type = xstrdup("com.example.order.created");
    return ev;
}

static ce_value *attr_add(ce_event *ev, const char *key)
{
    ce_entry *e = calloc(1, sizeof *e);
    ce_value *v = calloc(1, sizeof *v);

    assert_true(e != NULL && v != NULL);
    io__cloudevents__v1__cloud_event__attributes_entry__init(e);
    io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(v);
    e->key = xstrdup(key);
    e->value = v;
    ev->attributes = realloc(ev->attributes, (ev->n_attributes + 1) * sizeof *ev->attributes);
    assert_non_null(ev->attributes);
    ev->attributes[ev->n_attributes++] = e;
    return v;
}

static void attr_string(ce_event *ev, const char *key, const char *value)
{
    ce_value *v = attr_add(ev, key);

    v->attr_case = ATTR(CE_STRING);
    v->ce_string = xstrdup(value);
}

static void set_text(ce_event *ev, const char *text)
{
    ev->data_case = DATA(TEXT_DATA);
    ev->text_data = xstrdup(text);
}

static void set_binary(ce_event *ev, const void *data, size_t len)
{
    ev->data_case = DATA(BINARY_DATA);
    ev->binary_data.data = malloc(len ? len : 1);
    assert_non_null(ev->binary_data.data);
    memcpy(ev->binary_data.data, data, len);
    ev->binary_data.len = len;
}

static void event_free(ce_event *ev)
{
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
}

/* Patterns that look at every kind of place the flattener fills. */
static const char *const probe_patterns[] = {
    "{\"data\":{\"a\":[1]}}",
    "{\"data\":{\"a\":[\"x\"]}}",
    "{\"data\":{\"a\":[{\"exists\":true}]}}",
    "{\"data\":{\"a\":[{\"exists\":false}]}}",
    "{\"data\":{\"a\":[{\"numeric\":[\">\",0]}]}}",
    "{\"data\":{\"a\":[{\"numeric\":[\"<\",0]}]}}",
    "{\"data\":{\"a\":[{\"anything-but\":[\"x\"]}]}}",
    "{\"data\":{\"a\":[null]}}",
    "{\"data\":{\"a\":[true]}}",
    "{\"data\":{\"a\":[{\"prefix\":\"\xc3\xa9\"}]}}",
    "{\"data\":{\"a\":[{\"equals-ignore-case\":\"X\"}]}}",
    "{\"data\":{\"b\":{\"c\":[\"d\"]}}}",
    "{\"data\":{\"b\":{\"c\":[{\"exists\":false}]}}}",
    "{\"data\":{\"b\":{\"c\":[{\"exists\":true}]}}}",
    "{\"data\":{\"b\":{\"c\":[\"d\"],\"e\":[2]}}}",
    "{\"data\":[{\"exists\":true}]}",
    "{\"data\":[{\"exists\":false}]}",
    "{\"data\":[\"hello\"]}",
    "{\"data\":[5]}",
    "{\"data\":[{\"prefix\":\"{\"}]}",
    "{\"data\":[{\"anything-but\":\"x\"}]}",
    "{\"data_base64\":[{\"exists\":true}]}",
    "{\"data_base64\":[{\"prefix\":\"\"}]}",
    "{\"data_base64\":[\"aGk=\"]}",
    "{\"data\":{\"k\\\"q\":[1]}}",
    "{\"data\":{\"\xc3\xa9\":[1]}}",
    "{\"x\":[\"1\"]}",
    "{\"x\":[{\"exists\":true}]}",
    "{\"x\":[1]}",
    "{\"x\":[true]}",
    "{\"x\":[\"\xef\xbf\xbd\"]}",
    "{\"t\":[{\"prefix\":\"2024-\"}]}",
    "{\"t\":[{\"exists\":true}]}",
    "{\"bin\":[\"AAE=\"]}",
    "{\"specversion\":[\"1.0\"],\"id\":[\"id-1\"]}",
    "{\"source\":[{\"prefix\":\"/shop/\"}],\"type\":[{\"suffix\":\".created\"}]}",
    "{\"datacontenttype\":[{\"exists\":false}],\"data\":{\"a\":[1]}}",
    "{\"$or\":[{\"data\":{\"a\":[1]}},{\"data\":{\"b\":{\"c\":[\"d\"]}}}]}",
    "{}",
};

static void probe_set(struct set *s)
{
    for (size_t i = 0; i < sizeof probe_patterns / sizeof probe_patterns[0]; i++)
        set_add(s, probe_patterns[i]);
    set_build(s);
}

/* Data documents at the edges of what jansson accepts. */
static const char *const edge_docs[] = {
    "{\"a\":1}",
    "{\"a\":-1}",
    "{\"a\":\"x\"}",
    " \t\r\n{\"a\" : 1 } \n",
    "{\"a\":1,}",
    "{\"a\":1 \"b\":2}",
    "{\"a\"1}",
    "{a:1}",
    "{'a':1}",
    "{\"a\":01}",
    "{\"a\":-01}",
    "{\"a\":1.}",
    "{\"a\":.5}",
    "{\"a\":-}",
    "{\"a\":+1}",
    "{\"a\":1e}",
    "{\"a\":1e+}",
    "{\"a\":1E-2}",
    "{\"a\":0e0}",
    "{\"a\":-0}",
    "{\"a\":-0.0}",
    "{\"a\":9223372036854775807}",
    "{\"a\":9223372036854775808}",
    "{\"a\":-9223372036854775808}",
    "{\"a\":-9223372036854775809}",
    "{\"a\":12345678901234567890123}",
    "{\"a\":1e308}",
    "{\"a\":1.7976931348623157e308}",
    "{\"a\":1.7976931348623159e308}",
    "{\"a\":1e309}",
    "{\"a\":-1e400}",
    "{\"a\":1e-400}",
    "{\"a\":0.000000000000000000000000000000001e340}",
    "{\"a\":100000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000.5}",
    "{\"a\":1e99999999999999999999}",
    "{\"a\":1e-99999999999999999999}",
    "{\"zz\":1e308,\"a\":1}",
    "{\"zz\":1e309,\"a\":1}",
    "{\"zz\":-1e400,\"a\":1}",
    "{\"zz\":1e-400,\"a\":1}",
    "{\"zz\":0.0000000000001e320,\"a\":1}",
    "{\"zz\":9223372036854775808,\"a\":1}",
    "{\"zz\":-9223372036854775809,\"a\":1}",
    "{\"zz\":[\"\\ud800\"],\"a\":1}",
    "{\"zz\":{\"\\u0000\":1},\"a\":1}",
    "{\"zz\":\"\xed\xa0\x80\",\"a\":1}",
    "{\"a\":true}",
    "{\"a\":truex}",
    "{\"a\":tru}",
    "{\"a\":nul}",
    "{\"a\":null}",
    "{\"a\":True}",
    "{\"a\":true1}",
    "{\"a\":[1,2,]}",
    "{\"a\":[,1]}",
    "{\"a\":[1 2]}",
    "{\"a\":[]}",
    "{\"a\":[[[[1]]]]}",
    "{\"a\":{}}",
    "{\"a\":{\"a\":1}}",
    "{\"a\":\"\\u0078\"}",
    "{\"a\":\"\\u0000\"}",
    "{\"a\":\"x\\u0000\"}",
    "{\"\\u0000\":1,\"a\":1}",
    "{\"a\":\"\\ud83d\\ude00\"}",
    "{\"a\":\"\\ud83d\"}",
    "{\"a\":\"\\ud83dx\"}",
    "{\"a\":\"\\ud83d\\u0041\"}",
    "{\"a\":\"\\ude00\"}",
    "{\"a\":\"\\u00e9\"}",
    "{\"a\":\"\\uZZZZ\"}",
    "{\"a\":\"\\u12\"}",
    "{\"a\":\"\\x\"}",
    "{\"a\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"}",
    "{\"a\":\"tab\there\"}",
    "{\"a\":\"nl\nhere\"}",
    "{\"a\":\"\x7f\"}",
    "{\"a\":\"\xc3\xa9t\xc3\xa9\"}",
    "{\"a\":\"\xc3\"}",
    "{\"a\":\"\xc0\xaf\"}",
    "{\"a\":\"\xe0\x80\xaf\"}",
    "{\"a\":\"\xed\xa0\x80\"}",
    "{\"a\":\"\xf4\x90\x80\x80\"}",
    "{\"a\":\"\xf0\x9f\x98\x80\"}",
    "{\"a\":\"\xff\"}",
    "{\"a\":1}\xc3\xa9",
    "{\"a\":1} x",
    "{\"a\":1}{}",
    "{\"a\":\"unterminated}",
    "{\"a\":1",
    "{\"a\":",
    "{\"a\"",
    "{",
    "",
    "   ",
    "1",
    "\"hello\"",
    "\"\\u0068ello\"",
    "null",
    "[1,2]",
    "[{\"a\":1},{\"a\":2}]",
    "{\"a\":1,\"a\":2}",
    "{\"a\":2,\"a\":1}",
    "{\"a\":1,\"a\":\"x\"}",
    "{\"a\":1,\"\\u0061\":2}",
    "{\"b\":{\"c\":\"d\"},\"b\":{\"e\":2}}",
    "{\"b\":{\"c\":\"d\",\"c\":\"z\"}}",
    "{\"b\":[{\"c\":\"d\"},{\"e\":2}]}",
    "{\"b\":[{\"c\":\"d\",\"e\":2}]}",
    "{\"b\":[[{\"c\":\"d\"}]]}",
    "{\"b\":[1,{\"c\":\"d\"}]}",
    "{\"b\":[1,2]}",
    "{\"b\":\"str\"}",
    "{\"b\":{\"c\":[]}}",
    "{\"b\":{\"c\":[[]]}}",
    "{\"b\":{\"c\":{}}}",
    "{\"b\":{\"c\":[{}]}}",
    "{\"b\":{\"c\":[null]}}",
    "{\"k\\\"q\":1}",
    "{\"k\\u0022q\":1}",
    "{\"\xc3\xa9\":1}",
    "{\"\\u00e9\":1}",
    "{\"x\":{\"a\":1},\"a\":[\"x\",[\"y\",[1]]]}",
    "{\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}",
    "{\"a\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}",
    "{\"a\":\"\\u00\"}",
    "{\"a\":\"\\",
    "{\"a\":\"\\u",
};

static void run_text_docs(struct set *s, const char *ct)
{
    for (size_t i = 0; i < sizeof edge_docs / sizeof edge_docs[0]; i++) {
        ce_event *ev = event_new();
        char what[64];

        if (ct != NULL)
            attr_string(ev, "datacontenttype", ct);
        set_text(ev, edge_docs[i]);
        snprintf(what, sizeof what, "text doc %zu ct %s", i, ct ? ct : "-");
        check(s, ev, what);
        event_free(ev);

        ev = event_new();
        if (ct != NULL)
            attr_string(ev, "datacontenttype", ct);
        set_binary(ev, edge_docs[i], strlen(edge_docs[i]));
        snprintf(what, sizeof what, "binary doc %zu ct %s", i, ct ? ct : "-");
        check(s, ev, what);
        event_free(ev);
    }
}

static void test_edge_documents(void **state)
{
    struct set s = { 0 };

    (void)state;
    probe_set(&s);
    run_text_docs(&s, NULL);
    run_text_docs(&s, "application/json");
    run_text_docs(&s, "application/cloudevents+json; charset=utf-8");
    run_text_docs(&s, "text/plain");
    set_free(&s);
}

/* Checks that flattening "{\"a\":N}" gives exactly the number jansson
 * parses, for odd spellings. */
static void test_numbers_exact(void **state)
{
    static const char *const nums[] = {
        "0", "-0", "1", "5", "5.0", "5e0", "0.1", "1e3", "1000", "123456789012345678",
        "1234567890123456789", "9007199254740993", "-9007199254740993", "0.30000000000000004",
        "2.2250738585072011e-308", "4.9e-324", "1e-400", "1.7976931348623157e308",
        "9223372036854775807", "-9223372036854775808", "123.456e-2", "1E+2",
        "2085.1500000000001", "0.10000000000000001", "-17.399999999999999",
        "18014398509481986.0", "1234567890123456789.5", "1e-19", "9999999999999999999e19",
    };
    struct set s = { 0 };
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();

    (void)state;
    eb_ftrie_add(t, EB_FTRIE_ROOT, "a", 1);
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char doc[128], pat[160];
        json_t *j;

        snprintf(doc, sizeof doc, "{\"a\":%s}", nums[i]);
        j = json_loads(doc, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        assert_true(eb_flatten_json(f, t, doc, strlen(doc)));
        assert_int_equal(f->vals[0].n, 1);
        assert_int_equal(f->vals[f->kids[0]].kind, EB_FV_NUMBER);
        assert_true(f->vals[f->kids[0]].num == json_number_value(json_object_get(j, "a")));
        json_decref(j);
        /* And through a pattern on data. */
        snprintf(pat, sizeof pat, "{\"data\":{\"a\":[%s]}}", nums[i]);
        if (strcmp(nums[i], "1e-400") != 0)
            set_add(&s, pat);
    }
    set_build(&s);
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        char doc[128];
        ce_event *ev = event_new();

        snprintf(doc, sizeof doc, "{\"a\":%s}", nums[i]);
        set_text(ev, doc);
        assert_true(check(&s, ev, doc) >= 1);
        event_free(ev);
    }
    set_free(&s);
    eb_flat_free(f);
    eb_ftrie_free(t);
}

static uint32_t rnd(uint64_t *st, uint32_t n);

/* Returns the number the flattener reads from "{\"a\":text}" (t: "a"). */
static double flat_number(eb_flat *f, const eb_ftrie *t, const char *text)
{
    char doc[160];

    snprintf(doc, sizeof doc, "{\"a\":%s}", text);
    if (!eb_flatten_json(f, t, doc, strlen(doc)))
        fail_msg("%s: refused", text);
    assert_int_equal(f->vals[0].n, 1);
    assert_int_equal(f->vals[f->kids[0]].kind, EB_FV_NUMBER);
    return f->vals[f->kids[0]].num;
}

/* Checks that the flattener reads text as the same double, bit for bit, as
 * strtod (which jansson uses for reals). */
static void check_real(eb_flat *f, const eb_ftrie *t, const char *text)
{
    double want = strtod(text, NULL), got = flat_number(f, t, text);

    if (memcmp(&want, &got, sizeof want) != 0)
        fail_msg("%s: strtod %.17g, flattened %.17g", text, want, got);
}

/* Reals are converted without strtod when their digits allow: up to 15
 * significant digits with a power of ten up to 22 (exact doubles), and up
 * to 19 digits with a power of ten up to 19 (exact 128-bit integers); the
 * rest go to strtod. Each must give strtod's double: halfway cases (ties
 * to even), the limits of each way, and seeded random spellings. */
static void test_numbers_strtod(void **state)
{
    static const char *const reals[] = {
        /* 17 significant digits, as jansson writes reals. */
        "2085.1500000000001", "0.10000000000000001", "0.30000000000000004",
        "-17.399999999999999", "1.0000000000000001e-05", "9.8765432109876539e+18",
        /* Exactly halfway between two doubles: ties to even. */
        "18014398509481986.0", "18014398509481990.0", "18014398509481986e0",
        "9007199254740993.0", "9007199254740995.0", "90071992547409925e-1",
        "1801439850948198.6e1", "-18014398509481986.0",
        /* Just above and below halfway. */
        "18014398509481986.1", "18014398509481985.9", "9007199254740993.0000001",
        /* The limits: 15 and 16, 19 and 20 significant digits; powers of ten 19, 20,
         * 22 and 23 each way. */
        "123456789012345.6", "1234567890123456.7", "123456789012345678.9",
        "1234567890123456789.1", "9999999999999999999e19", "9999999999999999999e20",
        "9999999999999999999e-19", "9999999999999999999e-20", "1e-19", "1e-20", "1e22",
        "1e23", "1.5e-22", "1.5e-23", "0.0000000000000000001", "0.00000000000000000001",
        "1000000000000000000.0", "10000000000000000000.0", "0.0", "-0.0", "0e5",
        "00.5e0",
    };
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();
    uint64_t st = 0x9e3779b97f4a7c15ULL;

    (void)state;
    eb_ftrie_add(t, EB_FTRIE_ROOT, "a", 1);
    for (size_t i = 0; i < sizeof reals / sizeof reals[0]; i++) {
        /* "00.5e0" is not JSON: the flattener must refuse it as jansson does. */
        if (strcmp(reals[i], "00.5e0") == 0) {
            assert_false(eb_flatten_json(f, t, "{\"a\":00.5e0}", 12));
            continue;
        }
        check_real(f, t, reals[i]);
    }
    for (int i = 0; i < 20000; i++) {
        char text[64];
        size_t n = 1 + rnd(&st, 21), o = 0, point = n > 1 ? rnd(&st, (uint32_t)n) : 0;
        bool with_exp = point == 0 || rnd(&st, 2);

        if (rnd(&st, 4) == 0)
            text[o++] = '-';
        for (size_t k = 0; k < n; k++) {
            if (k == point && k > 0)
                text[o++] = '.';
            /* No leading zeros before the point, as JSON wants. */
            text[o++] = (char)('0' + (k == 0 && point != 1 && n > 1 ? 1 + rnd(&st, 9)
                                                                   : rnd(&st, 10)));
        }
        if (with_exp)
            o += (size_t)snprintf(text + o, sizeof text - o, "e%d", (int)rnd(&st, 61) - 30);
        text[o] = '\0';
        check_real(f, t, text);
    }
    eb_flat_free(f);
    eb_ftrie_free(t);
}

/* Member names are looked up with their first 8 bytes read at once when 8
 * bytes of text remain, masked to the name's length; escaped names and
 * names near the end of the text are read byte by byte. Each document
 * keeps exactly the members named in the trie, whatever follows the name. */
static void test_member_names(void **state)
{
    static const char *const names[] = { "a", "ab", "abcdefg", "abcdefgh", "abcdefghi" };
    static const struct {
        const char *doc;
        const char *kept; /* the names kept, in order, separated by ',' */
    } cases[] = {
        { "{\"a\":1}", "a" },
        { "{\"ab\":1}", "ab" },
        { "{\"abc\":1}", "" },
        { "{\"abcdefg\":1,\"x\":2}", "abcdefg" },
        { "{\"abcdefgh\":1,\"x\":2}", "abcdefgh" },
        { "{\"abcdefghi\":1,\"x\":2}", "abcdefghi" },
        { "{\"abcdefgX\":1,\"abcdefghX\":2,\"abcdefgi\":3,\"Abcdefg\":4}", "" },
        { "{\"\\u0061bcdefg\":1,\"abcdefg\\u0068\":2,\"\\u0061\":3}", "abcdefg,abcdefgh,a" },
        { "{\"x\":1,\"ab\":2}", "ab" },
        { "{\"x\":1,\"a\":2}", "a" },
        { "{\"ab\":{\"a\":1},\"a\":[1]}", "ab,a" },
        { "{\"abcdefghi\":0,\"abcdefgh\":0,\"abcdefg\":0,\"ab\":0,\"a\":0}",
          "abcdefghi,abcdefgh,abcdefg,ab,a" },
    };
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();

    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        eb_ftrie_add(t, EB_FTRIE_ROOT, names[i], strlen(names[i]));
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *doc = cases[c].doc;
        char kept[128] = "";

        if (!eb_flatten_json(f, t, doc, strlen(doc)))
            fail_msg("%s: refused", doc);
        for (size_t k = 0; k < f->vals[0].n; k++) {
            size_t len;
            const char *name = eb_ftrie_name(t, f->vals[f->kids[f->vals[0].first + k]].node, &len);

            if (k > 0)
                strcat(kept, ",");
            strncat(kept, name, len);
        }
        if (strcmp(kept, cases[c].kept) != 0)
            fail_msg("%s: kept \"%s\", want \"%s\"", doc, kept, cases[c].kept);
    }
    eb_flat_free(f);
    eb_ftrie_free(t);
}

/* A node's children are found through a small table while they are few,
 * by hashing once they are many. Adding children one by one, every name
 * added so far is found (by eb_ftrie_find() and as a member of a scanned
 * document) and names not added are not: short names, empty names, long
 * names that share their first 8 bytes, names that differ only in length. */
static void test_trie_children(void **state)
{
    enum { N = 40 };
    char names[N][32];
    size_t lens[N];
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();
    uint32_t ids[N];

    (void)state;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0:
            snprintf(names[i], sizeof names[i], "k%d", i);
            break;
        case 1:
            snprintf(names[i], sizeof names[i], "same_head_%d", i); /* 8 bytes alike */
            break;
        case 2:
            snprintf(names[i], sizeof names[i], "%.*s", i / 4, "abcdefghijkl");
            break;
        default:
            snprintf(names[i], sizeof names[i], "n%dsuffix", i);
            break;
        }
        lens[i] = strlen(names[i]);
    }
    for (int n = 0; n < N; n++) {
        char doc[2048];
        size_t o = 0;

        ids[n] = eb_ftrie_add(t, EB_FTRIE_ROOT, names[n], lens[n]);
        assert_int_equal(eb_ftrie_add(t, EB_FTRIE_ROOT, names[n], lens[n]), ids[n]);
        for (int i = 0; i < N; i++) {
            uint32_t got = eb_ftrie_find(t, EB_FTRIE_ROOT, names[i], lens[i]);

            if (got != (i <= n ? ids[i] : EB_FTRIE_NONE))
                fail_msg("%d children: \"%s\" found as %u", n + 1, names[i], got);
        }
        assert_int_equal(eb_ftrie_find(t, EB_FTRIE_ROOT, "same_head_", 10), EB_FTRIE_NONE);
        assert_int_equal(eb_ftrie_find(t, EB_FTRIE_ROOT, "abcdefghijklm", 13), EB_FTRIE_NONE);
        /* Every name as a member, each with its index as value. */
        o += (size_t)snprintf(doc + o, sizeof doc - o, "{");
        for (int i = 0; i < N; i++)
            o += (size_t)snprintf(doc + o, sizeof doc - o, "%s\"%s\":%d", i ? "," : "", names[i],
                                  i);
        o += (size_t)snprintf(doc + o, sizeof doc - o, "}");
        assert_true(eb_flatten_json(f, t, doc, o));
        assert_int_equal(f->vals[0].n, n + 1);
        for (size_t k = 0; k < f->vals[0].n; k++) {
            const struct eb_fval *v = &f->vals[f->kids[f->vals[0].first + k]];
            int i;

            assert_int_equal(v->kind, EB_FV_NUMBER);
            i = (int)v->num;
            assert_true(i >= 0 && i < N);
            assert_int_equal(v->node, ids[i]);
        }
    }
    eb_flat_free(f);
    eb_ftrie_free(t);
}

/* Checks doc[0..len) against jansson: accepted exactly when json_loadb()
 * accepts it, and then its string at "a" (or the top-level string, when
 * the document is one) is the same text. */
static void check_string_doc(eb_flat *f, const eb_ftrie *t, const char *text, size_t len)
{
    /* A heap copy of exactly len bytes: AddressSanitizer sees any read past
     * the end of the text. */
    char *doc = malloc(len ? len : 1);
    json_t *j, *want;
    bool ok;
    const struct eb_fval *got;

    assert_non_null(doc);
    memcpy(doc, text, len);
    j = json_loadb(doc, len, JSON_DECODE_ANY, NULL);
    ok = eb_flatten_json(f, t, doc, len);

    if (ok != (j != NULL))
        fail_msg("%.*s: jansson %s, flattener %s", (int)len, doc, j ? "accepts" : "refuses",
                 ok ? "accepts" : "refuses");
    if (j == NULL) {
        free(doc);
        return;
    }
    want = json_is_object(j) ? json_object_get(j, "a") : j;
    got = &f->vals[0];
    if (got->kind == EB_FV_OBJECT)
        got = want != NULL ? &f->vals[f->kids[got->first]] : NULL;
    if (want != NULL && json_is_string(want)) {
        assert_non_null(got);
        assert_int_equal(got->kind, EB_FV_STRING);
        if (got->len != json_string_length(want) ||
            memcmp(got->s, json_string_value(want), got->len) != 0)
            fail_msg("%.*s: string differs", (int)len, doc);
    }
    json_decref(j);
    free(doc);
}

/* Whitespace runs longer than a byte are skipped 16 bytes at a time. Runs
 * of 0 to 40 bytes of mixed blanks at every place JSON allows them, the
 * last one running to the end of the text, and the same runs with a form
 * feed (not JSON whitespace) at each of their offsets, read as jansson
 * reads them. */
static void test_whitespace_runs(void **state)
{
    static const char blanks[] = " \t\n\r";
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();

    (void)state;
    eb_ftrie_add(t, EB_FTRIE_ROOT, "a", 1);
    for (size_t n = 0; n <= 40; n++) {
        for (size_t bad = 0; bad <= n; bad++) {
            char ws[48], doc[1024];
            int len;

            for (size_t i = 0; i < n; i++)
                ws[i] = blanks[(i * 7 + n) % 4];
            if (bad < n)
                ws[bad] = '\f';
            ws[n] = '\0';
            len = snprintf(doc, sizeof doc,
                           "%s{%s\"a\"%s:%s\"v\"%s,%s\"b\"%s:%s[%s1%s,%strue%s]%s}%s", ws, ws,
                           ws, ws, ws, ws, ws, ws, ws, ws, ws, ws, ws, ws);
            check_string_doc(f, t, doc, (size_t)len);
            len = snprintf(doc, sizeof doc, "%s\"a%sb\"%s", ws, ws, ws);
            check_string_doc(f, t, doc, (size_t)len);
        }
    }
    eb_flat_free(f);
    eb_ftrie_free(t);
}

/* Strings are read 16 bytes at a time (8 without SSE2), with the common
 * case inline. Every kind of special byte or escape, at every offset of
 * strings of 0 to 40 bytes, as a kept value, a member name and a value off
 * the trie, and as a top-level string that ends at the end of the text
 * (where fewer than 16 bytes remain), must read as jansson reads it. */
static void test_string_offsets(void **state)
{
    static const char *const specials[] = {
        "\\n",     "\\\"",    "\\\\",       "\\/",  "\\u00e9", "\\ud83d\\ude00",
        "\xc3\xa9", "\xf0\x9f\x98\x80", "\x7f", "\x01",   "\x1f",     "\xff",
        "\xc3",     "\xed\xa0\x80", "\\x", "\\u0000", "\\ud83d",  "\\u12",
        "\t",
    };
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();

    (void)state;
    eb_ftrie_add(t, EB_FTRIE_ROOT, "a", 1);
    for (size_t sp = 0; sp < sizeof specials / sizeof specials[0]; sp++) {
        for (size_t n = 0; n <= 40; n++) {
            for (size_t at = 0; at <= n; at++) {
                char text[96], doc[160];
                size_t o = 0, len;

                memset(text, 'x', at);
                o = at;
                o += (size_t)sprintf(text + o, "%s", specials[sp]);
                memset(text + o, 'y', n - at);
                o += n - at;
                text[o] = '\0';
                len = (size_t)snprintf(doc, sizeof doc, "{\"a\":\"%s\",\"b\":1}", text);
                check_string_doc(f, t, doc, len);
                len = (size_t)snprintf(doc, sizeof doc, "{\"%s\":1}", text);
                check_string_doc(f, t, doc, len);
                len = (size_t)snprintf(doc, sizeof doc, "{\"z\":\"%s\",\"a\":\"k\"}", text);
                check_string_doc(f, t, doc, len);
                len = (size_t)snprintf(doc, sizeof doc, "\"%s\"", text);
                check_string_doc(f, t, doc, len);
                /* Unterminated, running into the end of the text. */
                check_string_doc(f, t, doc, len - 1);
            }
        }
    }
    eb_flat_free(f);
    eb_ftrie_free(t);
}

/* Nesting up to jansson's limit of 2048 parses; one more level does not,
 * and then the data shows as a string. */
static void test_depth_limit(void **state)
{
    struct set s = { 0 };

    (void)state;
    probe_set(&s);
    for (int depth = 2046; depth <= 2050; depth++) {
        for (int inner = 0; inner < 2; inner++) {
            /* {"a":[[[...[1]...]]]} with depth values in all. */
            size_t n = (size_t)depth - 2 - (size_t)inner;
            char *doc = malloc(2 * n + 32), *p = doc;
            ce_event *ev = event_new();

            assert_non_null(doc);
            p += sprintf(p, "{\"a\":");
            memset(p, '[', n);
            p += n;
            p += sprintf(p, inner ? "{}" : "1");
            memset(p, ']', n);
            p += n;
            strcpy(p, "}");
            ev->data_case = DATA(TEXT_DATA);
            ev->text_data = doc;
            check(&s, ev, "depth");
            event_free(ev);
        }
    }
    set_free(&s);
}

static void test_attributes(void **state)
{
    struct set s = { 0 };
    ce_event *ev;
    ce_value *v;
    static const uint8_t bytes[] = { 0, 1 };

    (void)state;
    probe_set(&s);

    /* Kinds, duplicates (the last one wins), reserved names, unset values. */
    ev = event_new();
    attr_string(ev, "x", "1");
    v = attr_add(ev, "x");
    v->attr_case = ATTR(CE_INTEGER);
    v->ce_integer = 1;
    attr_add(ev, "x"); /* unset: left out, does not replace */
    attr_string(ev, "data", "shadow");
    attr_string(ev, "source", "/evil");
    attr_string(ev, "specversion", "9");
    v = attr_add(ev, "bin");
    v->attr_case = ATTR(CE_BYTES);
    v->ce_bytes.data = malloc(2);
    memcpy(v->ce_bytes.data, bytes, 2);
    v->ce_bytes.len = 2;
    v = attr_add(ev, "t");
    v->attr_case = ATTR(CE_TIMESTAMP);
    v->ce_timestamp = calloc(1, sizeof *v->ce_timestamp);
    google__protobuf__timestamp__init(v->ce_timestamp);
    v->ce_timestamp->seconds = 1714564800;
    v->ce_timestamp->nanos = 123000000;
    set_text(ev, "{\"a\":1}");
    assert_true(check(&s, ev, "attribute kinds") > 0);
    event_free(ev);

    /* A boolean, a URI, an unrepresentable timestamp, text that is not
     * UTF-8 (shown as U+FFFD), NULL strings. */
    ev = event_new();
    v = attr_add(ev, "x");
    v->attr_case = ATTR(CE_BOOLEAN);
    v->ce_boolean = true;
    v = attr_add(ev, "t");
    v->attr_case = ATTR(CE_TIMESTAMP);
    v->ce_timestamp = calloc(1, sizeof *v->ce_timestamp);
    google__protobuf__timestamp__init(v->ce_timestamp);
    v->ce_timestamp->seconds = INT64_MAX;
    check(&s, ev, "boolean attribute, bad timestamp");
    event_free(ev);

    ev = event_new();
    attr_string(ev, "x", "\xff\xfe");
    free(ev->id);
    ev->id = NULL;
    check(&s, ev, "not UTF-8, NULL id");
    event_free(ev);

    ev = event_new();
    v = attr_add(ev, "x");
    v->attr_case = ATTR(CE_URI);
    v->ce_uri = xstrdup("1");
    v = attr_add(ev, "datacontenttype");
    v->attr_case = ATTR(CE_INTEGER); /* not a string: data is JSON */
    attr_string(ev, "datacontenttype", "text/plain");
    set_text(ev, "{\"a\":1}");
    check(&s, ev, "uri, odd content type");
    event_free(ev);
    set_free(&s);
}

static void test_data_kinds(void **state)
{
    struct set s = { 0 };
    ce_event *ev;
    static const char notutf8[] = "{\"a\":\"\xff\"}";

    (void)state;
    probe_set(&s);

    /* Text that is not UTF-8: data_base64 holds it. */
    ev = event_new();
    set_text(ev, notutf8);
    assert_true(check(&s, ev, "text not UTF-8") > 0);
    event_free(ev);

    /* Binary, not JSON: data_base64. Empty binary: data_base64 "". */
    ev = event_new();
    attr_string(ev, "datacontenttype", "application/octet-stream");
    set_binary(ev, "hi", 2);
    assert_true(check(&s, ev, "binary") > 0);
    event_free(ev);
    ev = event_new();
    set_binary(ev, "", 0);
    check(&s, ev, "empty binary");
    event_free(ev);

    /* Binary JSON with NUL bytes: json_loadb() skips one NUL right after a
     * number or a literal (it reads one byte past them and loses a NUL put
     * back) and refuses every other one. */
    {
        static const struct {
            const char *s;
            size_t len;
        } nuls[] = {
            { "{\"a\":1}\0", 8 },      { "0\0", 2 },
            { "{\"a\":1\0}", 8 },      { "{\"a\":1\0\0}", 9 },
            { "{\"a\":true\0}", 11 },  { "{\"a\":null\0 }", 12 },
            { "{\"a\":-1.5e1\0}", 13 }, { "{\"a\":\"x\"\0}", 10 },
            { "{\"a\"\0:1}", 8 },      { "{\"a\":[1\0,2\0]}", 14 },
            { "{\"a\":1 \0}", 9 },
        };

        for (size_t i = 0; i < sizeof nuls / sizeof nuls[0]; i++) {
            char what[32];

            ev = event_new();
            set_binary(ev, nuls[i].s, nuls[i].len);
            snprintf(what, sizeof what, "binary with NUL %zu", i);
            check(&s, ev, what);
            event_free(ev);
        }
    }

    /* proto_data. */
    ev = event_new();
    ev->data_case = DATA(PROTO_DATA);
    ev->proto_data = calloc(1, sizeof *ev->proto_data);
    google__protobuf__any__init(ev->proto_data);
    ev->proto_data->type_url = xstrdup("type.googleapis.com/x");
    ev->proto_data->value.data = malloc(3);
    memcpy(ev->proto_data->value.data, "abc", 3);
    ev->proto_data->value.len = 3;
    assert_true(check(&s, ev, "proto data") > 0);
    event_free(ev);

    /* No data at all. */
    ev = event_new();
    assert_true(check(&s, ev, "no data") > 0);
    event_free(ev);
    set_free(&s);
}

/* ---- Random events and pattern sets ----------------------------------------- */

static uint32_t rnd(uint64_t *st, uint32_t n)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*st >> 33) % n;
}

struct buf {
    char s[8192];
    size_t len;
};

static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, sizeof b->s - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n < sizeof b->s - b->len ? (size_t)n : sizeof b->s - b->len - 1;
}

static const char *const keys[] = { "a", "b", "c", "items", "sku", "n", "A", "\\u0061" };
static const char *const strs[] = { "\"x\"", "\"xy\"", "\"Foo\"", "\"foo\"", "\"10.1.2.3\"",
                                    "\"\xc3\xa9\"", "\"\\u0078\"", "\"\"", "\"sku-1\"" };
static const char *const nums[] = { "0", "-0", "1", "1.5", "5", "5.0", "1e2", "100", "-3",
                                    "7", "0.1" };

static void put_json(struct buf *b, uint64_t *st, int depth)
{
    switch (rnd(st, depth < 4 ? 9 : 5)) {
    case 0:
    case 1:
        put(b, "%s", strs[rnd(st, sizeof strs / sizeof strs[0])]);
        break;
    case 2:
    case 3:
        put(b, "%s", nums[rnd(st, sizeof nums / sizeof nums[0])]);
        break;
    case 4:
        put(b, "%s", rnd(st, 3) == 0 ? "null" : rnd(st, 2) ? "true" : "false");
        break;
    case 5:
    case 6: {
        uint32_t n = rnd(st, 4);
        put(b, "[");
        for (uint32_t i = 0; i < n; i++) {
            put(b, "%s", i ? "," : "");
            put_json(b, st, depth + 1);
        }
        put(b, "]");
        break;
    }
    default: {
        uint32_t n = rnd(st, 5);
        put(b, "{");
        for (uint32_t i = 0; i < n; i++) {
            put(b, "%s\"%s\":", i ? "," : "", keys[rnd(st, sizeof keys / sizeof keys[0])]);
            put_json(b, st, depth + 1);
        }
        put(b, "}");
        break;
    }
    }
}

static const char *const paths[][3] = {
    { "a", NULL, NULL }, { "b", "c", NULL }, { "items", "sku", NULL }, { "b", "a", NULL },
    { "n", NULL, NULL }, { "A", NULL, NULL }, { "b", "c", "a" }, { "items", NULL, NULL },
};

static void put_cond(struct buf *b, uint64_t *st)
{
    switch (rnd(st, 13)) {
    case 0:
    case 1:
        put(b, "%s", strs[rnd(st, sizeof strs / sizeof strs[0])]);
        break;
    case 2:
        put(b, "%s", nums[rnd(st, sizeof nums / sizeof nums[0])]);
        break;
    case 3:
        put(b, "%s", rnd(st, 3) == 0 ? "null" : rnd(st, 2) ? "true" : "false");
        break;
    case 4:
        put(b, "{\"prefix\":\"%s\"}", rnd(st, 2) ? "f" : "sku");
        break;
    case 5:
        put(b, "{\"suffix\":\"%s\"}", rnd(st, 2) ? "o" : "y");
        break;
    case 6:
        put(b, "{\"equals-ignore-case\":\"FOO\"}");
        break;
    case 7:
        put(b, "{\"anything-but\":[%s]}", strs[rnd(st, sizeof strs / sizeof strs[0])]);
        break;
    case 8:
        put(b, "{\"exists\":%s}", rnd(st, 2) ? "true" : "false");
        break;
    case 9: {
        int lo = (int)rnd(st, 10) - 4;
        put(b, "{\"numeric\":[\">=\",%d,\"<\",%d]}", lo, lo + 1 + (int)rnd(st, 6));
        break;
    }
    case 10:
        put(b, "{\"cidr\":\"10.0.0.0/8\"}");
        break;
    case 11:
        put(b, "{\"wildcard\":\"*o\"}");
        break;
    default:
        put(b, "{\"anything-but\":{\"prefix\":\"x\"}}");
        break;
    }
}

/* A pattern on data: one to three paths, sometimes under an $or. */
static void put_pattern(struct buf *b, uint64_t *st)
{
    uint32_t n = 1 + rnd(st, 3);
    bool or = rnd(st, 5) == 0;

    put(b, or ? "{\"$or\":[" : "{");
    for (uint32_t i = 0; i < n; i++) {
        const char *const *p = paths[rnd(st, sizeof paths / sizeof paths[0])];
        int depth = 0;

        put(b, "%s%s\"data\":", i ? "," : "", or ? "{" : "");
        if (or || i == 0 || true) {
            for (; depth < 3 && p[depth] != NULL; depth++)
                put(b, "{\"%s\":", p[depth]);
        }
        put(b, "[");
        put_cond(b, st);
        if (rnd(st, 3) == 0) {
            put(b, ",");
            put_cond(b, st);
        }
        put(b, "]");
        for (int k = 0; k < depth; k++)
            put(b, "}");
        put(b, "%s", or ? "}" : "");
        if (!or)
            break; /* one "data" member per object */
    }
    put(b, or ? "]}" : "}");
}

/* Corrupts the document now and then: a byte changed, dropped or cut. */
static void mutate(struct buf *b, uint64_t *st)
{
    static const char bytes[] = "{}[],:\"\\ 0-.eu\xc3\xff";
    size_t at;

    if (b->len == 0 || rnd(st, 3) != 0)
        return;
    at = rnd(st, (uint32_t)b->len);
    switch (rnd(st, 3)) {
    case 0:
        b->s[at] = bytes[rnd(st, sizeof bytes - 1)];
        break;
    case 1:
        memmove(b->s + at, b->s + at + 1, b->len - at);
        b->len--;
        break;
    default:
        b->len = at;
        b->s[at] = '\0';
        break;
    }
}

/* Patterns the index decides alone (docs/decisions/0009): nested objects
 * with several fields (whose fields must come from one array element), open
 * and closed numeric bounds, exact values of every kind. */
static const char *const exact_patterns[] = {
    "{\"data\":[{\"exists\":true}]}",
    "{}",
    "{\"data\":{\"b\":{\"c\":[\"x\"],\"a\":[1]}}}",
    "{\"data\":{\"b\":{\"c\":[\"x\",\"foo\"],\"a\":[{\"numeric\":[\">\",0]}]}}}",
    "{\"data\":{\"a\":[1],\"b\":{\"c\":[\"x\"]}}}",
    "{\"data\":{\"items\":{\"sku\":[\"x\"],\"n\":[5]}}}",
    "{\"data\":{\"items\":{\"sku\":[{\"prefix\":\"sku\"}]}}}",
    "{\"data\":{\"b\":{\"c\":{\"a\":[\"x\"]},\"a\":[\"foo\"]}}}",
    "{\"data\":{\"b\":{\"c\":{\"a\":[\"x\"],\"c\":[true]}}}}",
    "{\"data\":{\"a\":[{\"numeric\":[\">\",0,\"<\",5]}]}}",
    "{\"data\":{\"a\":[{\"numeric\":[\">=\",1,\"<=\",5]}]}}",
    "{\"data\":{\"a\":[{\"numeric\":[\"=\",5]}]}}",
    "{\"data\":{\"a\":[{\"numeric\":[\"<\",0]}]}}",
    "{\"data\":{\"a\":[{\"numeric\":[\">\",1.5]}]}}",
    "{\"data\":{\"n\":[1.5],\"A\":[\"x\"]}}",
    "{\"data\":{\"n\":[null],\"A\":[false]}}",
    "{\"data\":{\"A\":[{\"equals-ignore-case\":\"FOO\"}],\"c\":[{\"suffix\":\"o\"}]}}",
    "{\"data\":{\"A\":[{\"wildcard\":\"foo\"}],\"a\":[{\"prefix\":{\"equals-ignore-case\":\"F\"}}]}}",
    "{\"type\":[\"com.example.order.created\"],\"data\":{\"a\":[\"x\"]}}",
};

static void test_random(void **state)
{
    uint64_t st = 0xf1a77e4ULL;
    size_t events = 0, hits = 0;

    (void)state;
    for (int round = 0; round < 40; round++) {
        struct set s = { 0 };
        uint32_t n = 1 + rnd(&st, 60);

        for (uint32_t i = 0; i < n; i++) {
            struct buf b = { .len = 0 };
            char err[256];

            put_pattern(&b, &st);
            if (eb_pattern_compile(b.s, b.len, &s.pats[s.n], err, sizeof err) == EB_OK)
                s.n++;
        }
        for (size_t i = 0; i < sizeof exact_patterns / sizeof exact_patterns[0]; i++)
            set_add(&s, exact_patterns[i]);
        set_build(&s);
        for (int e = 0; e < 250; e++) {
            struct buf b = { .len = 0 };
            ce_event *ev = event_new();

            put_json(&b, &st, rnd(&st, 4) == 0 ? 2 : 4);
            mutate(&b, &st);
            if (rnd(&st, 2))
                set_text(ev, b.s);
            else
                set_binary(ev, b.s, b.len);
            hits += check(&s, ev, b.s);
            event_free(ev);
            events++;
        }
        set_free(&s);
    }
    /* The generator must produce matches, or the comparison proves little. */
    assert_true(hits > events / 4);
}

/* Groups shared by 1,024 patterns or more are left out of the index
 * (docs/decisions/0007); the patterns the index decides then check those
 * leaves alone, or fall back to full evaluation when an array is in the way. */
static void test_dropped_groups(void **state)
{
    uint64_t st = 0xd209ULL;
    struct set *s = calloc(1, sizeof *s);
    size_t hits = 0;

    (void)state;
    assert_non_null(s);
    for (int i = 0; i < 3300; i++) {
        char text[256];

        switch (i % 3) {
        case 0:
            snprintf(text, sizeof text, "{\"data\":{\"b\":{\"c\":[\"x\"]},\"a\":[%d]}}", i % 7);
            break;
        case 1:
            snprintf(text, sizeof text,
                     "{\"data\":{\"items\":{\"sku\":[\"x\",\"foo\"]},\"n\":[%d]}}", i % 9);
            break;
        default:
            snprintf(text, sizeof text,
                     "{\"specversion\":[\"1.0\"],\"data\":{\"A\":[\"x\"],\"b\":{\"a\":[%d]}}}",
                     i % 5);
            break;
        }
        set_add(s, text);
    }
    set_build(s);
    for (int e = 0; e < 3000; e++) {
        struct buf b = { .len = 0 };
        ce_event *ev = event_new();

        put_json(&b, &st, 4);
        if (e % 2 == 0) {
            /* Often the shape the patterns want. */
            static const char *const shapes[] = {
                "{\"b\":{\"c\":\"x\",\"a\":1},\"a\":1,\"A\":\"x\",\"n\":1,"
                "\"items\":{\"sku\":\"foo\"}}",
                "{\"b\":[{\"c\":\"x\"},{\"a\":2}],\"a\":2,\"A\":[\"x\"],\"n\":2,"
                "\"items\":[{\"sku\":\"x\"},1]}",
                "{\"b\":{\"c\":[\"y\",\"x\"],\"a\":[0,3]},\"a\":3,\"A\":\"y\",\"n\":[4,2],"
                "\"items\":{\"sku\":[\"x\"]}}",
                "{\"b\":{\"c\":\"y\"},\"a\":1,\"A\":\"x\",\"b\":{\"c\":\"x\",\"a\":4}}",
            };
            b.len = (size_t)snprintf(b.s, sizeof b.s, "%s", shapes[rnd(&st, 4)]);
        }
        set_text(ev, b.s);
        hits += check(s, ev, b.s);
        event_free(ev);
    }
    assert_true(hits > 1000);
    set_free(s);
    free(s);
}

/* When every pattern needs something of the attributes, the stored-bytes
 * path looks at the attributes first and reads the data only if they leave
 * some pattern possible. Each pattern alone (the gate applies), and all of
 * them in one matcher, must still match as the jansson path does: data
 * that is JSON, that is not (then "data" is a string), binary, or absent. */
static void test_attributes_first(void **state)
{
    static const char *const pats[] = {
        "{\"type\":[\"com.example.order.created\"],\"data\":{\"a\":[{\"numeric\":[\">\",0]}]}}",
        "{\"x\":[{\"numeric\":[\">\",5]}],\"data\":{\"k\":[\"v\"]}}",
        "{\"x\":[{\"numeric\":[\">\",5]}],\"type\":[\"com.example.order.created\"]}",
        "{\"source\":[{\"prefix\":\"/shop/\"}],\"data\":[{\"exists\":true}]}",
        "{\"type\":[{\"suffix\":\".created\"}],\"data\":[{\"prefix\":\"not\"}]}",
        "{\"type\":[\"com.example.order.created\"],\"data_base64\":[{\"exists\":true}]}",
        "{\"$or\":[{\"type\":[\"a\"]},{\"data\":{\"a\":[1]}}]}",
        "{\"type\":[{\"anything-but\":\"zzz\"}],\"data\":{\"a\":[1]}}",
        "{\"type\":[\"com.example.order.created\"]}",
        "{\"x\":[7],\"data\":{\"a\":[{\"numeric\":[\"<\",0]}],\"k\":[\"v\"]}}",
        "{\"data\":{\"k\":[\"v\"]},\"type\":[\"com.example.order.created\"]}",
        "{\"source\":[\"/shop/eu/orders\"],\"type\":[\"com.example.order.created\"]}",
    };
    static const char *const datas[] = { "{\"a\":1,\"k\":\"v\"}", "{\"a\":-1,\"k\":\"v\"}",
                                         "not json", "[1,2]", NULL };
    static const char *const types[] = { "com.example.order.created", "a", "zzz" };
    size_t npats = sizeof pats / sizeof pats[0], hits = 0;

    (void)state;
    for (size_t p = 0; p <= npats; p++) {
        struct set *s = calloc(1, sizeof *s);

        assert_non_null(s);
        /* p < npats: pattern p alone; then all of them. */
        for (size_t i = 0; i < npats; i++)
            if (p == npats || i == p)
                set_add(s, pats[i]);
        set_build(s);
        for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
            for (size_t d = 0; d < sizeof datas / sizeof datas[0]; d++) {
                for (int x = 0; x < 3; x++) {
                    ce_event *ev = event_new();
                    char what[128];

                    free(ev->type);
                    ev->type = xstrdup(types[t]);
                    if (x > 0) {
                        ce_value *v = attr_add(ev, "x");

                        v->attr_case = ATTR(CE_INTEGER);
                        v->ce_integer = x == 1 ? 3 : 7;
                    }
                    if (datas[d] != NULL && d % 2 == 0)
                        set_text(ev, datas[d]);
                    else if (datas[d] != NULL)
                        set_binary(ev, datas[d], strlen(datas[d]));
                    if (datas[d] != NULL)
                        attr_string(ev, "datacontenttype", "application/json");
                    snprintf(what, sizeof what, "pattern set %zu, type %zu, data %zu, x %d", p,
                             t, d, x);
                    hits += check(s, ev, what);
                    event_free(ev);
                }
            }
        }
        set_free(s);
        free(s);
    }
    assert_true(hits > 50);
}

/* Stored bytes in encodings the direct reader leaves to protobuf-c (fields
 * given twice, as when two messages are concatenated; unknown fields;
 * groups) and damaged ones (flipped bytes, cut short). */
static void test_stored_wire(void **state)
{
    uint64_t st = 0x3171eULL;
    struct set s = { 0 };

    (void)state;
    probe_set(&s);
    {
        /* Plain encodings take the direct reader; doubled ones do not. */
        ce_event *ev = event_new();
        eb_ftrie *t = eb_ftrie_new();
        eb_flat *f = eb_flat_new();
        size_t len;
        uint8_t *body;

        attr_string(ev, "x", "1");
        set_text(ev, "{\"a\":1}");
        len = io__cloudevents__v1__cloud_event__get_packed_size(ev);
        body = malloc(2 * len);
        assert_non_null(body);
        io__cloudevents__v1__cloud_event__pack(ev, body);
        memcpy(body + len, body, len);
        eb_ftrie_add(t, EB_FTRIE_ROOT, "x", 1);
        assert_int_equal(eb_flatten_stored(f, t, body, len), EB_FLAT_OK);
        assert_int_equal(f->vals[0].n, 1);
        assert_int_equal(eb_flatten_stored(f, t, body, 2 * len), EB_FLAT_UNUSUAL);
        free(body);
        eb_flat_free(f);
        eb_ftrie_free(t);
        event_free(ev);
    }
    for (int e = 0; e < 3000; e++) {
        struct buf b = { .len = 0 };
        ce_event *ev = event_new();
        ce_value *v;
        size_t len, total;
        uint8_t *body;

        put_json(&b, &st, 3);
        set_text(ev, b.s);
        if (rnd(&st, 2))
            attr_string(ev, "x", rnd(&st, 2) ? "1" : "\xff");
        if (rnd(&st, 3) == 0) {
            v = attr_add(ev, "t");
            v->attr_case = ATTR(CE_TIMESTAMP);
            v->ce_timestamp = calloc(1, sizeof *v->ce_timestamp);
            google__protobuf__timestamp__init(v->ce_timestamp);
            v->ce_timestamp->seconds = 1714564800 + (int64_t)rnd(&st, 1000);
        }
        if (rnd(&st, 3) == 0)
            attr_string(ev, "datacontenttype", rnd(&st, 2) ? "text/plain" : "application/json");
        len = io__cloudevents__v1__cloud_event__get_packed_size(ev);
        body = malloc(2 * len + 16);
        assert_non_null(body);
        io__cloudevents__v1__cloud_event__pack(ev, body);
        total = len;
        switch (rnd(&st, 6)) {
        case 0: /* two messages in a row: protobuf merges them */
            memcpy(body + len, body, len);
            total = 2 * len;
            break;
        case 1: /* an unknown varint field 15, then an unknown 8-byte one */
            memcpy(body + len, "\x78\x05\x81\x01\x01\x02\x03\x04\x05\x06\x07\x08", 12);
            total = len + 12;
            break;
        case 2: /* a group */
            memcpy(body + len, "\x7b\x7c", 2);
            total = len + 2;
            break;
        case 3: /* a flipped byte */
            if (len > 0)
                body[rnd(&st, (uint32_t)len)] ^= (uint8_t)(1u << rnd(&st, 8));
            break;
        case 4: /* cut short */
            total = rnd(&st, (uint32_t)len + 1);
            break;
        default:
            break;
        }
        check_bytes(&s, body, total, "wire variant");
        free(body);
        event_free(ev);
    }
    set_free(&s);
}

/* Returns the string kept at top-level member node of f; fails when none. */
static const struct eb_fval *top_string(const eb_flat *f, uint32_t node)
{
    for (size_t k = 0; k < f->vals[0].n; k++) {
        const struct eb_fval *v = &f->vals[f->kids[f->vals[0].first + k]];

        if (v->node == node) {
            assert_int_equal(v->kind, EB_FV_STRING);
            return v;
        }
    }
    fail_msg("member %u not kept", node);
    return NULL;
}

/* Appends a length-delimited field (tag, length, bytes) to buf at *o. */
static void put_field(uint8_t *buf, size_t *o, uint8_t tag, const void *data, size_t len)
{
    assert_true(len < 128);
    buf[(*o)++] = tag;
    buf[(*o)++] = (uint8_t)len;
    memcpy(buf + *o, data, len);
    *o += len;
}

/* Stored strings end at their first NUL, as protobuf-c's C strings do; the
 * reader looks for it 16 bytes at a time while 16 bytes of the body remain.
 * A NUL at every offset of strings of 0 to 80 bytes, in the type, in an
 * attribute's name and value and in the data, each as the last field of a
 * body allocated to its exact size, reads as protobuf-c decodes it. */
static void test_stored_nul(void **state)
{
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();
    uint32_t type = eb_ftrie_add(t, EB_FTRIE_ROOT, "type", 4);
    uint32_t subj = eb_ftrie_add(t, EB_FTRIE_ROOT, "subject", 7);
    uint32_t data = eb_ftrie_add(t, EB_FTRIE_ROOT, "data", 4);

    (void)state;
    for (size_t n = 0; n <= 80; n++) {
        for (size_t at = 0; at <= n; at++) {
            for (int where = 0; where < 4; where++) {
                uint8_t text[96], key[104], value[128], entry[256], *body;
                size_t o = 0, vo = 0, eo = 0;
                uint8_t buf[512];
                ce_event *ref;
                const struct eb_fval *v;

                memset(text, 'a' + (int)(n % 26), n);
                if (at < n)
                    text[at] = '\0';
                put_field(buf, &o, 0x0a, "1", 1);       /* id */
                put_field(buf, &o, 0x12, "/s", 2);      /* source */
                put_field(buf, &o, 0x1a, "1.0", 3);     /* spec_version */
                if (where != 0)
                    put_field(buf, &o, 0x22, "t", 1);   /* type */
                put_field(value, &vo, 0x1a, where == 1 ? text : (const uint8_t *)"v",
                          where == 1 ? n : 1);          /* ce_string */
                memcpy(key, "subject", 7);
                memcpy(key + 7, text, n);
                put_field(entry, &eo, 0x0a, key, where == 2 ? 7 + n : 7); /* key */
                put_field(entry, &eo, 0x12, value, vo); /* value */
                put_field(buf, &o, 0x2a, entry, eo);    /* attributes */
                if (where == 0)
                    put_field(buf, &o, 0x22, text, n);
                if (where == 3)
                    put_field(buf, &o, 0x3a, text, n); /* text_data */
                body = malloc(o);
                assert_non_null(body);
                memcpy(body, buf, o);
                ref = io__cloudevents__v1__cloud_event__unpack(NULL, o, body);
                assert_non_null(ref);
                assert_int_equal(eb_flatten_stored(f, t, body, o), EB_FLAT_OK);
                switch (where) {
                case 0:
                    v = top_string(f, type);
                    assert_int_equal(v->len, strlen(ref->type));
                    break;
                case 1:
                    v = top_string(f, subj);
                    assert_int_equal(v->len, strlen(ref->attributes[0]->value->ce_string));
                    break;
                case 2:
                    /* "subject" and text: the name is "subject" when the
                     * NUL is text's first byte. */
                    assert_int_equal(f->vals[0].n == 2,
                                     strcmp(ref->attributes[0]->key, "subject") == 0);
                    break;
                default:
                    v = top_string(f, data);
                    assert_int_equal(v->len, strlen(ref->text_data));
                    break;
                }
                io__cloudevents__v1__cloud_event__free_unpacked(ref, NULL);
                free(body);
            }
        }
    }
    eb_flat_free(f);
    eb_ftrie_free(t);
}

/* The flattened view keeps only what lies on the trie, and reuses its
 * buffers: a second event of the same size allocates nothing new. */
static void test_view_shape(void **state)
{
    eb_ftrie *t = eb_ftrie_new();
    eb_flat *f = eb_flat_new();
    uint32_t b = eb_ftrie_add(t, EB_FTRIE_ROOT, "b", 1);
    const char *doc = "{\"a\":{\"deep\":[1,2,3]},\"b\":{\"c\":1,\"z\":2},\"b\":[\"s\\u0041\"]}";
    const struct eb_fval *root, *v;
    size_t capvals;

    (void)state;
    assert_true(eb_flatten_json(f, t, doc, strlen(doc)));
    root = &f->vals[0];
    assert_int_equal(root->kind, EB_FV_OBJECT);
    assert_int_equal(root->n, 1); /* only "b", the last one */
    v = &f->vals[f->kids[root->first]];
    assert_int_equal(v->node, b);
    assert_int_equal(v->kind, EB_FV_ARRAY);
    assert_int_equal(v->n, 1);
    v = &f->vals[f->kids[v->first]];
    assert_int_equal(v->kind, EB_FV_STRING);
    assert_int_equal(v->len, 2);
    assert_memory_equal(v->s, "sA", 2);
    capvals = f->capvals;
    assert_true(eb_flatten_json(f, t, doc, strlen(doc)));
    assert_int_equal(f->capvals, capvals);
    assert_false(eb_flatten_json(f, t, "{\"b\":", 5));
    assert_int_equal(f->nvals, 0);
    eb_flat_free(f);
    eb_ftrie_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_documents),
        cmocka_unit_test(test_numbers_exact),
        cmocka_unit_test(test_numbers_strtod),
        cmocka_unit_test(test_member_names),
        cmocka_unit_test(test_trie_children),
        cmocka_unit_test(test_string_offsets),
        cmocka_unit_test(test_whitespace_runs),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_data_kinds),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_dropped_groups),
        cmocka_unit_test(test_attributes_first),
        cmocka_unit_test(test_stored_wire),
        cmocka_unit_test(test_stored_nul),
        cmocka_unit_test(test_view_shape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
