/* Event patterns: compile an EventBridge-style JSON pattern once, then match
 * it against the CloudEvents JSON view of events (see common/cejson.h).
 *
 * Pure: no I/O, no globals. A compiled pattern is immutable, so one pattern
 * may be matched from several threads at once.
 */
#ifndef EB_PATTERN_H
#define EB_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "status.h"

typedef struct eb_pattern eb_pattern;

/* Limits, enforced by eb_pattern_compile(). */
#define EB_PATTERN_MAX_BYTES  8192  /* pattern text */
#define EB_PATTERN_MAX_DEPTH  16    /* nesting of objects */
#define EB_PATTERN_MAX_VALUES 1024  /* values and operators in all */
#define EB_PATTERN_MAX_WILDCARDS 16 /* '*' in one wildcard; "**" is refused */

/* Compiles the JSON pattern text[0..len). An empty object "{}" matches every
 * event. On success returns EB_OK and sets *out (free with
 * eb_pattern_free()). On failure returns EB_EINVAL and writes into err a
 * message that names the JSON path of the offending part and the reason,
 * e.g. "data.amount[0]: numeric expects an operator then a number"; *out is
 * untouched. */
eb_status eb_pattern_compile(const char *text, size_t len, eb_pattern **out, char *err,
                             size_t errlen);

/* Returns whether event (a CloudEvents JSON object; borrowed) matches p. */
bool eb_pattern_match(const eb_pattern *p, const json_t *event);

/* Like eb_pattern_match(); when it does not match and reason is not NULL,
 * writes why into reason, naming the first field that failed
 * ("data.total: expected numeric > 1000, got 742"). */
bool eb_pattern_explain(const eb_pattern *p, const json_t *event, char *reason,
                        size_t reasonlen);

/* Frees p. NULL is allowed. */
void eb_pattern_free(eb_pattern *p);

#endif
