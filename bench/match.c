/* match: single-thread pattern matching, decoding and JSON parsing included.
 *
 * 64 distinct ~1 KiB events (top-level attributes, nested JSON data with
 * objects and an array of objects) are generated as CloudEvents JSON and
 * kept as the protobuf bytes cebusd stores (docs/decisions/0003). Each
 * iteration does what a bus's tailer in dispatch.c does per stored event:
 * eb_matcher_match_stored() reads the stored bytes straight into the
 * flattened event (only the fields the patterns use; the JSON data scanned
 * once, see server/flatten.h) and matches it against all N patterns. With
 * --jansson the tailer's former path is timed instead: decode the bytes with
 * protobuf-c, build the jansson view with ce_to_json(), eb_matcher_match(),
 * free. With --naive each pattern is evaluated in turn on the jansson view
 * (the cost grows with N).
 * Patterns mix operators: exact strings and numbers, prefix, suffix,
 * anything-but, equals-ignore-case, wildcard, exists, booleans, and numeric
 * ranges. The N patterns go into one eb_matcher (pattern.h), as a bus's
 * streams do in dispatch.c, and each event is matched once. Before timing,
 * the matches on the flattened event, on the jansson view and one pattern at
 * a time are checked to be the same on every event.
 *
 * Two short extra phases split the cost: decoding alone, and matching alone
 * against events decoded beforehand.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench.h"
#include "cejson.h"
#include "pattern.h"

#define USAGE                                                                              \
    "usage: cebus-bench match [--rules 100] [--seconds 3] [--bytes 1024] [--jansson|--naive]\n" \
    "Events/s of decode + match of stored events against N patterns, one thread.\n"    \
    "--jansson matches through the jansson view instead of the flattened event;\n"   \
    "--naive evaluates every pattern in turn on the jansson view.\n"

#define NEVENTS 64
#define MAX_RULES 1000000
#define TEXT_MAX 8192

static const char *const verbs[] = {"created", "updated", "cancelled", "shipped", "paid",
                                    "refunded"};
static const char *const regions[] = {"eu-west-1", "us-east-1", "ap-south-1", "eu-central-1"};
static const char *const tiers[] = {"bronze", "silver", "gold", "platinum"};
static const char *const countries[] = {"DE", "FR", "US", "IN", "GB", "JP"};
static const char *const currencies[] = {"EUR", "USD", "GBP", "INR", "JPY"};
static const char *const methods[] = {"standard", "express", "pickup"};

#define PICK(arr, k) (arr[(size_t)(k) % (sizeof arr / sizeof arr[0])])

/* A small deterministic generator, so that runs are comparable. */
static uint32_t next_rand(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 33);
}

/* Writes event number k, padded with a "note" to about `bytes`, into buf. */
static void make_event(char *buf, size_t size, int k, size_t bytes, uint64_t *rs)
{
    unsigned a = next_rand(rs), b = next_rand(rs), c = next_rand(rs);
    int len, pad;

    len = snprintf(
        buf, size,
        "{\"specversion\":\"1.0\",\"id\":\"%08x-4b1d-4c2e-9f00-%012x\","
        "\"source\":\"/shop/%s/orders\",\"type\":\"com.example.order.%s\","
        "\"time\":\"2024-05-%02uT12:%02u:%02uZ\",\"subject\":\"order/%u/item-%u\","
        "\"datacontenttype\":\"application/json\",\"cebustenant\":\"acme\","
        "\"cebusrecvtime\":\"2024-05-01T12:00:00.123456Z\","
        "\"data\":{\"orderId\":\"ord-%u\",\"amount\":%u.%02u,\"currency\":\"%s\","
        "\"priority\":%u,\"region\":\"%s\","
        "\"customer\":{\"id\":\"c-%u\",\"tier\":\"%s\",\"country\":\"%s\","
        "\"email\":\"user%u@example.com\",\"since\":\"2019-0%u-01\"},"
        "\"items\":[{\"sku\":\"SKU-%u\",\"qty\":%u,\"price\":%u.99},"
        "{\"sku\":\"SKU-%u\",\"qty\":%u,\"price\":%u.50},"
        "{\"sku\":\"SKU-%u\",\"qty\":%u,\"price\":%u.00}],"
        "\"shipping\":{\"method\":\"%s\",\"address\":{\"city\":\"City %u\",\"zip\":\"%05u\","
        "\"street\":\"Long Street %u\"}},"
        "\"flags\":{\"gift\":%s,\"express\":%s},\"note\":\"",
        a, b, PICK(regions, a), PICK(verbs, b), 1 + a % 28, b % 60, c % 60, a % 100000, c % 50,
        (unsigned)k, a % 5000, b % 100, PICK(currencies, c), c % 10, PICK(regions, a),
        b % 10000, PICK(tiers, c >> 3), PICK(countries, a >> 5), b % 1000, 1 + c % 9,
        a % 2000, 1 + b % 5, c % 300, b % 2000, 1 + c % 5, a % 300, c % 2000, 1 + a % 5,
        b % 300, PICK(methods, b >> 7), a % 500, c % 100000, b % 400,
        (a & 1) ? "true" : "false", (b & 1) ? "true" : "false");
    pad = (int)bytes - len - 3;
    if (pad < 0)
        pad = 0;
    if ((size_t)len + (size_t)pad + 4 > size)
        pad = (int)size - len - 4;
    memset(buf + len, 'n', (size_t)pad);
    memcpy(buf + len + pad, "\"}}", 4);
}

/* Writes pattern number i into buf. Every pattern is distinct: each lists,
 * besides the values that events hit, one value of its own that no event
 * has (ending in i), so that a matcher cannot treat repeated patterns as
 * one and the figure is that of N different rules; the values of its own
 * change no match. */
static void make_pattern(char *buf, size_t size, long i)
{
    unsigned u = (unsigned)i, k = u / 8, lo = (u * 7919u) % 5000;

    switch (u % 8) {
    case 0:
        snprintf(buf, size,
                 "{\"type\":[\"com.example.order.%s\",\"com.example.none.%ld\"],"
                 "\"data\":{\"amount\":[{\"numeric\":[\">\",%u,\"<=\",%u]}]}}",
                 PICK(verbs, k), i, lo, lo + 250);
        break;
    case 1:
        snprintf(buf, size,
                 "{\"source\":[{\"prefix\":\"/shop/%s\"}],"
                 "\"data\":{\"customer\":{\"tier\":[\"%s\",\"%s\",\"none-%ld\"],"
                 "\"country\":[\"%s\"]}}}",
                 PICK(regions, k), PICK(tiers, k), PICK(tiers, k + 1), i,
                 PICK(countries, k + 3));
        break;
    case 2:
        snprintf(buf, size,
                 "{\"source\":[{\"prefix\":\"/shop/%s/\"}],"
                 "\"type\":[{\"prefix\":\"com.example.order.\"}],"
                 "\"data\":{\"currency\":[{\"anything-but\":[\"%s\",\"%s\"]}],"
                 "\"amount\":[{\"numeric\":[\">=\",%u,\"<\",%u]},%ld.5]}}",
                 PICK(regions, k + 1), PICK(currencies, k), PICK(currencies, k + 2), lo,
                 lo + 500, 100000 + i);
        break;
    case 3:
        snprintf(buf, size, "{\"subject\":[{\"wildcard\":\"order/*/item-%u\"},\"none-%ld\"]}",
                 k % 50, i);
        break;
    case 4:
        snprintf(buf, size,
                 "{\"data\":{\"customer\":{\"country\":[{\"equals-ignore-case\":\"%c%c\"}]},"
                 "\"shipping\":{\"method\":[\"%s\",\"none-%ld\"]}},"
                 "\"type\":[\"com.example.order.%s\"]}",
                 PICK(countries, k)[0] | 0x20, PICK(countries, k)[1] | 0x20, PICK(methods, k), i,
                 PICK(verbs, k + 1));
        break;
    case 5:
        snprintf(buf, size, "{\"data\":{\"items\":{\"sku\":[\"SKU-%u\",\"none-%ld\"]}}}",
                 (u * 13u) % 2000, i);
        break;
    case 6:
        snprintf(buf, size,
                 "{\"data\":{\"priority\":[%u,%ld],"
                 "\"amount\":[{\"numeric\":[\">=\",%u,\"<\",%u]}],"
                 "\"region\":[{\"exists\":true}]}}",
                 k % 10, 100000 + i, lo, lo + 1000);
        break;
    default:
        snprintf(buf, size,
                 "{\"id\":[{\"suffix\":\"%03x\"}],"
                 "\"datacontenttype\":[\"application/json\",\"none/%ld\"],"
                 "\"data\":{\"flags\":{\"gift\":[true]}}}",
                 (u * 2654435761u) & 0xfff, i);
        break;
    }
}

/* Parses text or dies: the generated events must be valid JSON. */
static json_t *parse_or_die(const char *text)
{
    json_error_t jerr;
    json_t *ev = json_loads(text, 0, &jerr);

    if (!ev) {
        fprintf(stderr, "cebus-bench match: generated event does not parse: %s\n", jerr.text);
        abort();
    }
    return ev;
}

typedef Io__Cloudevents__V1__CloudEvent ce_event;

/* How the tailer matches: the flattened stored bytes (the server's path), the
 * jansson view through the matcher, or the jansson view one pattern at a
 * time. */
enum mode { MODE_FLAT, MODE_JANSSON, MODE_NAIVE };

/* What is timed: the number of the N patterns that match the decoded event
 * ce, by mode. */
static uint64_t count_matches(enum mode mode, const eb_matcher *m, eb_matcher_scratch *sc,
                              eb_pattern *const *pats, long rules, const ce_event *ce)
{
    const uint32_t *ids;
    uint64_t n = 0;
    json_t *view;

    if (mode == MODE_FLAT)
        return eb_matcher_match_event(m, ce, sc, &ids);
    view = ce_to_json(ce);
    if (mode == MODE_JANSSON) {
        n = eb_matcher_match(m, view, sc, &ids);
    } else {
        for (long i = 0; i < rules; i++)
            n += eb_pattern_match(pats[i], view);
    }
    json_decref(view);
    return n;
}

/* CPU time of the calling thread, in ns: on a shared machine, events per
 * CPU-second stay comparable when wall-clock rates do not. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Decodes stored event bytes or dies: the generated events must decode. */
static ce_event *decode_or_die(const uint8_t *body, size_t len)
{
    ce_event *ce = io__cloudevents__v1__cloud_event__unpack(NULL, len, body);

    if (!ce) {
        fputs("cebus-bench match: generated event does not decode\n", stderr);
        abort();
    }
    return ce;
}

/* Checks that the matcher, on the stored bytes, on the decoded event and
 * on the jansson view, finds exactly the patterns that match the jansson
 * view one by one, on every bench event. Returns 0 or -1. */
static int cross_check(const eb_matcher *m, eb_matcher_scratch *sc, eb_pattern *const *pats,
                       long rules, ce_event *const *decoded, uint8_t *const *bodies,
                       const size_t *body_lens)
{
    for (int e = 0; e < NEVENTS; e++) {
        json_t *view = ce_to_json(decoded[e]);
        const uint32_t *ids;
        size_t want = 0;
        size_t n = eb_matcher_match_event(m, decoded[e], sc, &ids);

        for (long i = 0; i < rules; i++)
            want += eb_pattern_match(pats[i], view);
        for (size_t k = 0; k < n; k++)
            if (!eb_pattern_match(pats[ids[k]], view))
                n = SIZE_MAX;
        if (n == want && !eb_matcher_match_stored(m, bodies[e], body_lens[e], sc, &ids, &n))
            n = SIZE_MAX;
        for (size_t k = 0; n != SIZE_MAX && k < n; k++)
            if (!eb_pattern_match(pats[ids[k]], view))
                n = SIZE_MAX;
        if (n == want) {
            n = eb_matcher_match(m, view, sc, &ids);
            for (size_t k = 0; k < n; k++)
                if (!eb_pattern_match(pats[ids[k]], view))
                    n = SIZE_MAX;
        }
        json_decref(view);
        if (n != want) {
            fprintf(stderr, "cebus-bench match: matcher disagrees on event %d\n", e);
            return -1;
        }
    }
    return 0;
}

/* Checks the matcher on known cases before timing it. Returns 0 or -1. */
static int self_check(char *const *texts)
{
    static const char *const cases[][2] = {
        {"{}", "all"},
        {"{\"type\":[\"no.such.type\"]}", "none"},
        {"{\"specversion\":[\"1.0\"],\"data\":{\"amount\":[{\"numeric\":[\">=\",0]}]}}", "all"},
        {"{\"data\":{\"amount\":[{\"numeric\":[\"<\",0]}]}}", "none"},
        {"{\"data\":{\"items\":{\"sku\":[{\"prefix\":\"SKU-\"}]}}}", "all"},
    };
    int rc = 0;

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        eb_pattern *p = NULL;
        char err[256];
        int hits = 0;

        if (eb_pattern_compile(cases[c][0], strlen(cases[c][0]), &p, err, sizeof err) != EB_OK) {
            fprintf(stderr, "cebus-bench match: self-check pattern %s: %s\n", cases[c][0], err);
            return -1;
        }
        for (int e = 0; e < NEVENTS; e++) {
            json_t *ev = parse_or_die(texts[e]);
            hits += eb_pattern_match(p, ev);
            json_decref(ev);
        }
        if ((strcmp(cases[c][1], "all") == 0 && hits != NEVENTS) ||
            (strcmp(cases[c][1], "none") == 0 && hits != 0)) {
            fprintf(stderr, "cebus-bench match: self-check: %s matched %d of %d events\n",
                    cases[c][0], hits, NEVENTS);
            rc = -1;
        }
        eb_pattern_free(p);
    }
    return rc;
}

int bench_cmd_match(int argc, char **argv)
{
    long rules = 100, bytes = 1024;
    double seconds = 3;
    bool naive = false, jansson = false;
    enum mode mode;
    static const char *const mode_name[] = {"flat", "jansson", "naive"};
    eb_matcher *m = NULL;
    eb_matcher_scratch *sc = NULL;
    const struct bench_opt opts[] = {
        {"rules", BENCH_OPT_INT, &rules, 1, MAX_RULES},
        {"seconds", BENCH_OPT_DOUBLE, &seconds, 0.1, 3600},
        {"bytes", BENCH_OPT_INT, &bytes, 600, TEXT_MAX - 16},
        {"naive", BENCH_OPT_FLAG, &naive, 0, 0},
        {"jansson", BENCH_OPT_FLAG, &jansson, 0, 0},
        {NULL, BENCH_OPT_FLAG, NULL, 0, 0},
    };
    char *texts[NEVENTS] = {0};
    ce_event *decoded[NEVENTS] = {0};
    uint8_t *bodies[NEVENTS] = {0};
    size_t body_lens[NEVENTS] = {0};
    eb_pattern **pats = NULL;
    uint64_t rs = 0x2545F4914F6CDD1DULL, events = 0, matches = 0, parsed_only = 0;
    uint64_t matched_only = 0;
    volatile uint64_t sink = 0; /* keeps the match-only loop honest */
    size_t total_bytes = 0;
    double aux, elapsed, parse_elapsed, match_elapsed, cpu_elapsed;
    int64_t cpu0;
    int64_t t0, t_end, now;
    long stride;
    int rc;

    rc = bench_parse_opts(argc, argv, opts, USAGE);
    if (rc)
        return rc == 1 ? 0 : rc;

    for (int e = 0; e < NEVENTS; e++) {
        texts[e] = malloc(TEXT_MAX);
        if (!texts[e])
            abort();
        make_event(texts[e], TEXT_MAX, e, (size_t)bytes, &rs);
        total_bytes += strlen(texts[e]);
        {
            /* The bytes cebusd stores: the CloudEvent in protobuf form. */
            json_t *j = parse_or_die(texts[e]);
            char err[256];

            if (ce_from_json(j, &decoded[e], err, sizeof err) != 0) {
                fprintf(stderr, "cebus-bench match: generated event: %s\n", err);
                abort();
            }
            json_decref(j);
            body_lens[e] = io__cloudevents__v1__cloud_event__get_packed_size(decoded[e]);
            bodies[e] = malloc(body_lens[e]);
            if (!bodies[e])
                abort();
            io__cloudevents__v1__cloud_event__pack(decoded[e], bodies[e]);
        }
    }
    mode = naive ? MODE_NAIVE : jansson ? MODE_JANSSON : MODE_FLAT;
    if (self_check(texts) != 0) {
        rc = 1;
        goto out;
    }
    pats = calloc((size_t)rules, sizeof *pats);
    if (!pats)
        abort();
    for (long i = 0; i < rules; i++) {
        char text[1024], err[256];

        make_pattern(text, sizeof text, i);
        if (eb_pattern_compile(text, strlen(text), &pats[i], err, sizeof err) != EB_OK) {
            fprintf(stderr, "cebus-bench match: pattern %ld %s: %s\n", i, text, err);
            rc = 1;
            goto out;
        }
    }
    if (!naive) {
        int64_t b0 = bench_now_ns();

        m = eb_matcher_new();
        for (long i = 0; i < rules; i++)
            eb_matcher_add(m, pats[i], (uint32_t)i);
        eb_matcher_build(m);
        sc = eb_matcher_scratch_new(m);
        fprintf(stderr, "cebus-bench match: matcher over %ld patterns built in %.1f ms\n", rules,
                (double)(bench_now_ns() - b0) / 1e6);
        if (cross_check(m, sc, pats, rules, decoded, bodies, body_lens) != 0) {
            rc = 1;
            goto out;
        }
    }

    /* The measured loop: from the stored bytes to the matches. The clock is
     * read once per 16 events. */
    t0 = bench_now_ns();
    cpu0 = thread_cpu_ns();
    t_end = t0 + (int64_t)(seconds * 1e9);
    do {
        for (int k = 0; k < 16; k++) {
            int e = (int)(events % NEVENTS);

            if (mode == MODE_FLAT) {
                const uint32_t *ids;
                size_t n = 0;

                if (!eb_matcher_match_stored(m, bodies[e], body_lens[e], sc, &ids, &n))
                    abort();
                matches += n;
            } else {
                ce_event *ce = decode_or_die(bodies[e], body_lens[e]);

                matches += count_matches(mode, m, sc, pats, rules, ce);
                io__cloudevents__v1__cloud_event__free_unpacked(ce, NULL);
            }
            events++;
        }
        now = bench_now_ns();
    } while (now < t_end);
    elapsed = (double)(now - t0) / 1e9;
    cpu_elapsed = (double)(thread_cpu_ns() - cpu0) / 1e9;

    /* The split: decoding alone, then matching alone (flattening or the
     * jansson view included) on events decoded beforehand. */
    stride = naive ? (rules >= 256 ? 1 : 256 / rules) : 64;
    aux = seconds / 3 < 1.0 ? seconds / 3 : 1.0;
    t0 = bench_now_ns();
    t_end = t0 + (int64_t)(aux * 1e9);
    do {
        for (int k = 0; k < 16; k++, parsed_only++) {
            int e = (int)(parsed_only % NEVENTS);
            io__cloudevents__v1__cloud_event__free_unpacked(decode_or_die(bodies[e], body_lens[e]),
                                                            NULL);
        }
        now = bench_now_ns();
    } while (now < t_end);
    parse_elapsed = (double)(now - t0) / 1e9;
    t0 = bench_now_ns();
    t_end = t0 + (int64_t)(aux * 1e9);
    do {
        /* With few patterns an event takes tens of ns here, as long as a
         * clock read: read it once per stride. */
        for (long k = 0; k < stride; k++, matched_only++) {
            sink += count_matches(mode, m, sc, pats, rules, decoded[matched_only % NEVENTS]);
        }
        now = bench_now_ns();
    } while (now < t_end);
    match_elapsed = (double)(now - t0) / 1e9;

    printf("match: %s, %ld patterns, %zu-byte JSON events, one thread: %.0f events/s "
           "decode+match (%.2f matches/event); decode alone %.0f events/s, match alone %.0f "
           "events/s (%.0f patterns/s); %.0f events per CPU-second\n",
           mode_name[mode], rules, total_bytes / NEVENTS, (double)events / elapsed,
           (double)matches / (double)events, (double)parsed_only / parse_elapsed,
           (double)matched_only / match_elapsed,
           (double)matched_only * (double)rules / match_elapsed, (double)events / cpu_elapsed);
    printf("bench=match mode=%s rules=%ld event_bytes=%zu seconds=%.2f events=%" PRIu64
           " events_per_s=%.0f matches_per_event=%.3f decode_only_per_s=%.0f "
           "match_only_per_s=%.0f events_per_cpu_s=%.0f\n",
           mode_name[mode], rules, total_bytes / NEVENTS, elapsed, events, (double)events / elapsed,
           (double)matches / (double)events, (double)parsed_only / parse_elapsed,
           (double)matched_only / match_elapsed, (double)events / cpu_elapsed);
    fflush(stdout);
    rc = 0;
out:
    eb_matcher_scratch_free(sc);
    eb_matcher_free(m);
    if (pats)
        for (long i = 0; i < rules; i++)
            eb_pattern_free(pats[i]);
    free(pats);
    for (int e = 0; e < NEVENTS; e++) {
        if (decoded[e])
            io__cloudevents__v1__cloud_event__free_unpacked(decoded[e], NULL);
        free(bodies[e]);
        free(texts[e]);
    }
    return rc;
}
