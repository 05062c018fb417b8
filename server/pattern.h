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
#include <stdint.h>

#include <jansson.h>

#include "cloudevents.pb-c.h"
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

/* ---- Many patterns at once ------------------------------------------------
 *
 * An eb_matcher answers "which of these N patterns match this event" without
 * evaluating all N: each pattern is indexed by its anchors, field paths and
 * conditions every match needs (exact values, equals-ignore-case, prefix,
 * suffix, the literal ends of a wildcard, numeric ranges), and only patterns
 * whose required anchors the event all hits, plus those without any anchor
 * (anything-but, "exists": false, cidr only; "{}"), are evaluated with
 * eb_pattern_match(). The result
 * is by definition exactly the set of ids whose pattern eb_pattern_match()
 * accepts. See docs/decisions/0007-matcher-index.md. The server's path,
 * eb_matcher_match_stored(), reads the event flattened along the patterns'
 * paths instead of a JSON document and lets the index decide the patterns
 * it describes exactly, with the same result
 * (docs/decisions/0012-flattened-matching.md): patterns written alike are
 * one entry, a numeric range or an exact string hangs under another key of
 * its pattern, and leaves
 * the index cannot decide are tests shared by the patterns that have them
 * (docs/decisions/0015-shared-index-state.md).
 *
 * Life cycle: eb_matcher_new(), eb_matcher_add() for each pattern,
 * eb_matcher_build() once, then eb_matcher_match() any number of times.
 * THREAD SAFETY: adding and building need exclusive access; a built matcher
 * is immutable and may be matched from several threads at once, each with
 * its own eb_matcher_scratch. */
typedef struct eb_matcher eb_matcher;

/* Per-thread working memory for eb_matcher_match(): candidate stamps and the
 * result ids, sized for one built matcher, so matching allocates nothing. */
typedef struct eb_matcher_scratch eb_matcher_scratch;

/* Returns a new, empty matcher; free with eb_matcher_free(). */
eb_matcher *eb_matcher_new(void);

/* Adds p under id. p is borrowed and must outlive m. Ids are the caller's;
 * an id added twice is reported once per addition that matches.
 * REQUIRES: m not built yet. */
void eb_matcher_add(eb_matcher *m, const eb_pattern *p, uint32_t id);

/* Freezes m and builds its index. REQUIRES: not built yet. */
void eb_matcher_build(eb_matcher *m);

/* Returns the number of patterns added to m. */
size_t eb_matcher_size(const eb_matcher *m);

/* Returns scratch memory for matching with m (built); free with
 * eb_matcher_scratch_free(). It may be used only with m. */
eb_matcher_scratch *eb_matcher_scratch_new(const eb_matcher *m);

/* Frees sc. NULL is allowed. */
void eb_matcher_scratch_free(eb_matcher_scratch *sc);

/* Matches event (a CloudEvents JSON view; borrowed) against every pattern
 * of m. Returns how many matched and points *ids at their ids, in no
 * particular order; the array lives in sc and is valid until sc's next use.
 * Allocates only while sc's buffers grow to the most values seen in one
 * event at paths where ranges or strings are nested under keys. REQUIRES:
 * m built; sc made for m and used by one thread at a time. */
size_t eb_matcher_match(const eb_matcher *m, const json_t *event, eb_matcher_scratch *sc,
                        const uint32_t **ids);

/* Matches the decoded CloudEvent ev (borrowed) against every pattern of m,
 * with the same result as eb_matcher_match() on ce_to_json(ev), without
 * building that JSON view: the event is flattened once along the paths the
 * patterns use (flatten.h) and the candidates are evaluated on that. Returns
 * how many matched and points *ids at their ids (in sc, valid until sc's
 * next use). Allocates only while sc's buffers grow to the largest event
 * seen. REQUIRES: as eb_matcher_match(). */
size_t eb_matcher_match_event(const eb_matcher *m, const Io__Cloudevents__V1__CloudEvent *ev,
                              eb_matcher_scratch *sc, const uint32_t **ids);

/* Like eb_matcher_match_event() on the CloudEvent whose stored protobuf
 * bytes are body[0..len) (borrowed), usually without decoding them into a
 * message (flatten.h, eb_flatten_stored()). When every pattern of m needs
 * something of the attributes, those are looked at first and the data is
 * not read at all when they rule every pattern out. Returns false, with
 * nothing written, when the bytes do not decode as a CloudEvent; else
 * writes the number of matches to *n and points *ids at their ids as
 * eb_matcher_match() does. */
bool eb_matcher_match_stored(const eb_matcher *m, const uint8_t *body, size_t len,
                             eb_matcher_scratch *sc, const uint32_t **ids, size_t *n);

/* Like eb_matcher_match() on the CloudEvents JSON view given as text
 * json[0..len) (borrowed), through the flattened event: the text is scanned
 * once, keeping only what the patterns look at. Returns false, with nothing
 * written, when the text is not JSON that json_loadb() accepts. */
bool eb_matcher_match_view(const eb_matcher *m, const char *json, size_t len,
                           eb_matcher_scratch *sc, const uint32_t **ids, size_t *n);

/* Frees m (not the patterns it borrowed). NULL is allowed. */
void eb_matcher_free(eb_matcher *m);

#endif
