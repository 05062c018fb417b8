/* TestEventPattern and `cebus pattern test` against a real cebusd: one event
 * (match, or the reason it does not), and dry runs on a bus's retained
 * history (counts, windows by count and by time, samples and their caps,
 * paging through large events, roles and tenancy). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define METHOD "/cebus.v1.EventBus/TestEventPattern"
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define CLI_TIMEOUT_MS 30000

#define BIG "{\"data\":{\"total\":[{\"numeric\":[\">\",1000]}]}}"

typedef Cebus__V1__TestEventPatternRequest request;
typedef Cebus__V1__TestEventPatternResponse response;

/* Calls TestEventPattern. Returns the status; on OK sets *resp (free with
 * free_response). */
static int test_pattern(cebus_client *c, const request *req, response **resp, cebus_error *err)
{
    return cebus_call_unary(c, METHOD, &req->base, &cebus__v1__test_event_pattern_response__descriptor,
                            0, (ProtobufCMessage **)resp, err);
}

static void free_response(response *r)
{
    cebus__v1__test_event_pattern_response__free_unpacked(r, NULL);
}

/* Calls TestEventPattern and fails the test unless it succeeds. */
static response *test_pattern_ok(cebus_client *c, const request *req)
{
    response *resp = NULL;
    cebus_error err;
    int rc = test_pattern(c, req, &resp, &err);

    if (rc != 0)
        fail_msg("TestEventPattern: %s: %s", cebus_status_name(rc), err.message);
    return resp;
}

/* A dry-run request on bus. */
static void bus_request(request *req, const char *bus, const char *pattern, uint32_t last,
                        uint32_t max_samples)
{
    cebus__v1__test_event_pattern_request__init(req);
    req->bus = (char *)bus;
    req->pattern = (char *)pattern;
    req->last = last;
    req->max_samples = max_samples;
}

/* Puts 30 events on bus, one call each so that their receive times differ:
 * event i has id "e<i>" and data {"total": 1500 + i} when i % 5 is 0 or 2
 * (12 events), {"total": 742} otherwise. Writes the sequences into seqs. */
static void put_mix(cebus_client *pub, const char *bus, uint64_t seqs[30])
{
    for (int i = 0; i < 30; i++) {
        char id[16], data[64];
        snprintf(id, sizeof id, "e%d", i);
        snprintf(data, sizeof data, "{\"total\":%d}", i % 5 == 0 || i % 5 == 2 ? 1500 + i : 742);
        seqs[i] = h_put_one_ok(pub, bus, id, "order.created", data);
    }
}

static bool is_match(int i)
{
    return i % 5 == 0 || i % 5 == 2;
}

/* Checks that the samples are the newest matching events of the first
 * `upto` events of put_mix, newest first. */
static void expect_samples(const response *r, const uint64_t seqs[30], int upto, size_t want)
{
    size_t k = 0;

    assert_int_equal(r->n_samples, want);
    for (int i = upto - 1; i >= 0 && k < want; i--) {
        char id[16];
        if (!is_match(i))
            continue;
        snprintf(id, sizeof id, "e%d", i);
        assert_non_null(r->samples[k]->event);
        if (r->samples[k]->sequence != seqs[i] || strcmp(r->samples[k]->event->id, id) != 0)
            fail_msg("sample %zu: expected %s at %llu, got %s at %llu", k, id,
                     (unsigned long long)seqs[i], r->samples[k]->event->id,
                     (unsigned long long)r->samples[k]->sequence);
        k++;
    }
    assert_int_equal(k, want);
}

/* One event: match, and a reason naming the field when not. Any role may
 * test a single event. */
static void test_single_event_match_and_reason(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    request req = CEBUS__V1__TEST_EVENT_PATTERN_REQUEST__INIT;
    h_event *ev;
    response *r;
    cebus_client *pub;

    h_tenant_create_ok(env->admin, "pt-single", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    req.pattern = BIG;

    ev = h_event_new("1", "/shop", "order.created", "{\"total\":1200}");
    req.event = ev;
    r = test_pattern_ok(pub, &req);
    assert_true(r->matched);
    assert_string_equal(r->reason, "");
    assert_int_equal(r->examined, 0);
    assert_int_equal(r->n_samples, 0);
    free_response(r);
    h_event_free(ev);

    ev = h_event_new("2", "/shop", "order.created", "{\"total\":742}");
    req.event = ev;
    r = test_pattern_ok(pub, &req);
    assert_false(r->matched);
    assert_string_equal(r->reason, "data.total: expected numeric > 1000, got 742");
    free_response(r);
    h_event_free(ev);

    ev = h_event_new("3", "/shop", "order.created", NULL);
    req.event = ev;
    req.pattern = "{\"type\":[{\"prefix\":\"com.\"}]}";
    r = test_pattern_ok(pub, &req);
    assert_false(r->matched);
    assert_non_null(strstr(r->reason, "type: "));
    free_response(r);
    h_event_free(ev);
    cebus_client_free(pub);
}

/* Bad requests: a pattern that does not compile names its path, in both
 * forms; exactly one of event and bus; dry-run fields only with bus; caps. */
static void test_invalid_requests(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    request req;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    response *r = NULL;
    cebus_error err;
    h_event *ev;
    cebus_client *sub;
    int rc;

    h_tenant_create_ok(env->admin, "pt-invalid", "orders", &t);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    ev = h_event_new("1", "/shop", "order.created", "{\"amount\":5}");

    cebus__v1__test_event_pattern_request__init(&req);
    req.pattern = "{\"data\":{\"amount\":[{\"numeric\":[\"~\",5]}]}}";
    req.event = ev;
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("bad pattern, event", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "pattern: data.amount[0]: numeric");

    bus_request(&req, "orders", "{\"data\":{\"amount\":[{\"numeric\":[\"~\",5]}]}}", 0, 0);
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("bad pattern, bus", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "pattern: data.amount[0]: numeric");

    bus_request(&req, "orders", "{\"a\":", 0, 0);
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("pattern not JSON", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "pattern: ");

    bus_request(&req, "orders", "{}", 0, 0);
    req.event = ev;
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("event and bus", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "event, bus");

    bus_request(&req, "", "{}", 0, 0);
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("neither", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "event: required");

    bus_request(&req, "", "{}", 5, 0);
    req.event = ev;
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("last with event", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "only with bus");

    bus_request(&req, "orders", "{}", 10001, 0);
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("last over the cap", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "last: at most 10000");

    bus_request(&req, "orders", "{}", 0, 101);
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("max_samples over the cap", rc, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "max_samples: at most 100");

    bus_request(&req, "orders", "{}", 0, 0);
    ts.nanos = -1;
    req.since = &ts;
    rc = test_pattern(sub, &req, &r, &err);
    h_assert_status("bad since", rc, &err, GRPC_STATUS_INVALID_ARGUMENT, "since");

    h_event_free(ev);
    cebus_client_free(sub);
}

/* A dry run counts the matches among the newest events, with --last
 * smaller and larger than the bus, and returns the newest matches first,
 * as many as asked. */
static void test_dry_run_counts_and_samples(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    request req;
    response *r;
    cebus_client *pub, *sub, *admin;
    uint64_t seqs[30];

    h_tenant_create_ok(env->admin, "pt-counts", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);

    /* An empty bus. */
    bus_request(&req, "orders", BIG, 0, 0);
    r = test_pattern_ok(sub, &req);
    assert_false(r->matched);
    assert_int_equal(r->examined, 0);
    assert_int_equal(r->matched_count, 0);
    assert_int_equal(r->n_samples, 0);
    assert_int_equal(r->oldest_sequence, 0);
    assert_int_equal(r->newest_sequence, 0);
    free_response(r);

    put_mix(pub, "orders", seqs);

    /* The default window (1000) holds the whole bus; 10 samples. */
    r = test_pattern_ok(sub, &req);
    assert_true(r->matched);
    assert_int_equal(r->examined, 30);
    assert_int_equal(r->matched_count, 12);
    assert_int_equal(r->oldest_sequence, seqs[0]);
    assert_int_equal(r->newest_sequence, seqs[29]);
    expect_samples(r, seqs, 30, 10);
    free_response(r);

    /* The last 10 events: e20..e29, of which 4 match. */
    bus_request(&req, "orders", BIG, 10, 0);
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->examined, 10);
    assert_int_equal(r->matched_count, 4);
    assert_int_equal(r->oldest_sequence, seqs[20]);
    assert_int_equal(r->newest_sequence, seqs[29]);
    expect_samples(r, seqs, 30, 4);
    free_response(r);

    /* More than the bus holds. */
    bus_request(&req, "orders", BIG, 100, 100);
    r = test_pattern_ok(admin, &req);
    assert_int_equal(r->examined, 30);
    assert_int_equal(r->matched_count, 12);
    expect_samples(r, seqs, 30, 12);
    free_response(r);

    /* Samples capped below the matches. */
    bus_request(&req, "orders", BIG, 0, 3);
    r = test_pattern_ok(admin, &req);
    assert_int_equal(r->matched_count, 12);
    expect_samples(r, seqs, 30, 3);
    free_response(r);

    /* The platform admin names the bus with its tenant; {} matches all. */
    bus_request(&req, "pt-counts/orders", "{}", 0, 1);
    r = test_pattern_ok(env->admin, &req);
    assert_int_equal(r->examined, 30);
    assert_int_equal(r->matched_count, 30);
    assert_int_equal(r->n_samples, 1);
    assert_int_equal(r->samples[0]->sequence, seqs[29]);
    /* Samples are the stored events, server stamps included. */
    assert_string_equal(h_event_attr_string(r->samples[0]->event, "cebustenant"), "pt-counts");
    free_response(r);

    cebus_client_free(pub);
    cebus_client_free(sub);
    cebus_client_free(admin);
}

/* since: from the first event received at or after the time, still at
 * most `last` (the newest of them). */
static void test_dry_run_since(void **state)
{
    struct h_env *env = *state;
    struct h_tenant t;
    request req;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v;
    response *r;
    cebus_client *pub, *sub;
    uint64_t seqs[30];

    h_tenant_create_ok(env->admin, "pt-since", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    put_mix(pub, "orders", seqs);

    /* The receive time of e20 (sample 9 of the newest ten). */
    bus_request(&req, "orders", "{}", 10, 10);
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->n_samples, 10);
    assert_int_equal(r->samples[9]->sequence, seqs[20]);
    v = h_event_attr(r->samples[9]->event, "cebusrecvtime");
    assert_non_null(v);
    assert_int_equal(
        v->attr_case,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP);
    ts.seconds = v->ce_timestamp->seconds;
    ts.nanos = v->ce_timestamp->nanos;
    free_response(r);

    /* Since e20: e20..e29, 4 matches (e20, e22, e25, e27). */
    bus_request(&req, "orders", BIG, 0, 0);
    req.since = &ts;
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->examined, 10);
    assert_int_equal(r->matched_count, 4);
    assert_int_equal(r->oldest_sequence, seqs[20]);
    expect_samples(r, seqs, 30, 4);
    free_response(r);

    /* Since e20, at most the last 3: e27..e29. */
    req.last = 3;
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->examined, 3);
    assert_int_equal(r->matched_count, 1);
    assert_int_equal(r->oldest_sequence, seqs[27]);
    free_response(r);

    /* Since long ago: everything; in the future: nothing. */
    req.last = 0;
    ts.seconds = 1;
    ts.nanos = 0;
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->examined, 30);
    assert_int_equal(r->matched_count, 12);
    free_response(r);
    ts.seconds = (int64_t)time(NULL) + 3600;
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->examined, 0);
    assert_int_equal(r->matched_count, 0);
    assert_false(r->matched);
    free_response(r);

    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* Events of 200 KiB: the scan pages through them and the samples stop
 * short of 8 MiB, keeping the newest ones. */
static void test_dry_run_large_events(void **state)
{
    enum { N = 50, BATCH = 10, PAYLOAD = 200 * 1024 };
    struct h_env *env = *state;
    struct h_tenant t;
    request req;
    response *r;
    cebus_client *pub, *sub;
    char *data = malloc(PAYLOAD + 32);
    uint64_t last_seq = 0;

    assert_non_null(data);
    h_tenant_create_ok(env->admin, "pt-large", "orders", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    for (int b = 0; b < N / BATCH; b++) {
        h_event *evs[BATCH];
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;

        for (int i = 0; i < BATCH; i++) {
            char id[16];
            snprintf(id, sizeof id, "big%d", b * BATCH + i);
            /* {"pad":"xxx..."} */
            snprintf(data, 9, "{\"pad\":\"");
            memset(data + 8, 'x', PAYLOAD);
            snprintf(data + 8 + PAYLOAD, 4, "\"}");
            evs[i] = h_event_new(id, "/it", "blob", data);
        }
        assert_int_equal(h_put(pub, "orders", evs, BATCH, &resp, &err), 0);
        assert_int_equal(resp->failed_count, 0);
        last_seq = resp->results[BATCH - 1]->sequence;
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        for (int i = 0; i < BATCH; i++)
            h_event_free(evs[i]);
    }
    free(data);

    bus_request(&req, "orders", "{\"type\":[\"blob\"]}", 0, 100);
    r = test_pattern_ok(sub, &req);
    assert_int_equal(r->examined, N);
    assert_int_equal(r->matched_count, N);
    /* 8 MiB of ~200 KiB events: about 40, never all 50. */
    assert_in_range(r->n_samples, 30, N - 1);
    for (size_t k = 0; k < r->n_samples; k++)
        assert_int_equal(r->samples[k]->sequence, last_seq - k);
    free_response(r);

    cebus_client_free(pub);
    cebus_client_free(sub);
}

/* Another tenant's bus is NOT_FOUND, like one that does not exist; the
 * publisher role may not dry-run (it may not Subscribe). */
static void test_dry_run_tenancy_and_roles(void **state)
{
    struct h_env *env = *state;
    struct h_tenant a, b;
    request req;
    response *r = NULL;
    cebus_error err;
    cebus_client *pub, *other;
    int rc;

    h_tenant_create_ok(env->admin, "pt-owner", "orders", &a);
    h_tenant_create_ok(env->admin, "pt-other", "mine", &b);
    pub = cebus_client_new(env->srv[0].addr, a.publisher_key);
    other = cebus_client_new(env->srv[0].addr, b.subscriber_key);
    h_put_one_ok(pub, "orders", "x", "t", NULL);

    bus_request(&req, "pt-owner/orders", "{}", 0, 0);
    rc = test_pattern(other, &req, &r, &err);
    h_assert_status("another tenant's bus", rc, &err, GRPC_STATUS_NOT_FOUND, "bus");
    bus_request(&req, "orders", "{}", 0, 0);
    rc = test_pattern(other, &req, &r, &err);
    h_assert_status("no such bus", rc, &err, GRPC_STATUS_NOT_FOUND, "bus");

    rc = test_pattern(pub, &req, &r, &err);
    h_assert_status("publisher", rc, &err, GRPC_STATUS_PERMISSION_DENIED, "publisher");

    cebus_client_free(pub);
    cebus_client_free(other);
}

/* Runs the CLI and fails the test unless it exits with want. */
static void run(const char *addr, const char *key, const char *in, const char *const *args,
                int want, struct h_cli_result *r)
{
    h_cli_run(addr, key, in, CLI_TIMEOUT_MS, args, r);
    if (r->exit_code != want) {
        char cmd[1024] = "";
        size_t n = 0;
        for (size_t i = 0; args[i] && n < sizeof cmd - 1; i++)
            n += (size_t)snprintf(cmd + n, sizeof cmd - n, " %s", args[i]);
        fail_msg("cebus%s: exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", cmd, r->exit_code,
                 want, r->out, r->err);
    }
}

/* `cebus pattern test`: output and exit codes of both forms. */
static void test_cli(void **state)
{
    static const char *match_ev =
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/shop\",\"type\":\"order.created\","
        "\"data\":{\"total\":1200}}";
    static const char *miss_ev =
        "{\"specversion\":\"1.0\",\"id\":\"2\",\"source\":\"/shop\",\"type\":\"order.created\","
        "\"data\":{\"total\":742}}";
    struct h_env *env = *state;
    const char *addr = env->srv[0].addr;
    struct h_tenant t;
    struct h_cli_result r;
    cebus_client *pub;
    uint64_t seqs[30];
    char path[1100], want[64];
    FILE *f;

    h_tenant_create_ok(env->admin, "pt-cli", "orders", &t);
    pub = cebus_client_new(addr, t.publisher_key);
    put_mix(pub, "orders", seqs);

    run(addr, t.publisher_key, NULL, ARGS("pattern", "test", "--pattern", BIG, "--event", match_ev),
        0, &r);
    assert_string_equal(r.out, "match\n");
    h_cli_result_free(&r);

    run(addr, t.publisher_key, NULL, ARGS("pattern", "test", "--pattern", BIG, "--event", miss_ev),
        1, &r);
    assert_string_equal(r.out, "no match: data.total: expected numeric > 1000, got 742\n");
    assert_string_equal(r.err, "");
    h_cli_result_free(&r);

    /* The event on stdin, the pattern from a file. */
    snprintf(path, sizeof path, "%s/pt-cli-pattern.json", getenv("CEBUS_TEST_BUILD_DIR"));
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(BIG, f);
    fclose(f);
    {
        char at[1104];
        snprintf(at, sizeof at, "@%s", path);
        run(addr, t.publisher_key, match_ev,
            ARGS("pattern", "test", "--pattern", at, "--event", "-"), 0, &r);
        assert_string_equal(r.out, "match\n");
        h_cli_result_free(&r);
    }
    remove(path);

    /* Errors: from the server (exit 1, the status on stderr) and of the
     * command line (exit 2). */
    run(addr, t.publisher_key, NULL,
        ARGS("pattern", "test", "--pattern", "{\"data\":{\"n\":[{\"numeric\":[\"~\",1]}]}}",
             "--event", match_ev),
        1, &r);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "cebus: INVALID_ARGUMENT: pattern: data.n[0]: numeric"));
    h_cli_result_free(&r);
    run(addr, t.publisher_key, NULL, ARGS("pattern", "test", "--pattern", "{}", "--event", "{x"),
        1, &r);
    assert_non_null(strstr(r.err, "INVALID_ARGUMENT: --event: not JSON"));
    h_cli_result_free(&r);
    run(addr, t.publisher_key, NULL, ARGS("pattern", "test", "--pattern", "{}"), 2, &r);
    assert_non_null(strstr(r.err, "one of --event and --bus"));
    h_cli_result_free(&r);
    run(addr, t.publisher_key, NULL,
        ARGS("pattern", "test", "--pattern", "{}", "--event", match_ev, "--bus", "orders"), 2, &r);
    h_cli_result_free(&r);
    run(addr, t.publisher_key, NULL,
        ARGS("pattern", "test", "--pattern", "{}", "--event", match_ev, "--last", "5"), 2, &r);
    h_cli_result_free(&r);
    run(addr, t.subscriber_key, NULL,
        ARGS("pattern", "test", "--pattern", "{}", "--bus", "orders", "--last", "0"), 2, &r);
    h_cli_result_free(&r);
    run(addr, t.subscriber_key, NULL,
        ARGS("pattern", "test", "--pattern", "{}", "--bus", "orders", "--since", "yesterday"), 2,
        &r);
    h_cli_result_free(&r);

    /* Dry runs. */
    run(addr, t.subscriber_key, NULL,
        ARGS("pattern", "test", "--bus", "orders", "--last", "1000", "--pattern", BIG), 0, &r);
    {
        const char *p = r.out;
        int lines = 0;
        assert_true(strncmp(p, "matched 12 of 30 events\n", 24) == 0);
        for (p += 24; *p; p++)
            lines += *p == '\n';
        assert_int_equal(lines, 10);
        snprintf(want, sizeof want, "{\"sequence\":%llu,\"event\":{",
                 (unsigned long long)seqs[27]);
        assert_true(strncmp(r.out + 24, want, strlen(want)) == 0);
    }
    h_cli_result_free(&r);

    run(addr, t.subscriber_key, NULL,
        ARGS("pattern", "test", "--bus", "orders", "--last", "10", "--samples", "2", "--pattern",
             BIG),
        0, &r);
    assert_true(strncmp(r.out, "matched 4 of 10 events\n", 23) == 0);
    assert_non_null(strstr(r.out, "\"id\":\"e27\""));
    assert_non_null(strstr(r.out, "\"id\":\"e25\""));
    assert_null(strstr(r.out, "\"id\":\"e22\""));
    h_cli_result_free(&r);

    run(addr, t.subscriber_key, NULL,
        ARGS("pattern", "test", "--bus", "orders", "--since", "2999-01-01T00:00:00Z", "--pattern",
             "{}"),
        1, &r);
    assert_string_equal(r.out, "matched 0 of 0 events\n");
    h_cli_result_free(&r);

    run(addr, t.publisher_key, NULL,
        ARGS("pattern", "test", "--bus", "orders", "--pattern", "{}"), 1, &r);
    assert_non_null(strstr(r.err, "cebus: PERMISSION_DENIED: "));
    h_cli_result_free(&r);

    run(addr, t.subscriber_key, NULL, ARGS("pattern", "test", "--help"), 0, &r);
    assert_non_null(strstr(r.out, "usage: cebus pattern test"));
    h_cli_result_free(&r);

    cebus_client_free(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_event_match_and_reason),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_dry_run_counts_and_samples),
        cmocka_unit_test(test_dry_run_since),
        cmocka_unit_test(test_dry_run_large_events),
        cmocka_unit_test(test_dry_run_tenancy_and_roles),
        cmocka_unit_test(test_cli),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
