/* libFuzzer driver for the pattern compiler and matcher: the input's first
 * line is a pattern, the rest an event JSON; compile, and when both parse,
 * match and explain. Any crash, leak or sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "pattern.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    size_t plen = nl ? (size_t)(nl - text) : size;
    eb_pattern *p = NULL;
    char err[256], reason[256];

    if (eb_pattern_compile(text, plen, &p, err, sizeof err) != EB_OK)
        return 0;
    if (nl) {
        json_t *ev = json_loadb(nl + 1, size - plen - 1, JSON_DECODE_ANY, NULL);
        if (ev) {
            bool m = eb_pattern_match(p, ev);
            bool e = eb_pattern_explain(p, ev, reason, sizeof reason);
            if (m != e)
                __builtin_trap(); /* explain must agree with match */
            json_decref(ev);
        }
    }
    eb_pattern_free(p);
    return 0;
}
