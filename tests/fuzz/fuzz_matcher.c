/* libFuzzer driver for the multi-pattern matcher: every line of the input
 * but the last is a pattern (up to 64; lines that do not compile are
 * skipped), the last line an event JSON. The matcher must return exactly
 * the ids of the patterns that eb_pattern_match() accepts one by one, on
 * the jansson view (eb_matcher_match) and on the flattened text
 * (eb_matcher_match_view: leaf tests, nested keys, guards); any
 * difference, crash, leak or sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pattern.h"

#define MAX_PATTERNS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *end = text + size, *last;
    eb_pattern *pats[MAX_PATTERNS];
    size_t npat = 0;
    eb_matcher *m;
    eb_matcher_scratch *sc;
    json_t *ev;
    const uint32_t *ids;
    size_t n;
    bool want[MAX_PATTERNS] = { false }, got[MAX_PATTERNS] = { false };
    bool flat[MAX_PATTERNS] = { false };

    /* The event is after the last newline. */
    last = text;
    for (const char *p = text; p < end; p++)
        if (*p == '\n')
            last = p + 1;
    for (const char *line = text; line < last && npat < MAX_PATTERNS;) {
        const char *nl = memchr(line, '\n', (size_t)(last - line));
        size_t len = (size_t)(nl - line);
        char err[256];

        if (eb_pattern_compile(line, len, &pats[npat], err, sizeof err) == EB_OK)
            npat++;
        line = nl + 1;
    }
    ev = json_loadb(last, (size_t)(end - last), JSON_DECODE_ANY, NULL);
    m = eb_matcher_new();
    for (size_t i = 0; i < npat; i++)
        eb_matcher_add(m, pats[i], (uint32_t)i);
    eb_matcher_build(m);
    sc = eb_matcher_scratch_new(m);
    if (ev != NULL) {
        n = eb_matcher_match(m, ev, sc, &ids);
        for (size_t k = 0; k < n; k++) {
            if (ids[k] >= npat || got[ids[k]])
                __builtin_trap(); /* an unknown id, or one reported twice */
            got[ids[k]] = true;
        }
        for (size_t i = 0; i < npat; i++) {
            want[i] = eb_pattern_match(pats[i], ev);
            if (want[i] != got[i])
                __builtin_trap(); /* the matcher disagrees with the pattern */
        }
    }
    /* The flattened path accepts exactly the text json_loadb() does. */
    if (eb_matcher_match_view(m, last, (size_t)(end - last), sc, &ids, &n) != (ev != NULL))
        __builtin_trap();
    if (ev != NULL) {
        for (size_t k = 0; k < n; k++) {
            if (ids[k] >= npat || flat[ids[k]])
                __builtin_trap();
            flat[ids[k]] = true;
        }
        for (size_t i = 0; i < npat; i++)
            if (want[i] != flat[i])
                __builtin_trap(); /* the flattened path disagrees */
        json_decref(ev);
    }
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    for (size_t i = 0; i < npat; i++)
        eb_pattern_free(pats[i]);
    return 0;
}
