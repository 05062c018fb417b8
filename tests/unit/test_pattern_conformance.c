/* The event pattern conformance suite: runs every case of
 * tests/unit/pattern_conformance.txt (its format is described at the top of
 * that file) through eb_pattern_compile(), eb_pattern_match() and
 * eb_pattern_explain(), and through an eb_matcher that holds the case's
 * pattern among decoys, so that the indexed matcher is held to the same
 * table, by every path an event takes into it: the jansson view, the
 * flattened view text and, for ce- cases, the decoded CloudEvent and its
 * stored protobuf bytes (server/flatten.h). A failing case is reported with
 * the file:line of the case.
 *
 * The case file parser refuses a malformed file with its file:line rather
 * than skipping what it does not understand, and the suite fails when the
 * file holds fewer cases than the minimums below, so that a truncated or
 * misread file cannot pass by running nothing.
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
#include "pattern.h"

#ifndef CEBUS_CONFORMANCE_FILE
#error "CEBUS_CONFORMANCE_FILE must name the case file (set by CMakeLists.txt)"
#endif

/* Fewer cases than these in the file is a failure (the file holds more). */
#define MIN_MATCH_CASES    300
#define MIN_NO_MATCH_CASES 300
#define MIN_REASON_CASES   50
#define MIN_INVALID_CASES  100
#define MIN_PATTERNS       150 /* "pattern" lines that compile, for test_cross */

/* A case file larger than this is refused. */
#define MAX_FILE_BYTES (1024 * 1024)

enum case_kind { CASE_MATCH, CASE_NO_MATCH, CASE_INVALID };

struct conf_case {
    enum case_kind kind;
    int line;         /* line of the event (match, no-match) or of "invalid" */
    int pattern_line; /* line of the pattern */
    const char *pattern; /* borrowed from the file's pattern list */
    json_t *event;       /* the JSON view matched; NULL for CASE_INVALID */
    bool cloudevent;     /* ce-match, ce-no-match: event is a CloudEvent's view */
    char *expect;        /* reason (may be NULL) or compile error; owned */
};

struct conf_file {
    const char *name; /* borrowed */
    struct conf_case *cases;
    size_t ncases, capcases;
    char **patterns; /* the text of every "pattern" and "invalid" line, owned */
    size_t npatterns, cappatterns;
    size_t nmatch, nno_match, nreason, ninvalid;
};

/* One directive of the file: its keyword and its text, continuation lines
 * joined. */
struct directive {
    char keyword[16];
    char *text; /* owned */
    int line;
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    *cap = *cap ? *cap * 2 : 64;
    if (*cap < need)
        *cap = need;
    p = realloc(p, *cap * size);
    assert_non_null(p);
    return p;
}

static void conf_free(struct conf_file *f)
{
    for (size_t i = 0; i < f->ncases; i++) {
        json_decref(f->cases[i].event);
        free(f->cases[i].expect);
    }
    for (size_t i = 0; i < f->npatterns; i++)
        free(f->patterns[i]);
    free(f->cases);
    free(f->patterns);
    memset(f, 0, sizeof *f);
}

static const char *add_pattern(struct conf_file *f, const char *text)
{
    f->patterns = grow(f->patterns, &f->cappatterns, f->npatterns + 1, sizeof *f->patterns);
    f->patterns[f->npatterns] = strdup(text);
    assert_non_null(f->patterns[f->npatterns]);
    return f->patterns[f->npatterns++];
}

static struct conf_case *add_case(struct conf_file *f)
{
    struct conf_case *c;

    f->cases = grow(f->cases, &f->capcases, f->ncases + 1, sizeof *f->cases);
    c = &f->cases[f->ncases++];
    memset(c, 0, sizeof *c);
    return c;
}

/* Splits text into directives. A line whose first character is a space or
 * a tab continues the directive above it; blank lines and lines starting
 * with '#' are skipped. Returns the number of directives in *out (free each
 * text and the array), or -1 with "name:line: why" in err. */
static int split_directives(const char *name, const char *text, struct directive **out,
                            size_t *nout, char *err, size_t errlen)
{
    struct directive *d = NULL;
    size_t n = 0, cap = 0;
    int lineno = 0, rc = -1;
    bool open = false; /* the last line was a directive or its continuation */
    const char *p = text;

    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *next = eol ? eol + 1 : p + len;

        lineno++;
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r'))
            len--;
        if (memchr(p, '\r', len) != NULL) {
            snprintf(err, errlen, "%s:%d: carriage return inside a line", name, lineno);
            goto out;
        }
        if (len == 0 || p[0] == '#') {
            open = false;
        } else if (p[0] == ' ' || p[0] == '\t') {
            size_t skip = 0, old;

            if (!open) {
                snprintf(err, errlen, "%s:%d: indented line does not continue a directive",
                         name, lineno);
                goto out;
            }
            while (p[skip] == ' ' || p[skip] == '\t')
                skip++;
            old = strlen(d[n - 1].text);
            d[n - 1].text = realloc(d[n - 1].text, old + 1 + (len - skip) + 1);
            assert_non_null(d[n - 1].text);
            d[n - 1].text[old] = ' ';
            memcpy(d[n - 1].text + old + 1, p + skip, len - skip);
            d[n - 1].text[old + 1 + len - skip] = '\0';
        } else {
            size_t k = 0, skip;

            while (k < len && p[k] != ' ' && p[k] != '\t')
                k++;
            if (k >= sizeof d->keyword) {
                snprintf(err, errlen, "%s:%d: unknown keyword \"%.*s\"", name, lineno,
                         (int)(k > 40 ? 40 : k), p);
                goto out;
            }
            d = grow(d, &cap, n + 1, sizeof *d);
            memcpy(d[n].keyword, p, k);
            d[n].keyword[k] = '\0';
            skip = k;
            while (skip < len && (p[skip] == ' ' || p[skip] == '\t'))
                skip++;
            d[n].text = strndup(p + skip, len - skip);
            assert_non_null(d[n].text);
            d[n].line = lineno;
            n++;
            open = true;
        }
        p = next;
    }
    rc = 0;
out:
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(d[i].text);
        free(d);
        return -1;
    }
    *out = d;
    *nout = n;
    return 0;
}

/* Returns the JSON view of the event text: the text itself (JSON) or, when
 * as_cloudevent, the view cebusd matches for that structured CloudEvent
 * (ce_from_json() then ce_to_json(), as for a published event). Returns
 * NULL with the reason in err when the text is not such an event. */
static json_t *event_view(const char *text, bool as_cloudevent, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *obj = json_loads(text, JSON_DECODE_ANY, &jerr);
    Io__Cloudevents__V1__CloudEvent *ce = NULL;
    json_t *view;

    if (obj == NULL) {
        snprintf(err, errlen, "event is not JSON: %s (column %d)", jerr.text, jerr.column);
        return NULL;
    }
    if (!as_cloudevent)
        return obj;
    if (ce_from_json(obj, &ce, err, errlen) != 0) {
        json_decref(obj);
        return NULL;
    }
    view = ce_to_json(ce);
    io__cloudevents__v1__cloud_event__free_unpacked(ce, NULL);
    json_decref(obj);
    return view;
}

static bool is_event_keyword(const char *k, bool *want, bool *as_cloudevent)
{
    static const struct {
        const char *keyword;
        bool want, as_cloudevent;
    } kinds[] = {
        { "match", true, false },
        { "no-match", false, false },
        { "ce-match", true, true },
        { "ce-no-match", false, true },
    };

    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(k, kinds[i].keyword) == 0) {
            *want = kinds[i].want;
            *as_cloudevent = kinds[i].as_cloudevent;
            return true;
        }
    }
    return false;
}

/* Parses a case file held in text (name is used in messages). Returns 0 and
 * fills *f (free with conf_free()), or -1 with "name:line: why" in err and
 * *f empty. */
static int conf_parse(const char *name, const char *text, struct conf_file *f, char *err,
                      size_t errlen)
{
    struct directive *d = NULL;
    size_t n = 0;
    const char *pattern = NULL; /* the pattern that event lines apply to */
    int pattern_line = 0;
    size_t pattern_cases = 0;
    int rc = -1;

    memset(f, 0, sizeof *f);
    f->name = name;
    if (split_directives(name, text, &d, &n, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *k = d[i].keyword;
        const char *prev = i > 0 ? d[i - 1].keyword : "";
        int line = d[i].line;
        bool want, as_cloudevent;

        if (strcmp(prev, "invalid") == 0 && strcmp(k, "error") != 0) {
            snprintf(err, errlen, "%s:%d: \"invalid\" must be followed by \"error\"", name,
                     d[i - 1].line);
            goto out;
        }
        if (strcmp(k, "pattern") == 0 || strcmp(k, "invalid") == 0) {
            if (pattern != NULL && pattern_cases == 0) {
                snprintf(err, errlen, "%s:%d: pattern has no match or no-match line", name,
                         pattern_line);
                goto out;
            }
            if (strcmp(k, "pattern") == 0 && d[i].text[0] == '\0') {
                snprintf(err, errlen, "%s:%d: \"pattern\" needs a pattern", name, line);
                goto out;
            }
            pattern = NULL;
            if (strcmp(k, "pattern") == 0) {
                pattern = add_pattern(f, d[i].text);
                pattern_line = line;
                pattern_cases = 0;
            } else {
                struct conf_case *c = add_case(f);

                c->kind = CASE_INVALID;
                c->line = c->pattern_line = line;
                c->pattern = add_pattern(f, d[i].text);
                f->ninvalid++;
            }
        } else if (is_event_keyword(k, &want, &as_cloudevent)) {
            struct conf_case *c;
            char why[256];
            json_t *ev;

            if (pattern == NULL) {
                snprintf(err, errlen, "%s:%d: \"%s\" without a pattern above it", name, line, k);
                goto out;
            }
            ev = event_view(d[i].text, as_cloudevent, why, sizeof why);
            if (ev == NULL) {
                snprintf(err, errlen, "%s:%d: %s", name, line, why);
                goto out;
            }
            c = add_case(f);
            c->kind = want ? CASE_MATCH : CASE_NO_MATCH;
            c->line = line;
            c->pattern_line = pattern_line;
            c->pattern = pattern;
            c->event = ev;
            c->cloudevent = as_cloudevent;
            pattern_cases++;
            if (want)
                f->nmatch++;
            else
                f->nno_match++;
        } else if (strcmp(k, "reason") == 0 || strcmp(k, "error") == 0) {
            bool is_reason = k[0] == 'r';
            struct conf_case *c = f->ncases > 0 ? &f->cases[f->ncases - 1] : NULL;
            bool follows = is_reason ? strstr(prev, "no-match") != NULL
                                     : strcmp(prev, "invalid") == 0;

            if (!follows || c == NULL) {
                snprintf(err, errlen, "%s:%d: \"%s\" must follow %s", name, line, k,
                         is_reason ? "a no-match line" : "an invalid line");
                goto out;
            }
            if (d[i].text[0] == '\0') {
                snprintf(err, errlen, "%s:%d: \"%s\" needs a message", name, line, k);
                goto out;
            }
            c->expect = strdup(d[i].text);
            assert_non_null(c->expect);
            if (is_reason)
                f->nreason++;
        } else {
            snprintf(err, errlen, "%s:%d: unknown keyword \"%s\"", name, line, k);
            goto out;
        }
    }
    if (n > 0 && strcmp(d[n - 1].keyword, "invalid") == 0) {
        snprintf(err, errlen, "%s:%d: \"invalid\" must be followed by \"error\"", name,
                 d[n - 1].line);
        goto out;
    }
    if (pattern != NULL && pattern_cases == 0) {
        snprintf(err, errlen, "%s:%d: pattern has no match or no-match line", name,
                 pattern_line);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(d[i].text);
    free(d);
    if (rc != 0)
        conf_free(f);
    return rc;
}

/* Returns the contents of path, NUL-terminated; fails the test when the
 * file cannot be read, is empty, too large or holds a NUL byte. */
static char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    size_t len;

    if (fp == NULL)
        print_error("cannot open %s\n", path);
    assert_non_null(fp);
    buf = malloc(MAX_FILE_BYTES + 1);
    assert_non_null(buf);
    len = fread(buf, 1, MAX_FILE_BYTES + 1, fp);
    assert_int_equal(ferror(fp), 0);
    fclose(fp);
    assert_true(len > 0 && len <= MAX_FILE_BYTES);
    assert_null(memchr(buf, '\0', len));
    buf[len] = '\0';
    return buf;
}

static void load(struct conf_file *f)
{
    char *text = read_file(CEBUS_CONFORMANCE_FILE);
    char err[512];

    int rc = conf_parse(CEBUS_CONFORMANCE_FILE, text, f, err, sizeof err);

    free(text);
    if (rc != 0) {
        print_error("%s\n", err);
        fail();
    }
}

static eb_pattern *compile_text(const char *text, char *err, size_t errlen)
{
    eb_pattern *p = NULL;

    if (eb_pattern_compile(text, strlen(text), &p, err, errlen) != EB_OK)
        return NULL;
    return p;
}

/* Patterns that sit in the matcher beside each case's pattern: they share
 * field names and kinds of condition with the cases, so the case's pattern
 * is found through posting lists, prefix lengths and range trees that hold
 * other entries too, and each decoy is itself checked on every event. */
static const char *const decoys[] = {
    "{\"source\":[\"b\",\"/shop\"],\"type\":[{\"prefix\":\"com.\"}]}",
    "{\"source\":[{\"prefix\":\"/s\"}],\"s\":[{\"suffix\":\"z\"}]}",
    "{\"s\":[{\"prefix\":{\"equals-ignore-case\":\"AB\"}}]}",
    "{\"s\":[{\"wildcard\":\"a*c\"}],\"n\":[{\"numeric\":[\">=\",10,\"<\",20]}]}",
    "{\"n\":[{\"numeric\":[\"<\",0]}]}",
    "{\"n\":[5,\"5\"],\"x\":[\"a\",1,null]}",
    "{\"data\":{\"x\":[2],\"total\":[{\"numeric\":[\">\",1]}]}}",
    "{\"$or\":[{\"ip\":[{\"cidr\":\"10.0.0.0/8\"}]},{\"b\":[true]}]}",
    "{\"type\":[{\"equals-ignore-case\":\"T\"}],\"s\":[{\"anything-but\":\"q\"}]}",
    "{\"x\":[{\"exists\":false}]}",
    "{}",
};
#define NDECOYS (sizeof decoys / sizeof decoys[0])

/* The matcher's answers by the paths cebusd has: the jansson view, the
 * flattened event from the view's text and, for a CloudEvent's view, from
 * the decoded CloudEvent and from its stored protobuf bytes. */
enum path { PATH_JSON, PATH_VIEW_TEXT, PATH_EVENT, PATH_STORED, PATHS };
static const char *const path_names[] = { "jansson view", "flattened view text",
                                          "flattened CloudEvent", "flattened stored bytes" };

/* Returns the matches of m on ev by path p, or SIZE_MAX when that path
 * does not apply to ev (not a CloudEvent's view). */
static size_t match_by(enum path p, const eb_matcher *m, eb_matcher_scratch *sc, const json_t *ev,
                       bool cloudevent, const uint32_t **ids)
{
    Io__Cloudevents__V1__CloudEvent *ce = NULL;
    char *text, err[256];
    size_t n = SIZE_MAX;

    switch (p) {
    case PATH_JSON:
        return eb_matcher_match(m, ev, sc, ids);
    case PATH_VIEW_TEXT:
        text = json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_non_null(text);
        assert_true(eb_matcher_match_view(m, text, strlen(text), sc, ids, &n));
        free(text);
        return n;
    default:
        if (!cloudevent)
            return SIZE_MAX;
        assert_int_equal(ce_from_json(ev, &ce, err, sizeof err), 0);
        if (p == PATH_EVENT) {
            n = eb_matcher_match_event(m, ce, sc, ids);
        } else {
            size_t len = io__cloudevents__v1__cloud_event__get_packed_size(ce);
            uint8_t *body = malloc(len ? len : 1);

            assert_non_null(body);
            io__cloudevents__v1__cloud_event__pack(ce, body);
            assert_true(eb_matcher_match_stored(m, body, len, sc, ids, &n));
            free(body);
        }
        io__cloudevents__v1__cloud_event__free_unpacked(ce, NULL);
        return n;
    }
}

/* Returns whether the matcher m (pattern under id 0, decoys[i] under i+1)
 * agrees with eb_pattern_match() on ev for every pattern it holds, by every
 * path that applies; prints the differences against where. */
static bool matcher_agrees(const eb_matcher *m, eb_matcher_scratch *sc, const eb_pattern *p,
                           eb_pattern *const *dp, const json_t *ev, bool cloudevent,
                           const char *where)
{
    bool ok = true;

    for (enum path path = 0; path < PATHS; path++) {
        bool found[NDECOYS + 1] = { false };
        const uint32_t *ids = NULL;
        size_t n = match_by(path, m, sc, ev, cloudevent, &ids);

        if (n == SIZE_MAX)
            continue;

        for (size_t i = 0; i < n; i++) {
            if (ids[i] > NDECOYS || found[ids[i]]) {
                print_error("%s: matcher (%s) returned id %u unexpectedly\n", where,
                            path_names[path], ids[i]);
                ok = false;
                continue;
            }
            found[ids[i]] = true;
        }
        for (size_t i = 0; i <= NDECOYS; i++) {
            bool want = eb_pattern_match(i == 0 ? p : dp[i - 1], ev);

            if (found[i] != want) {
                print_error("%s: the matcher (%s) %s %s where eb_pattern_match() %s\n", where,
                            path_names[path], found[i] ? "selects" : "misses",
                            i == 0 ? "the case's pattern" : decoys[i - 1],
                            want ? "matches" : "does not");
                ok = false;
            }
        }
    }
    return ok;
}

/* Runs one match or no-match case; returns whether it passed. */
static bool run_event_case(const struct conf_file *f, const struct conf_case *c,
                           eb_pattern *const *dp)
{
    char where[512], err[256], reason[512];
    bool want = c->kind == CASE_MATCH, ok = true, got, ex;
    eb_pattern *p;
    eb_matcher *m;
    eb_matcher_scratch *sc;

    snprintf(where, sizeof where, "%s:%d (pattern at line %d)", f->name, c->line,
             c->pattern_line);
    p = compile_text(c->pattern, err, sizeof err);
    if (p == NULL) {
        print_error("%s:%d: pattern does not compile: %s\n", f->name, c->pattern_line, err);
        return false;
    }
    got = eb_pattern_match(p, c->event);
    if (got != want) {
        print_error("%s: %s, want %s\n", where, got ? "matches" : "does not match",
                    want ? "match" : "no match");
        ok = false;
    }
    /* explain() agrees with match() and gives a reason exactly when the
     * event does not match: the one written in the file, if any. */
    ex = eb_pattern_explain(p, c->event, reason, sizeof reason);
    if (ex != got || (ex && reason[0] != '\0') || (!ex && reason[0] == '\0')) {
        print_error("%s: explain says %d (\"%s\") but match says %d\n", where, ex, reason, got);
        ok = false;
    } else if (!ex && c->expect != NULL && strcmp(reason, c->expect) != 0) {
        print_error("%s: reason \"%s\", want \"%s\"\n", where, reason, c->expect);
        ok = false;
    }
    m = eb_matcher_new();
    eb_matcher_add(m, p, 0);
    for (size_t i = 0; i < NDECOYS; i++)
        eb_matcher_add(m, dp[i], (uint32_t)(i + 1));
    eb_matcher_build(m);
    sc = eb_matcher_scratch_new(m);
    if (!matcher_agrees(m, sc, p, dp, c->event, c->cloudevent, where))
        ok = false;
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    eb_pattern_free(p);
    return ok;
}

/* Runs one invalid case; returns whether it passed. */
static bool run_invalid_case(const struct conf_file *f, const struct conf_case *c)
{
    eb_pattern *p = NULL;
    char err[512] = "untouched";
    eb_status st = eb_pattern_compile(c->pattern, strlen(c->pattern), &p, err, sizeof err);
    bool ok = st == EB_EINVAL && p == NULL && strcmp(err, c->expect) == 0;

    if (!ok)
        print_error("%s:%d: status %d, error \"%s\", want \"%s\"\n", f->name, c->line, st, err,
                    c->expect);
    eb_pattern_free(p);
    return ok;
}

static void test_conformance(void **state)
{
    struct conf_file f, counts;
    eb_pattern *dp[NDECOYS];
    size_t failures = 0;
    char err[256];

    (void)state;
    load(&f);
    print_message("%s: %zu match, %zu no-match (%zu with a reason), %zu invalid\n", f.name,
                  f.nmatch, f.nno_match, f.nreason, f.ninvalid);
    for (size_t i = 0; i < NDECOYS; i++) {
        dp[i] = compile_text(decoys[i], err, sizeof err);
        if (dp[i] == NULL)
            print_error("decoy %s: %s\n", decoys[i], err);
        assert_non_null(dp[i]);
    }
    for (size_t i = 0; i < f.ncases; i++) {
        const struct conf_case *c = &f.cases[i];
        bool ok = c->kind == CASE_INVALID ? run_invalid_case(&f, c) : run_event_case(&f, c, dp);

        failures += !ok;
    }
    for (size_t i = 0; i < NDECOYS; i++)
        eb_pattern_free(dp[i]);
    if (failures > 0)
        print_error("%zu of %zu cases failed\n", failures, f.ncases);
    counts = f;
    conf_free(&f);
    assert_int_equal(failures, 0);
    assert_true(counts.nmatch >= MIN_MATCH_CASES);
    assert_true(counts.nno_match >= MIN_NO_MATCH_CASES);
    assert_true(counts.nreason >= MIN_REASON_CASES);
    assert_true(counts.ninvalid >= MIN_INVALID_CASES);
}

/* One matcher over every valid pattern of the file, asked about every event
 * of the file: it must return exactly the patterns that match one by one. */
static void test_cross(void **state)
{
    struct conf_file f;
    eb_pattern **pats;
    uint8_t *want;
    size_t npats = 0, hits = 0, nevents = 0, failures = 0;
    eb_matcher *m;
    eb_matcher_scratch *sc;

    (void)state;
    load(&f);
    pats = calloc(f.npatterns + 1, sizeof *pats);
    want = calloc(f.npatterns + 1, 1);
    assert_true(pats != NULL && want != NULL);
    m = eb_matcher_new();
    for (size_t i = 0; i < f.npatterns; i++) {
        pats[i] = compile_text(f.patterns[i], NULL, 0);
        if (pats[i] != NULL) {
            eb_matcher_add(m, pats[i], (uint32_t)i);
            npats++;
        }
    }
    eb_matcher_build(m);
    sc = eb_matcher_scratch_new(m);
    for (size_t e = 0; e < f.ncases; e++) {
        const json_t *ev = f.cases[e].event;
        const uint32_t *ids = NULL;
        size_t n, nwant = 0;

        if (ev == NULL)
            continue;
        nevents++;
        for (size_t i = 0; i < f.npatterns; i++) {
            want[i] = pats[i] != NULL && eb_pattern_match(pats[i], ev);
            nwant += want[i];
        }
        for (enum path path = 0; path < PATHS; path++) {
            n = match_by(path, m, sc, ev, f.cases[e].cloudevent, &ids);
            if (n == SIZE_MAX)
                continue;
            for (size_t i = 0; i < f.npatterns; i++)
                want[i] = want[i] != 0;
            for (size_t k = 0; k < n; k++) {
                if (ids[k] >= f.npatterns || want[ids[k]] != 1) {
                    print_error("%s:%d: matcher selects a pattern that does not match, or "
                                "one pattern twice\n",
                                f.name, f.cases[e].line);
                    failures++;
                    continue;
                }
                want[ids[k]] = 2; /* found once */
            }
            for (size_t i = 0; i < f.npatterns; i++) {
                if (want[i] == 1) {
                    print_error("%s:%d: matcher (%s) misses the matching pattern %s\n", f.name,
                                f.cases[e].line, path_names[path], f.patterns[i]);
                    failures++;
                }
            }
        }
        hits += nwant;
    }
    print_message("%zu patterns x %zu events, %zu matches\n", npats, nevents, hits);
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    for (size_t i = 0; i < f.npatterns; i++)
        eb_pattern_free(pats[i]);
    free(pats);
    free(want);
    conf_free(&f);
    assert_int_equal(failures, 0);
    assert_true(npats >= MIN_PATTERNS);
}

/* Every prefix of every pattern of the file compiles or fails cleanly; run
 * under the sanitizers or valgrind this catches reads out of bounds. */
static void test_truncated_patterns(void **state)
{
    struct conf_file f;

    (void)state;
    load(&f);
    for (size_t i = 0; i < f.npatterns; i++) {
        const char *text = f.patterns[i];
        size_t len = strlen(text);

        for (size_t cut = 0; cut < len; cut++) {
            char *copy = malloc(cut + 1);
            eb_pattern *p = NULL;
            char err[64];
            eb_status st;

            assert_non_null(copy);
            memcpy(copy, text, cut); /* not terminated: only cut bytes may be read */
            st = eb_pattern_compile(copy, cut, &p, err, sizeof err);
            assert_true(st == EB_OK || st == EB_EINVAL);
            eb_pattern_free(p);
            free(copy);
        }
    }
    conf_free(&f);
}

/* The parser refuses malformed case files, naming the line. */
static void test_parser_refuses_malformed(void **state)
{
    static const struct {
        const char *text;
        const char *want; /* the start of the error, after "t:" */
    } bad[] = {
        { "match {}\n", "1: \"match\" without a pattern above it" },
        { "pattern {}\n", "1: pattern has no match or no-match line" },
        { "pattern {}\npattern {}\nmatch {}\n", "1: pattern has no match" },
        { "pattern {}\nmatches {}\n", "2: unknown keyword \"matches\"" },
        { "pattern {}\nMATCH {}\n", "2: unknown keyword \"MATCH\"" },
        { "pattern {}\nmatch {\n", "2: event is not JSON" },
        { "pattern {}\nmatch\n", "2: event is not JSON" },
        { "pattern {}\nce-match {\"id\":1}\n", "2: " },
        { "pattern\nmatch {}\n", "1: \"pattern\" needs a pattern" },
        { "pattern {}\nmatch {}\nreason x\n", "3: \"reason\" must follow a no-match line" },
        { "pattern {\"a\":[1]}\nno-match {}\nreason\n", "3: \"reason\" needs a message" },
        { "invalid {}\n", "1: \"invalid\" must be followed by \"error\"" },
        { "invalid {}\nmatch {}\n", "1: \"invalid\" must be followed by \"error\"" },
        { "invalid {}\nerror\n", "2: \"error\" needs a message" },
        { "error x\n", "1: \"error\" must follow an invalid line" },
        { "invalid {}\nerror x\nmatch {}\n", "3: \"match\" without a pattern above it" },
        { "  {}\n", "1: indented line does not continue a directive" },
        { "pattern {}\n# c\n  match {}\n", "3: indented line" },
        { "pattern {}\r\nmatch {}\r\n", "" /* accepted: CR LF endings */ },
        { "pattern {}\nmatch {}\rmatch {}\n", "2: carriage return inside a line" },
        { "averyveryverylongkeyword x\n", "1: unknown keyword" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct conf_file f;
        char err[256] = "";
        char want[128];
        int rc = conf_parse("t", bad[i].text, &f, err, sizeof err);

        if (bad[i].want[0] == '\0') {
            assert_int_equal(rc, 0);
            assert_int_equal(f.ncases, 1);
            conf_free(&f);
            continue;
        }
        snprintf(want, sizeof want, "t:%s", bad[i].want);
        if (rc != -1 || strncmp(err, want, strlen(want)) != 0)
            print_error("malformed file %zu: rc %d, error \"%s\", want \"%s...\"\n", i, rc, err,
                        want);
        assert_int_equal(rc, -1);
        assert_true(strncmp(err, want, strlen(want)) == 0);
        assert_int_equal(f.ncases, 0);
    }
}

/* A well-formed file is read as written: kinds, lines, continuations,
 * reasons and errors. */
static void test_parser_reads_cases(void **state)
{
    const char *text = "# comment\n"
                       "\n"
                       "pattern {\"a\":\n"
                       "          [1]}\n"
                       "match    {\"a\": 1}\n"
                       "no-match {\"a\": 2}\n"
                       "reason   a: expected 1, got 2\n"
                       "ce-no-match {\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
                       "\"type\":\"t\"}\n"
                       "invalid\n"
                       "error    pattern: invalid JSON\n";
    struct conf_file f;
    char err[256];

    (void)state;
    assert_int_equal(conf_parse("t", text, &f, err, sizeof err), 0);
    assert_int_equal(f.ncases, 4);
    assert_int_equal(f.nmatch, 1);
    assert_int_equal(f.nno_match, 2);
    assert_int_equal(f.nreason, 1);
    assert_int_equal(f.ninvalid, 1);
    assert_string_equal(f.cases[0].pattern, "{\"a\": [1]}");
    assert_int_equal(f.cases[0].pattern_line, 3);
    assert_int_equal(f.cases[0].line, 5);
    assert_int_equal(f.cases[1].kind, CASE_NO_MATCH);
    assert_string_equal(f.cases[1].expect, "a: expected 1, got 2");
    assert_null(f.cases[2].expect);
    assert_string_equal(json_string_value(json_object_get(f.cases[2].event, "source")), "/s");
    assert_int_equal(f.cases[3].kind, CASE_INVALID);
    assert_string_equal(f.cases[3].pattern, "");
    assert_string_equal(f.cases[3].expect, "pattern: invalid JSON");
    conf_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_refuses_malformed),
        cmocka_unit_test(test_parser_reads_cases),
        cmocka_unit_test(test_conformance),
        cmocka_unit_test(test_cross),
        cmocka_unit_test(test_truncated_patterns),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
