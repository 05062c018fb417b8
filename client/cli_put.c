/* `cebus put`: one event from flags, or CloudEvents JSON lines in batches. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <grpc/status.h>

#include "cejson.h"

/* The server's limits (DESIGN.md section 8): 500 entries and 4 MiB per
 * PutEvents. Batches stop short of the byte limit with room for the
 * request's framing. */
#define PUT_MAX_BATCH 500
#define PUT_MAX_BATCH_BYTES (4 * 1024 * 1024 - 64 * 1024)

/* Returns 1 when s[0..len) is well-formed UTF-8 without NUL bytes (text_data
 * is a C string, so a NUL forces binary_data). */
static int is_text(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Writes a random (version 4) UUID into buf (37 bytes). */
static void random_uuid(char buf[37])
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            abort(); /* the kernel's CSPRNG does not fail once seeded */
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/* Reads the data given by --data, --data-file or --data-stdin. Returns 0
 * with *data NULL when none was given, 0 with a new buffer, or an exit code
 * after printing why. */
static int read_data(const struct cli_args *a, char **data, size_t *len)
{
    int given = (cli_get(a, "--data") != NULL) + (cli_get(a, "--data-file") != NULL) +
                (cli_get(a, "--data-stdin") != NULL);
    const char *path;

    *data = NULL;
    *len = 0;
    if (given > 1)
        return cli_usage_error(a, "--data, --data-file and --data-stdin are mutually exclusive");
    if (cli_get(a, "--data")) {
        *data = strdup(cli_get(a, "--data"));
        if (!*data)
            abort();
        *len = strlen(*data);
        return 0;
    }
    path = cli_get(a, "--data-file") ? cli_get(a, "--data-file") : cli_get(a, "--data-stdin") ? "-" : NULL;
    if (!path)
        return 0;
    *data = cli_read_file(path, len);
    if (!*data)
        return cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "cannot read %s: %s",
                        strcmp(path, "-") == 0 ? "stdin" : path, strerror(errno));
    return 0;
}

/* Builds the event of the flags form. The attributes go through
 * ce_from_json so that they are named and typed exactly as in the JSON
 * form; the data is set afterwards because flags carry raw bytes. */
static int build_event(const struct cli_args *a, Io__Cloudevents__V1__CloudEvent **out)
{
    json_t *obj = json_object();
    char uuid[37], errbuf[256];
    char *data = NULL;
    size_t len = 0;
    const char *ct = cli_get(a, "--content-type");
    Io__Cloudevents__V1__CloudEvent *ev = NULL;
    int64_t secs;
    int32_t nanos;
    int rc;

    if (!obj)
        abort();
    if (!cli_get(a, "--type") || !cli_get(a, "--source")) {
        rc = cli_usage_error(a, "--type and --source are required");
        goto out;
    }
    if (cli_get(a, "--time") && ce_parse_rfc3339(cli_get(a, "--time"), &secs, &nanos) != 0) {
        rc = cli_usage_error(a, "--time must be an RFC 3339 time, e.g. 2024-05-01T12:00:00Z");
        goto out;
    }
    rc = read_data(a, &data, &len);
    if (rc != 0)
        goto out;
    if (!cli_get(a, "--id"))
        random_uuid(uuid);
    /* Attributes first, so that the named flags win over a --attr that
     * spells the same name. */
    for (int i = 0; i < cli_count(a, "--attr"); i++) {
        const char *kv = cli_nth(a, "--attr", i);
        const char *eq = strchr(kv, '=');
        char key[128];

        if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
            rc = cli_usage_error(a, "--attr takes KEY=VALUE, got '%s'", kv);
            goto out;
        }
        snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
        if (strcmp(key, "data") == 0 || strcmp(key, "data_base64") == 0) {
            rc = cli_usage_error(a, "--attr cannot set '%s'; use --data", key);
            goto out;
        }
        if (json_object_set_new(obj, key, json_string(eq + 1)) != 0) {
            rc = cli_usage_error(a, "--attr %s: not UTF-8", key);
            goto out;
        }
    }
    json_object_set_new(obj, "specversion", json_string("1.0"));
    json_object_set_new(obj, "id", json_string(cli_get(a, "--id") ? cli_get(a, "--id") : uuid));
    json_object_set_new(obj, "source", json_string(cli_get(a, "--source")));
    json_object_set_new(obj, "type", json_string(cli_get(a, "--type")));
    if (cli_get(a, "--subject"))
        json_object_set_new(obj, "subject", json_string(cli_get(a, "--subject")));
    if (cli_get(a, "--time"))
        json_object_set_new(obj, "time", json_string(cli_get(a, "--time")));
    if (!ct && data) {
        json_t *probe = json_loadb(data, len, JSON_DECODE_ANY, NULL);
        if (probe)
            ct = "application/json";
        json_decref(probe);
    }
    if (ct)
        json_object_set_new(obj, "datacontenttype", json_string(ct));
    if (ce_from_json(obj, &ev, errbuf, sizeof(errbuf)) != 0) {
        /* A flag value that is not UTF-8 leaves its member out of obj, so
         * the message may name a member that "is required". */
        rc = cli_usage_error(a, "%s", errbuf);
        goto out;
    }
    if (data && is_text((const unsigned char *)data, len)) {
        ev->data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA;
        ev->text_data = data;
        data = NULL;
    } else if (data) {
        ev->data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
        ev->binary_data.data = (uint8_t *)data;
        ev->binary_data.len = len;
        data = NULL;
    }
    *out = ev;
    rc = 0;
out:
    free(data);
    json_decref(obj);
    return rc;
}

static int put_one(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;
    Cebus__V1__PutEventsResponse *resp = NULL;
    Io__Cloudevents__V1__CloudEvent *ev = NULL;
    const Cebus__V1__PutEventsResultEntry *r;
    cebus_error err;
    int rc;

    rc = build_event(a, &ev);
    if (rc != 0)
        return rc;
    req.bus = (char *)cli_get(a, "--bus");
    req.n_events = 1;
    req.events = &ev;
    if (cebus_put_events(c, &req, &resp, &err) != 0) {
        rc = cli_rpc_error(&err);
        goto out;
    }
    if (resp->n_results != 1) {
        rc = cli_fail(GRPC_STATUS_INTERNAL, "server answered %zu results for 1 event",
                      resp->n_results);
        goto out;
    }
    r = resp->results[0];
    if (r->code != GRPC_STATUS_OK) {
        rc = cli_fail(r->code, "%s", r->message);
        goto out;
    }
    printf("%" PRIu64 "%s\n", r->sequence, r->duplicate ? " duplicate" : "");
    rc = CLI_EXIT_OK;
out:
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
    return rc;
}

/* One input line of --jsonl: an event to send, or why the line was not. */
struct put_slot {
    Io__Cloudevents__V1__CloudEvent *ev;
    char *error;
};

struct put_batch {
    struct put_slot *slots;
    size_t nslots, nevents, bytes, cap;
    bool any_failed;
};

static void batch_clear(struct put_batch *b)
{
    for (size_t i = 0; i < b->nslots; i++) {
        io__cloudevents__v1__cloud_event__free_unpacked(b->slots[i].ev, NULL);
        free(b->slots[i].error);
    }
    b->nslots = b->nevents = b->bytes = 0;
}

/* Sends the events of b and prints one line per slot, in input order.
 * Returns 0, or an exit code when the call itself failed. */
static int batch_flush(cebus_client *c, const char *bus, struct put_batch *b)
{
    Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;
    Cebus__V1__PutEventsResponse *resp = NULL;
    Io__Cloudevents__V1__CloudEvent **events = NULL;
    cebus_error err;
    size_t k = 0;
    int rc = 0;

    if (b->nevents > 0) {
        events = calloc(b->nevents, sizeof(*events));
        if (!events)
            abort();
        for (size_t i = 0; i < b->nslots; i++)
            if (b->slots[i].ev)
                events[k++] = b->slots[i].ev;
        req.bus = (char *)bus;
        req.n_events = b->nevents;
        req.events = events;
        if (cebus_put_events(c, &req, &resp, &err) != 0) {
            rc = cli_rpc_error(&err);
            goto out;
        }
        if (resp->n_results != b->nevents) {
            rc = cli_fail(GRPC_STATUS_INTERNAL, "server answered %zu results for %zu events",
                          resp->n_results, b->nevents);
            goto out;
        }
    }
    k = 0;
    for (size_t i = 0; i < b->nslots; i++) {
        const Cebus__V1__PutEventsResultEntry *r;

        if (b->slots[i].error) {
            printf("error: %s\n", b->slots[i].error);
            b->any_failed = true;
            continue;
        }
        r = resp->results[k++];
        if (r->code == GRPC_STATUS_OK) {
            printf("%" PRIu64 "%s\n", r->sequence, r->duplicate ? " duplicate" : "");
        } else {
            printf("error: %s %s\n", cebus_status_name(r->code), r->message);
            b->any_failed = true;
        }
    }
    fflush(stdout);
out:
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    free(events);
    batch_clear(b);
    return rc;
}

/* Returns a new "INVALID_ARGUMENT line N: why" string. */
static char *line_error(size_t lineno, const char *why)
{
    char *s;

    if (asprintf(&s, "%s line %zu: %s", cebus_status_name(GRPC_STATUS_INVALID_ARGUMENT), lineno,
                 why) < 0)
        abort();
    return s;
}

static bool is_blank(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

static int put_jsonl(cebus_client *c, const struct cli_args *a)
{
    const char *path = a->npos > 0 ? a->pos[0] : "-";
    const char *bus = cli_get(a, "--bus");
    struct put_batch b = {0};
    uint64_t batch_size = PUT_MAX_BATCH;
    FILE *in;
    char *line = NULL;
    size_t linecap = 0, lineno = 0;
    ssize_t n;
    int rc = CLI_EXIT_OK;

    if (cli_get(a, "--batch") &&
        (cli_parse_uint(cli_get(a, "--batch"), PUT_MAX_BATCH, &batch_size) != 0 || batch_size == 0))
        return cli_usage_error(a, "--batch must be between 1 and %d", PUT_MAX_BATCH);
    in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in)
        return cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "cannot open %s: %s", path, strerror(errno));
    b.cap = batch_size;
    b.slots = calloc(b.cap, sizeof(*b.slots));
    if (!b.slots)
        abort();

    while ((n = getline(&line, &linecap, in)) >= 0) {
        struct put_slot slot = {NULL, NULL};
        json_error_t jerr;
        json_t *obj;
        char why[256];
        size_t size = 0;

        lineno++;
        if (is_blank(line))
            continue;
        if ((size_t)n != strlen(line)) {
            slot.error = line_error(lineno, "line contains a NUL byte");
        } else if (!(obj = json_loads(line, 0, &jerr))) {
            snprintf(why, sizeof(why), "not JSON: %s", jerr.text);
            slot.error = line_error(lineno, why);
        } else {
            if (ce_from_json(obj, &slot.ev, why, sizeof(why)) != 0)
                slot.error = line_error(lineno, why);
            else
                size = protobuf_c_message_get_packed_size(&slot.ev->base) + 8;
            json_decref(obj);
        }
        /* A batch that would pass the byte limit goes first; an event over
         * the limit alone is still sent, for the server to reject by name. */
        if (slot.ev && b.nevents > 0 && b.bytes + size > PUT_MAX_BATCH_BYTES) {
            rc = batch_flush(c, bus, &b);
            if (rc != 0)
                goto out;
        }
        b.slots[b.nslots++] = slot;
        if (slot.ev) {
            b.nevents++;
            b.bytes += size;
        }
        if (b.nslots == b.cap) {
            rc = batch_flush(c, bus, &b);
            if (rc != 0)
                goto out;
        }
    }
    if (ferror(in)) {
        rc = cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    rc = batch_flush(c, bus, &b);
    if (rc == 0 && b.any_failed)
        rc = CLI_EXIT_ERROR;
out:
    batch_clear(&b);
    free(b.slots);
    free(line);
    if (in != stdin)
        fclose(in);
    return rc;
}

int cli_cmd_put(cebus_client *c, const struct cli_args *a)
{
    if (!cli_get(a, "--bus") || !*cli_get(a, "--bus"))
        return cli_usage_error(a, "--bus is required");
    if (cli_get(a, "--jsonl")) {
        static const char *const flag_only[] = {"--type", "--source", "--id", "--subject",
                                                "--time", "--content-type", "--attr", "--data",
                                                "--data-file", "--data-stdin"};
        for (size_t i = 0; i < sizeof(flag_only) / sizeof(flag_only[0]); i++)
            if (cli_count(a, flag_only[i]) > 0)
                return cli_usage_error(a, "%s cannot be combined with --jsonl", flag_only[i]);
        return put_jsonl(c, a);
    }
    if (a->npos > 0)
        return cli_usage_error(a, "unexpected argument '%s' (FILE is for --jsonl)", a->pos[0]);
    if (cli_get(a, "--batch"))
        return cli_usage_error(a, "--batch is for --jsonl");
    return put_one(c, a);
}
