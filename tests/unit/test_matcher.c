/* Unit tests for server/matcher.c: a built eb_matcher must return exactly
 * the ids whose pattern eb_pattern_match() accepts, on the jansson view
 * (eb_matcher_match) and on the flattened event (eb_matcher_match_view, the
 * path of the index's leaf tests and exact decisions). Checked over randomized
 * pattern sets and events from a seeded generator, and on edge cases: empty
 * matcher, duplicates, $or, numbers by value, 10,000 patterns. Every pattern
 * of the conformance cases against every event of them is checked by
 * test_pattern_conformance.c.
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

static json_t *event_of(const char *s)
{
    char *text = json_of(s);
    json_t *ev = json_loads(text, JSON_DECODE_ANY, NULL);

    assert_non_null(ev);
    free(text);
    return ev;
}

static eb_pattern *pattern_of(const char *s)
{
    char *text = json_of(s);
    eb_pattern *p = NULL;
    char err[256];

    if (eb_pattern_compile(text, strlen(text), &p, err, sizeof err) != EB_OK)
        print_error("bad test pattern %s: %s\n", s, err);
    assert_non_null(p);
    free(text);
    return p;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A set of patterns under test, with the matcher over them: pattern i has
 * id ids[i] (i unless a test says otherwise). */
struct set {
    eb_pattern **pats;
    uint32_t *ids;
    size_t n;
    eb_matcher *m;
    eb_matcher_scratch *sc;
    uint32_t *want, *got; /* n each */
};

static void set_build(struct set *s)
{
    s->m = eb_matcher_new();
    for (size_t i = 0; i < s->n; i++)
        eb_matcher_add(s->m, s->pats[i], s->ids[i]);
    eb_matcher_build(s->m);
    assert_int_equal(eb_matcher_size(s->m), s->n);
    s->sc = eb_matcher_scratch_new(s->m);
    s->want = calloc(s->n + 1, sizeof *s->want);
    s->got = calloc(s->n + 1, sizeof *s->got);
    assert_true(s->want != NULL && s->got != NULL);
}

static void set_free(struct set *s)
{
    eb_matcher_scratch_free(s->sc);
    eb_matcher_free(s->m);
    for (size_t i = 0; i < s->n; i++)
        eb_pattern_free(s->pats[i]);
    free(s->pats);
    free(s->ids);
    free(s->want);
    free(s->got);
    memset(s, 0, sizeof *s);
}

/* Makes a set from pattern texts; pattern i gets id i. */
static void set_of_texts(struct set *s, const char *const *texts, size_t n)
{
    s->n = n;
    s->pats = calloc(n + 1, sizeof *s->pats);
    s->ids = calloc(n + 1, sizeof *s->ids);
    assert_true(s->pats != NULL && s->ids != NULL);
    for (size_t i = 0; i < n; i++) {
        s->pats[i] = pattern_of(texts[i]);
        s->ids[i] = (uint32_t)i;
    }
    set_build(s);
}

/* Fails the test unless ids[0..ngot) are the ids in s->want[0..nwant)
 * (sorted), in any order. how names the matcher's path. */
static void expect_ids(struct set *s, size_t nwant, const uint32_t *ids, size_t ngot,
                       const json_t *ev, const char *what, const char *how)
{
    assert_true(ngot <= s->n);
    memcpy(s->got, ids, ngot * sizeof *ids);
    qsort(s->got, ngot, sizeof *s->got, cmp_u32);
    if (ngot != nwant || memcmp(s->want, s->got, ngot * sizeof *ids) != 0) {
        char *dump = json_dumps(ev, JSON_ENCODE_ANY | JSON_COMPACT);
        print_error("%s: event %s: matcher (%s) found %zu, patterns one by one %zu\n", what,
                    dump, how, ngot, nwant);
        for (size_t i = 0; i < nwant || i < ngot; i++)
            print_error("  want %ld got %ld\n", i < nwant ? (long)s->want[i] : -1L,
                        i < ngot ? (long)s->got[i] : -1L);
        free(dump);
        fail();
    }
}

/* Compares the matcher, on the jansson view and on the flattened event,
 * with one eb_pattern_match() per pattern on ev. Returns the number of
 * matches; fails the test on any difference. */
static size_t check(struct set *s, const json_t *ev, const char *what)
{
    const uint32_t *ids = NULL;
    size_t nwant = 0, ngot;
    char *text;

    for (size_t i = 0; i < s->n; i++)
        if (eb_pattern_match(s->pats[i], ev))
            s->want[nwant++] = s->ids[i];
    qsort(s->want, nwant, sizeof *s->want, cmp_u32);
    ngot = eb_matcher_match(s->m, ev, s->sc, &ids);
    expect_ids(s, nwant, ids, ngot, ev, what, "jansson view");
    text = json_dumps(ev, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_non_null(text);
    assert_true(eb_matcher_match_view(s->m, text, strlen(text), s->sc, &ids, &ngot));
    expect_ids(s, nwant, ids, ngot, ev, what, "flattened");
    free(text);
    return nwant;
}

/* ---- Random patterns and events ------------------------------------------ */

static uint32_t next_rand(uint64_t *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*st >> 33);
}

#define RND(st, n) (next_rand(st) % (uint32_t)(n))

/* A small vocabulary, so that random patterns and events meet often. */
static const char *const words[] = { "a", "ab", "abc", "Abc", "ABC", "b", "ba", "order", "Order",
                                     "order.created", "order.paid", "x/y", "", "10.0.0.1",
                                     "10.1.2.3", "::1" };
static const char *const fields[] = { "type", "source", "n", "b" };
static const char *const nested[] = { "k", "m", "n" };
#define NWORDS (sizeof words / sizeof words[0])

struct buf {
    char s[2048];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b->s + b->len, sizeof b->s - b->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof b->s - b->len);
    b->len += (size_t)n;
}

static const char *word(uint64_t *st)
{
    return words[RND(st, NWORDS)];
}

static void put_number(struct buf *b, uint64_t *st)
{
    static const char *const nums[] = { "5", "5.0", "-0.0", "0", "7", "7.5", "1e3", "-3", "100" };
    put(b, "%s", nums[RND(st, sizeof nums / sizeof nums[0])]);
}

/* One match value or operator. */
static void put_cond(struct buf *b, uint64_t *st)
{
    static const char *const ops[] = { "=", "<", "<=", ">", ">=" };

    switch (RND(st, 16)) {
    case 0:
    case 1:
        put(b, "'%s'", word(st));
        break;
    case 2:
        put_number(b, st);
        break;
    case 3:
        put(b, "%s", RND(st, 3) == 0 ? "null" : RND(st, 2) ? "true" : "false");
        break;
    case 4:
        put(b, "{'prefix':'%s'}", word(st));
        break;
    case 5:
        put(b, "{'suffix':'%s'}", word(st));
        break;
    case 6:
        put(b, "{'equals-ignore-case':'%s'}", word(st));
        break;
    case 7:
        put(b, "{'%s':{'equals-ignore-case':'%s'}}", RND(st, 2) ? "prefix" : "suffix", word(st));
        break;
    case 8: {
        static const char *const wc[] = { "a*", "*c", "a*c", "*", "order*", "*d", "o*r*d",
                                          "abc", "x/*" };
        put(b, "{'wildcard':'%s'}", wc[RND(st, sizeof wc / sizeof wc[0])]);
        break;
    }
    case 9: {
        int lo = (int)RND(st, 12) - 4;
        put(b, "{'numeric':['%s',%d,'%s',%d]}", RND(st, 2) ? ">" : ">=", lo,
            RND(st, 2) ? "<" : "<=", lo + (int)RND(st, 8) + 1);
        break;
    }
    case 10:
        put(b, "{'numeric':['%s',", ops[RND(st, 5)]);
        put_number(b, st);
        put(b, "]}");
        break;
    case 11:
        put(b, "{'anything-but':'%s'}", word(st));
        break;
    case 12:
        put(b, "{'anything-but':{'prefix':'%s'}}", RND(st, 2) ? "a" : "order");
        break;
    case 13:
        put(b, "{'exists':%s}", RND(st, 2) ? "true" : "false");
        break;
    case 14:
        put(b, "{'cidr':'%s'}", RND(st, 2) ? "10.0.0.0/8" : "::1/128");
        break;
    default:
        put(b, "'%s'", word(st));
        break;
    }
}

static void put_leaf(struct buf *b, uint64_t *st)
{
    uint32_t n = 1 + RND(st, 3) / 2;

    put(b, "[");
    for (uint32_t i = 0; i < n; i++) {
        put(b, "%s", i ? "," : "");
        put_cond(b, st);
    }
    put(b, "]");
}

/* An object level of a pattern: 1 to 3 distinct fields, maybe nested, maybe
 * an $or of two such levels. */
static void put_node(struct buf *b, uint64_t *st, int depth)
{
    uint32_t mask = 0, n = 1 + RND(st, 3);

    put(b, "{");
    for (uint32_t i = 0; i < n; i++) {
        uint32_t f = RND(st, 6);

        if (mask & (1u << f))
            continue;
        put(b, "%s", mask ? "," : "");
        mask |= 1u << f;
        if (f < 4) {
            put(b, "'%s':", depth ? nested[f % 3] : fields[f]);
            put_leaf(b, st);
        } else if (f == 4 && depth < 2) {
            put(b, "'data':");
            put_node(b, st, depth + 1);
        } else if (depth < 2) {
            put(b, "'$or':[");
            put_node(b, st, depth + 1);
            put(b, ",");
            put_node(b, st, depth + 1);
            put(b, "]");
        } else {
            put(b, "'k':");
            put_leaf(b, st);
        }
    }
    put(b, "}");
}

static void put_value(struct buf *b, uint64_t *st, int depth)
{
    switch (RND(st, 8)) {
    case 0:
    case 1:
    case 2:
        put(b, "'%s'", word(st));
        break;
    case 3:
        put_number(b, st);
        break;
    case 4:
        put(b, "%s", RND(st, 3) == 0 ? "null" : RND(st, 2) ? "true" : "false");
        break;
    case 5:
        if (depth < 2) {
            uint32_t n = RND(st, 4);
            put(b, "[");
            for (uint32_t i = 0; i < n; i++) {
                put(b, "%s", i ? "," : "");
                put_value(b, st, depth + 1);
            }
            put(b, "]");
            break;
        }
        /* fall through */
    default:
        put(b, "'%s'", word(st));
        break;
    }
}

/* An event object: some of the fields, data nested, data sometimes an array
 * of objects. */
static void put_event_node(struct buf *b, uint64_t *st, int depth)
{
    const char *const *names = depth ? nested : fields;
    size_t nnames = depth ? 3 : 4;
    bool first = true;

    put(b, "{");
    for (size_t i = 0; i < nnames; i++) {
        if (RND(st, 3) == 0)
            continue;
        put(b, "%s'%s':", first ? "" : ",", names[i]);
        put_value(b, st, 0);
        first = false;
    }
    if (depth < 2 && RND(st, 3) != 0) {
        put(b, "%s'data':", first ? "" : ",");
        if (RND(st, 4) == 0) {
            put(b, "[");
            put_event_node(b, st, depth + 1);
            put(b, ",7,");
            put_event_node(b, st, depth + 1);
            put(b, "]");
        } else {
            put_event_node(b, st, depth + 1);
        }
    }
    put(b, "}");
}

/* Random pattern sets of 1 to 200 patterns, each checked against 100
 * random events: thousands of event/pattern-set combinations. */
static void test_random(void **state)
{
    uint64_t st = 0x5eed1234abcdULL;
    size_t combos = 0, hits = 0;

    (void)state;
    for (int round = 0; round < 60; round++) {
        struct set s = { 0 };
        size_t n = 1 + RND(&st, 200);

        s.n = n;
        s.pats = calloc(n, sizeof *s.pats);
        s.ids = calloc(n, sizeof *s.ids);
        assert_true(s.pats != NULL && s.ids != NULL);
        for (size_t i = 0; i < n; i++) {
            struct buf b = { .len = 0 };
            char *text, err[256];

            put_node(&b, &st, 0);
            text = json_of(b.s);
            /* Random patterns may be invalid (e.g. an empty numeric range);
             * such ones are replaced by a plain one. */
            if (eb_pattern_compile(text, strlen(text), &s.pats[i], err, sizeof err) != EB_OK)
                s.pats[i] = pattern_of("{'type':['a']}");
            free(text);
            s.ids[i] = (uint32_t)(1000 + i * 3); /* ids are the caller's */
        }
        set_build(&s);
        for (int e = 0; e < 100; e++) {
            struct buf b = { .len = 0 };
            json_t *ev;

            put_event_node(&b, &st, 0);
            ev = event_of(b.s);
            hits += check(&s, ev, b.s);
            json_decref(ev);
            combos++;
        }
        set_free(&s);
    }
    print_message("%zu random event/pattern-set combinations, %zu matches\n", combos, hits);
}

/* ---- Edge cases ------------------------------------------------------------- */

#define FILLERS 24

/* Checks every event against the patterns, then again with FILLERS more
 * patterns whose values of their own at the same paths (and under the
 * same first keys) put more keys in each index than a list holds
 * (LIST_KEYS in matcher_internal.h): both ways of finding a key, the
 * scanned list and the table, give the same matches. The fillers match
 * none of the events. */
static void check_texts(const char *const *pats, size_t npat, const char *const *evs,
                        size_t nev)
{
    char *fill[FILLERS], text[512];
    const char **all = calloc(npat + FILLERS, sizeof *all);

    assert_non_null(all);
    for (int round = 0; round < 2; round++) {
        struct set s = { 0 };
        size_t n = npat;

        memcpy(all, pats, npat * sizeof *pats);
        for (int k = 0; round == 1 && k < FILLERS; k++) {
            snprintf(text, sizeof text,
                     "{'type':['a','f%d'],'source':['f%d'],'subject':['f%d'],'ip':['f%d'],"
                     "'n':[%d.25],'id':[{'suffix':'f%d'}],'data':{'c':['f%d'],'k':['f%d'],"
                     "'n':[%d.25],'country':[{'equals-ignore-case':'f%d'}],'tier':['f%d']}}",
                     k, k, k, k, k, k, k, k, k, k, k);
            fill[k] = strdup(text);
            assert_non_null(fill[k]);
            all[n++] = fill[k];
        }
        set_of_texts(&s, all, n);
        for (size_t e = 0; e < nev; e++) {
            json_t *ev = event_of(evs[e]);
            check(&s, ev, evs[e]);
            json_decref(ev);
        }
        set_free(&s);
        for (int k = 0; round == 1 && k < FILLERS; k++)
            free(fill[k]);
    }
    free(all);
}

static void test_empty(void **state)
{
    eb_matcher *m = eb_matcher_new();
    eb_matcher_scratch *sc;
    const uint32_t *ids = NULL;
    json_t *ev = event_of("{'type':'a'}");

    (void)state;
    eb_matcher_build(m);
    sc = eb_matcher_scratch_new(m);
    assert_int_equal(eb_matcher_match(m, ev, sc, &ids), 0);
    assert_int_equal(eb_matcher_size(m), 0);
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    eb_matcher_free(NULL);
    eb_matcher_scratch_free(NULL);
    json_decref(ev);
}

/* The same pattern twice, and one pattern object under two ids. */
static void test_duplicates(void **state)
{
    eb_pattern *p = pattern_of("{'type':['a']}"), *q = pattern_of("{'type':['a']}");
    eb_matcher *m = eb_matcher_new();
    eb_matcher_scratch *sc;
    const uint32_t *ids = NULL;
    uint32_t got[4];
    json_t *ev = event_of("{'type':['a','a']}");
    size_t n;

    (void)state;
    eb_matcher_add(m, p, 7);
    eb_matcher_add(m, p, 9);
    eb_matcher_add(m, q, 8);
    eb_matcher_build(m);
    sc = eb_matcher_scratch_new(m);
    n = eb_matcher_match(m, ev, sc, &ids);
    assert_int_equal(n, 3);
    memcpy(got, ids, n * sizeof *ids);
    qsort(got, n, sizeof *got, cmp_u32);
    assert_int_equal(got[0], 7);
    assert_int_equal(got[1], 8);
    assert_int_equal(got[2], 9);
    /* Twice in a row: the dedupe stamps must not leak between events. */
    assert_int_equal(eb_matcher_match(m, ev, sc, &ids), 3);
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    eb_pattern_free(p);
    eb_pattern_free(q);
    json_decref(ev);
}

static void test_numbers_by_value(void **state)
{
    static const char *const pats[] = {
        "{'n':[5]}", "{'n':[5.0]}", "{'n':[0]}", "{'n':[-0.0]}", "{'n':[1e3]}",
        "{'n':[{'numeric':['=',5]}]}", "{'n':[{'numeric':['>',5]}]}",
        "{'n':[{'numeric':['>=',5,'<',5.5]}]}", "{'n':[{'numeric':['<',0]}]}",
        "{'n':['5']}",
    };
    static const char *const evs[] = {
        "{'n':5}", "{'n':5.0}", "{'n':0}", "{'n':-0.0}", "{'n':1000}", "{'n':5.25}",
        "{'n':'5'}", "{'n':[1,5.0]}", "{'n':-1e300}", "{'n':1e300}", "{'n':9007199254740993}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

static void test_arrays_and_nesting(void **state)
{
    static const char *const pats[] = {
        "{'data':{'items':{'sku':['A']}}}",
        "{'data':{'items':{'sku':['A'],'qty':[2]}}}",
        "{'data':{'a':{'b':{'c':[{'prefix':'x'}]}}}}",
        "{'data':{'items':{'sku':[{'exists':false}]}}}",
        "{'data':{'tags':['t']}}",
        "{'data':{'tags':[{'suffix':'z'}]}}",
    };
    static const char *const evs[] = {
        "{'data':{'items':[{'sku':'A','qty':1},{'sku':'B','qty':2}]}}",
        "{'data':{'items':[{'sku':'A','qty':2}]}}",
        "{'data':{'items':[[{'sku':'A'}]]}}",
        "{'data':{'items':{'sku':['B','A']}}}",
        "{'data':{'items':[]}}",
        "{'data':{'a':{'b':{'c':'xy'}}}}",
        "{'data':{'a':[{'b':[{'c':['q','xz']}]}]}}",
        "{'data':{'tags':[['t'],['yz']]}}",
        "{'data':{'tags':{'t':1}}}",
        "{'data':[1,2]}",
        "[1]",
        "'str'",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

static void test_or(void **state)
{
    static const char *const pats[] = {
        "{'$or':[{'type':['t']},{'source':['s']}]}",
        "{'$or':[{'type':['t']},{'source':[{'exists':false}]}]}",
        "{'type':['u'],'$or':[{'n':[{'numeric':['>',3]}]},{'source':[{'prefix':'s'}]}]}",
        "{'data':{'$or':[{'k':['1']},{'m':[{'equals-ignore-case':'AB'}]}]}}",
        "{}",
        "{'type':[{'anything-but':'t'}]}",
    };
    static const char *const evs[] = {
        "{'type':'t'}", "{'source':'s'}", "{}", "{'type':'u','n':4}", "{'type':'u','n':3}",
        "{'type':'u','source':'sx'}", "{'data':{'k':'1'}}", "{'data':{'m':'aB'}}",
        "{'data':[{'k':'2'},{'m':'ab'}]}", "{'type':'x','source':'q'}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* Leaves the index cannot decide are tested once per event and shared by
 * the patterns that have the same conditions at the same path; the same
 * conditions at another path, or other conditions at the same path, are
 * other tests. An array on the way to a tested leaf means the pattern is
 * evaluated in full. */
static void test_shared_leaf_tests(void **state)
{
    static const char *const pats[] = {
        "{'k':[{'anything-but':'a'}],'type':['x']}",
        "{'data':{'k':[{'anything-but':'a'}]},'type':['x']}",
        "{'k':[{'anything-but':'a'}],'type':['y']}",
        "{'k':[{'anything-but':['a','b']}],'type':['x']}",
        "{'k':[{'anything-but':['b','a']}],'type':['x']}",
        "{'k':[{'wildcard':'a*c'}],'source':['s']}",
        "{'k':[{'wildcard':'a*c'},{'anything-but':'a'}],'source':['s']}",
        "{'data':{'k':[{'exists':false}]},'type':['x']}",
        "{'data':{'k':[{'wildcard':'a*c'}],'m':['1']}}",
        "{'data':{'k':[{'anything-but':{'prefix':'a'}}]},'type':['x','y']}",
        "{'data':{'k':[{'anything-but':{'suffix':'a'}}]},'type':['x','y']}",
    };
    static const char *const evs[] = {
        "{'type':'x','k':'b','data':{'k':'a'}}",
        "{'type':'x','k':'a','data':{'k':'b'}}",
        "{'type':'y','k':'abc','source':'s'}",
        "{'type':'x','k':['a','b'],'source':'s'}",
        "{'type':'x','data':[{'k':'abc'},{'k':'a'}]}",
        "{'type':'x','data':[{'k':'abc','m':'2'},{'m':'1','k':'ac'}]}",
        "{'type':'x','data':{'m':'1','k':'abc'}}",
        "{'type':'x','data':'str'}",
        "{'type':'y','data':{'k':null}}",
        "{'type':'y','data':{'k':{'a':1}}}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* A numeric range next to one key of its pattern is stabbed only in events
 * that hit the key; several numbers at its path, or the key hit by several
 * values, must still give each pattern once. */
static void test_nested_ranges(void **state)
{
    static const char *const pats[] = {
        "{'type':['a'],'n':[{'numeric':['>',0]}]}",
        "{'type':['a'],'n':[{'numeric':['>',0]}]}",
        "{'type':['a','b'],'n':[{'numeric':['>',0,'<',10]}]}",
        "{'source':[{'prefix':'s'}],'n':[{'numeric':['>=',5]}],'b':[true]}",
        "{'data':{'k':['x'],'n':[{'numeric':['<',3]}]}}",
        "{'type':['a'],'n':[{'numeric':['>',1]}],'data':{'n':[{'numeric':['<',2]}]}}",
    };
    static const char *const evs[] = {
        "{'type':'a','n':[1,2]}",
        "{'type':['a','a'],'n':[[1],2,'x']}",
        "{'type':['a','b'],'n':5}",
        "{'type':'a','n':-1}",
        "{'source':['s1','s2'],'n':[4,5],'b':true}",
        "{'source':'s','n':5,'b':[false,true]}",
        "{'data':{'k':'x','n':[1,2]}}",
        "{'data':[{'k':'x','n':5},{'k':'y','n':1}]}",
        "{'type':'a','n':[0,3],'data':{'n':[1,7]}}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* An exact string next to another key of its pattern is looked up only in
 * events that hit that key, among the pairs of that key; several values at
 * either path must still give each pattern once. */
static void test_nested_keys(void **state)
{
    static const char *const pats[] = {
        "{'source':[{'prefix':'s'}],'type':['a']}",
        "{'source':[{'prefix':'s'}],'type':['b']}",
        "{'source':[{'prefix':'s'}],'type':['a'],'n':[1]}",
        "{'source':[{'prefix':'s'}],'type':['a']}",
        "{'type':['a'],'b':['x']}",
        "{'type':['a','b'],'b':['x']}",
        "{'data':{'k':['v']},'type':['a']}",
        "{'data':{'k':['v'],'m':['w']}}",
        "{'type':[{'equals-ignore-case':'A'}],'b':['x']}",
    };
    static const char *const evs[] = {
        "{'source':'s1','type':'a'}",
        "{'source':['s1','s2'],'type':['a','a','b']}",
        "{'source':'x','type':'a'}",
        "{'source':'s','type':'c','n':1}",
        "{'source':'s','type':'a','n':[2,1]}",
        "{'type':'a','b':['x','y']}",
        "{'type':'A','b':'x'}",
        "{'data':[{'k':'v'},{'k':'w'}],'type':'a'}",
        "{'data':{'k':'v','m':'w'},'type':['b','a']}",
        "{'data':[{'k':'v','m':'x'},{'k':'u','m':'w'}]}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* Chains: each required field of a pattern a step under the previous
 * one's key, with every key kind as a step (affixes, ignore-case, exists,
 * booleans, null, numbers), IN-lists (a key per value under the previous
 * step, a value of its own included), numeric ranges and exact numbers in
 * the last step, and events whose arrays hit several values of one step or
 * several steps at once. */
static void test_chains(void **state)
{
    static const char *const pats[] = {
        "{'type':['a','own-1'],'n':[{'numeric':['>',0,'<=',10]}]}",
        "{'type':['a','own-2'],'n':[{'numeric':['>',5,'<=',15]},42]}",
        "{'source':[{'prefix':'/shop/eu'}],'data':{'tier':['gold','silver','own-3'],"
        "'country':['DE']}}",
        "{'source':[{'prefix':'/shop/eu'}],'data':{'tier':['gold','own-4'],'country':['FR']}}",
        "{'source':[{'suffix':'/orders'}],'type':[{'prefix':'com.'}],'data':{'c':[{'anything-but':"
        "['EUR']}],'amount':[{'numeric':['>=',100,'<',200]},7.5]}}",
        "{'data':{'country':[{'equals-ignore-case':'de'}],'method':['express','own-5']},"
        "'type':['a']}",
        "{'data':{'region':[{'exists':true}],'priority':[1,2],'amount':[{'numeric':['<',50]}]}}",
        "{'id':[{'suffix':'7'}],'datacontenttype':['application/json','own-6'],"
        "'data':{'gift':[true]}}",
        "{'data':{'gift':[false],'none':[null],'type':['a']}}",
        "{'data':{'gift':[true]},'type':[{'equals-ignore-case':'A'}],'x':[{'prefix':'p'}]}",
        "{'type':['a'],'data':{'items':{'sku':['s1','s2'],'qty':[1]}}}",
        "{'type':['a','b','c'],'source':['s','t','u'],'subject':['x','y']}",
    };
    static const char *const evs[] = {
        "{'type':'a','n':5}",
        "{'type':'a','n':[5,12]}",
        "{'type':['own-1','a'],'n':42}",
        "{'type':'a','n':10.0}",
        "{'source':'/shop/eu-1','data':{'tier':'gold','country':'DE'}}",
        "{'source':'/shop/eu-1','data':{'tier':['silver','gold'],'country':['FR','DE']}}",
        "{'source':'/shop/us','data':{'tier':'gold','country':'DE'}}",
        "{'source':'/shop/eu/orders','type':'com.x','data':{'c':'USD','amount':150}}",
        "{'source':'/shop/eu/orders','type':'com.x','data':{'c':'EUR','amount':7.5}}",
        "{'source':'/shop/eu/orders','type':'com.x','data':{'c':'GBP','amount':[7.5,300]}}",
        "{'type':'a','data':{'country':'DE','method':'express'}}",
        "{'type':['a','b'],'data':{'country':['Fr','dE'],'method':['pickup','own-5']}}",
        "{'data':{'region':null,'priority':2,'amount':10}}",
        "{'data':{'region':{'x':1},'priority':2,'amount':10}}",
        "{'data':{'priority':[3,1],'region':'r','amount':[70,20]}}",
        "{'id':'x7','datacontenttype':'application/json','data':{'gift':true}}",
        "{'id':'x7','datacontenttype':'own-6','data':{'gift':[false,true]}}",
        "{'type':'a','data':{'gift':false,'none':null,'type':'a'}}",
        "{'type':'a','x':'pq','data':{'gift':true}}",
        "{'type':'a','data':{'items':[{'sku':'s1','qty':2},{'sku':'s3','qty':1}]}}",
        "{'type':'a','data':{'items':[{'sku':'s2','qty':1}]}}",
        "{'type':'c','source':'t','subject':'y'}",
        "{'type':['c','a'],'source':['u','x'],'subject':['z','x']}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* A wildcard with '*' is anchored by its longer literal end (or by any
 * value, for "*x*"), anything-but and cidr by any value; the index takes
 * such a posting only when the value that hit the anchor also satisfies
 * the condition, checked once per value for every pattern with the same
 * condition. Events here hit the anchors with values the conditions
 * refuse, in arrays next to values they accept, with nulls, objects and
 * numbers, and with the patterns' exact values. */
static void test_checked_conditions(void **state)
{
    static const char *const pats[] = {
        "{'subject':[{'wildcard':'order/*/item-7'},'own-1']}",
        "{'subject':[{'wildcard':'order/*/item-7'},'own-2']}",
        "{'subject':[{'wildcard':'order/*/item-7'}],'type':['a']}",
        "{'subject':[{'wildcard':'ord*/item-7'}]}",
        "{'subject':[{'wildcard':'order/*'},{'wildcard':'*-7'}],'type':['a','b']}",
        "{'subject':[{'wildcard':'*der*'}]}",
        "{'subject':[{'wildcard':'order/*/*-7'}],'data':{'n':[{'numeric':['>',1]}]}}",
        "{'data':{'k':[{'wildcard':'x*y'},'x']},'type':[{'prefix':'a'}]}",
        "{'data':{'c':[{'anything-but':['EUR','USD']}],'n':[{'numeric':['>',0]}]}}",
        "{'data':{'c':[{'anything-but':['EUR','USD']},'own-7']},'type':['a']}",
        "{'data':{'c':[{'anything-but':{'prefix':'E'}}]}}",
        "{'data':{'c':[{'anything-but':[1,2]}]}}",
        "{'ip':[{'cidr':'10.0.0.0/8'},'own-8'],'type':['a','b']}",
        "{'ip':[{'cidr':'2001:db8::/32'}]}",
    };
    static const char *const evs[] = {
        "{'subject':'order/12/item-7'}",
        "{'subject':'order-item-7'}",
        "{'subject':'ord/item-7'}",
        "{'subject':['xx/item-7','order/1/item-7'],'type':'a'}",
        "{'subject':['order/1/item-8','own-2'],'type':'b'}",
        "{'subject':'own-1'}",
        "{'subject':'order/1/x-7','data':{'n':[0,2]}}",
        "{'subject':'order/1/x-7','data':{'n':1}}",
        "{'subject':null,'type':'a'}",
        "{'subject':'der'}",
        "{'data':{'k':['xay','xz']},'type':'ab'}",
        "{'data':{'k':'x'},'type':'a'}",
        "{'data':{'k':'xa'},'type':'a'}",
        "{'data':{'c':'EUR','n':1},'type':'a'}",
        "{'data':{'c':['EUR','GBP'],'n':1},'type':'a'}",
        "{'data':{'c':['EUR','USD'],'n':1},'type':'a'}",
        "{'data':{'c':null,'n':1},'type':'a'}",
        "{'data':{'c':{'x':'GBP'},'n':1},'type':'a'}",
        "{'data':{'c':[1,3,'ELSE']}}",
        "{'data':{'c':'own-7'},'type':'a'}",
        "{'ip':'10.1.2.3','type':'a'}",
        "{'ip':['192.168.0.1','10.0.0.1'],'type':'b'}",
        "{'ip':'192.168.0.1','type':'a'}",
        "{'ip':['2001:db8::1',7,null]}",
        "{'ip':'own-8','type':'b'}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* Where chains stop: more paths under one key than a key takes, IN-lists
 * whose product passes what a chain copies, and more different checked
 * conditions (anything-but) at one path than an index lists, at the root
 * and under a key. The groups left out are matched as postings, with the
 * same result. */
static void test_chain_limits(void **state)
{
    struct set s = { 0 };
    size_t n = 0, hits = 0;
    uint64_t st = 7;

    (void)state;
    s.pats = calloc(240, sizeof *s.pats);
    s.ids = calloc(240, sizeof *s.ids);
    assert_true(s.pats != NULL && s.ids != NULL);
    /* 60 different paths under the key type = a. */
    for (int i = 0; i < 60; i++) {
        char text[256];

        snprintf(text, sizeof text, "{'type':['a'],'f%d':['v%d'],'g':['w']}", i, i % 3);
        s.pats[n] = pattern_of(text);
        s.ids[n] = (uint32_t)n;
        n++;
    }
    /* IN-lists of 5 and 5 and 3: more paths than a chain copies. */
    for (int i = 0; i < 40; i++) {
        char text[256];

        snprintf(text, sizeof text,
                 "{'a':['1','2','3','4','%d'],'b':['1','2','3','4','%d'],'c':['x','y','%d'],"
                 "'d':[{'numeric':['>',%d]}]}",
                 i, i + 1, i, i % 7);
        s.pats[n] = pattern_of(text);
        s.ids[n] = (uint32_t)n;
        n++;
    }
    /* 12 different anything-but at one path, under type = c and alone. */
    for (int i = 0; i < 24; i++) {
        char text[256];

        snprintf(text, sizeof text,
                 i < 12 ? "{'type':['c'],'k':[{'anything-but':['k%d','k%d']}]}"
                        : "{'kk':[{'anything-but':{'prefix':'k%d'}}],'z':['%d']}",
                 i % 12, (i + 1) % 12);
        s.pats[n] = pattern_of(text);
        s.ids[n] = (uint32_t)n;
        n++;
    }
    s.n = n;
    set_build(&s);
    for (int e = 0; e < 300; e++) {
        char text[512];
        json_t *ev;
        unsigned f = RND(&st, 64);

        snprintf(text, sizeof text,
                 "{'type':'%s','f%u':'v%u','g':['w','z'],'a':'%u','b':['%u','%u'],"
                 "'c':'%s','d':%u,'k':['k%u','k%u'],'kk':'k%u','z':'%u'}",
                 RND(&st, 4) ? "a" : RND(&st, 2) ? "b" : "c", f, RND(&st, 3), RND(&st, 45), RND(&st, 45),
                 RND(&st, 6), RND(&st, 3) ? "x" : "q", RND(&st, 9), RND(&st, 14),
                 RND(&st, 14), RND(&st, 14), RND(&st, 14));
        ev = event_of(text);
        hits += check(&s, ev, text);
        json_decref(ev);
    }
    print_message("chain limits: 124 patterns x 300 events, %zu matches\n", hits);
    set_free(&s);
}

/* A pattern whose nested objects have several fields each needs its fields
 * from one object at every level: an array at any of those levels (here
 * four, more than the matcher keeps in an entry) means full evaluation. */
static void test_deep_guards(void **state)
{
    static const char *const pats[] = {
        "{'data':{'v':[1],'a':{'w':[1],'b':{'z':[3],'c':{'x':[1],'y':[2]}}}}}",
        "{'data':{'v':[1],'a':{'w':[1],'b':{'z':[3],'c':{'x':[1],'y':[{'anything-but':1}]}}}}}",
    };
    static const char *const evs[] = {
        "{'data':{'v':1,'a':{'w':1,'b':{'z':3,'c':{'x':1,'y':2}}}}}",
        "{'data':{'v':1,'a':{'w':1,'b':{'z':3,'c':[{'x':1,'y':3},{'x':2,'y':2}]}}}}",
        "{'data':{'v':1,'a':{'w':1,'b':[{'z':3,'c':{'x':2}},{'z':4,'c':{'x':1,'y':2}}]}}}",
        "{'data':{'v':1,'a':[{'w':1,'b':{'z':4}},{'w':2,'b':{'z':3,'c':{'x':1,'y':2}}}]}}",
        "{'data':[{'v':1,'a':{'w':1,'b':{'z':3,'c':{'x':1,'y':2}}}},{'v':2}]}",
        "{'data':[{'v':2,'a':{'w':1,'b':{'z':3,'c':{'x':1,'y':2}}}},{'v':1}]}",
    };

    (void)state;
    check_texts(pats, sizeof pats / sizeof pats[0], evs, sizeof evs / sizeof evs[0]);
}

/* 10,000 patterns of mixed operators on a few paths; every event is still
 * checked against all of them one by one. */
static void test_ten_thousand(void **state)
{
    struct set s = { 0 };
    size_t n = 10000, hits = 0;
    uint64_t st = 42;

    (void)state;
    s.n = n;
    s.pats = calloc(n, sizeof *s.pats);
    s.ids = calloc(n, sizeof *s.ids);
    assert_true(s.pats != NULL && s.ids != NULL);
    for (size_t i = 0; i < n; i++) {
        char text[256];

        switch (i % 5) {
        case 0:
            snprintf(text, sizeof text, "{'type':['t%zu']}", i % 997);
            break;
        case 1:
            snprintf(text, sizeof text, "{'source':[{'prefix':'s%zu'}]}", i % 300);
            break;
        case 2:
            snprintf(text, sizeof text, "{'data':{'n':[{'numeric':['>=',%zu,'<',%zu]}]}}",
                     i % 1000, i % 1000 + 10);
            break;
        case 3:
            snprintf(text, sizeof text,
                     "{'subject':[{'equals-ignore-case':'SUB%zu'}],'type':[{'suffix':'%zu'}]}",
                     i % 50, i % 7);
            break;
        default:
            snprintf(text, sizeof text, "{'data':{'k':[{'anything-but':'k%zu'}]}}", i % 20);
            break;
        }
        s.pats[i] = pattern_of(text);
        s.ids[i] = (uint32_t)i;
    }
    set_build(&s);
    for (int e = 0; e < 200; e++) {
        char text[256];
        json_t *ev;

        snprintf(text, sizeof text,
                 "{'type':'t%u','source':'s%u/x','subject':'sub%u','data':{'n':%u.5,'k':'k%u'}}",
                 RND(&st, 1100), RND(&st, 400), RND(&st, 60), RND(&st, 1100), RND(&st, 25));
        ev = event_of(text);
        hits += check(&s, ev, text);
        json_decref(ev);
    }
    print_message("10000 patterns x 200 events, %zu matches\n", hits);
    set_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_numbers_by_value),
        cmocka_unit_test(test_arrays_and_nesting),
        cmocka_unit_test(test_or),
        cmocka_unit_test(test_shared_leaf_tests),
        cmocka_unit_test(test_deep_guards),
        cmocka_unit_test(test_nested_ranges),
        cmocka_unit_test(test_nested_keys),
        cmocka_unit_test(test_chains),
        cmocka_unit_test(test_chain_limits),
        cmocka_unit_test(test_checked_conditions),
        cmocka_unit_test(test_ten_thousand),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
