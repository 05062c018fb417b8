/* The cebus CLI end to end against a real cebusd: administration, rules,
 * publishing from flags and JSON lines, subscribing, --help everywhere, and
 * errors that exit non-zero naming the gRPC status. */
#include "harness.h"

#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define CLI_TIMEOUT_MS 30000

static const char *addr; /* the server's, set by the first test to run */

/* Runs the CLI and fails the test unless it exits with want. */
static void run(const char *key, const char *in, const char *const *args, int want,
                struct h_cli_result *r)
{
    h_cli_run(addr, key, in, CLI_TIMEOUT_MS, args, r);
    if (r->exit_code != want) {
        char cmd[512] = "";
        size_t n = 0;
        for (size_t i = 0; args[i] && n < sizeof cmd - 1; i++)
            n += (size_t)snprintf(cmd + n, sizeof cmd - n, " %s", args[i]);
        fail_msg("cebus%s: exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", cmd, r->exit_code,
                 want, r->out, r->err);
    }
}

/* Runs the CLI, expects exit 0 and returns its stdout (caller frees). */
static char *run_ok(const char *key, const char *in, const char *const *args)
{
    struct h_cli_result r;

    run(key, in, args, 0, &r);
    free(r.err);
    return r.out;
}

/* Returns stdout's lines as a JSON array of parsed objects; fails the test
 * when a line is not JSON. */
static json_t *json_lines(const char *out)
{
    json_t *arr = json_array();
    const char *p = out;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_error_t jerr;
        json_t *j;

        if (len > 0) {
            j = json_loadb(p, len, 0, &jerr);
            if (!j)
                fail_msg("not a JSON line: %.*s (%s)", (int)len, p, jerr.text);
            json_array_append_new(arr, j);
        }
        p += len + (nl ? 1 : 0);
    }
    return arr;
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_string(v))
        fail_msg("member \"%s\" missing or not a string", key);
    return json_string_value(v);
}

static void set_addr(void **state)
{
    struct h_env *env = *state;

    addr = env->srv[0].addr;
}

/* Tenants, keys, buses and rules: create, list, get, delete. */
static void test_cli_administration(void **state)
{
    char *out, *tenant_key;
    json_t *lines, *j;
    struct h_cli_result r;

    set_addr(state);
    out = run_ok(H_ADMIN_KEY, NULL, ARGS("tenant", "create", "cli-admin", "--display-name", "CLI"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 1);
    assert_string_equal(jstr(json_array_get(lines, 0), "name"), "cli-admin");
    assert_string_equal(jstr(json_array_get(lines, 0), "display_name"), "CLI");
    json_decref(lines);
    free(out);

    /* The secret alone on stdout's only line; the description on stderr. */
    run(H_ADMIN_KEY, NULL,
        ARGS("key", "create", "--tenant", "cli-admin", "--role", "tenant-admin", "--description",
             "from the cli test"),
        0, &r);
    tenant_key = r.out;
    assert_non_null(strchr(tenant_key, '\n'));
    *strchr(tenant_key, '\n') = '\0';
    assert_true(strlen(tenant_key) >= 32);
    assert_null(strchr(tenant_key, ' '));
    assert_non_null(strstr(r.err, "cli-admin"));
    assert_null(strstr(r.err, tenant_key));
    free(r.err);

    out = run_ok(tenant_key, NULL, ARGS("bus", "create", "orders"));
    lines = json_lines(out);
    assert_string_equal(jstr(json_array_get(lines, 0), "tenant"), "cli-admin");
    assert_string_equal(jstr(json_array_get(lines, 0), "name"), "orders");
    json_decref(lines);
    free(out);
    free(run_ok(tenant_key, NULL, ARGS("bus", "create", "audit", "--retention-hours", "24")));

    out = run_ok(tenant_key, NULL, ARGS("bus", "list"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 2);
    assert_string_equal(jstr(json_array_get(lines, 0), "name"), "audit");
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(lines, 0), "retention_hours")), 24);
    assert_string_equal(jstr(json_array_get(lines, 1), "name"), "orders");
    json_decref(lines);
    free(out);

    out = run_ok(tenant_key, NULL,
                 ARGS("rule", "create", "--bus", "orders", "paid", "--pattern",
                      "{\"type\":[\"order.paid\"]}", "--subscription", "billing", "--description",
                      "paid orders"));
    lines = json_lines(out);
    j = json_array_get(lines, 0);
    assert_string_equal(jstr(j, "name"), "paid");
    assert_string_equal(jstr(j, "pattern"), "{\"type\":[\"order.paid\"]}");
    assert_string_equal(
        jstr(json_object_get(json_array_get(json_object_get(j, "targets"), 0), "subscription"),
             "name"),
        "billing");
    json_decref(lines);
    free(out);
    free(run_ok(tenant_key, NULL,
                ARGS("rule", "create", "--bus", "orders", "all", "--pattern", "{}")));

    out = run_ok(tenant_key, NULL, ARGS("rule", "get", "--bus", "orders", "paid"));
    lines = json_lines(out);
    assert_string_equal(jstr(json_array_get(lines, 0), "description"), "paid orders");
    json_decref(lines);
    free(out);

    out = run_ok(tenant_key, NULL, ARGS("rule", "list", "--bus", "orders"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 2);
    assert_string_equal(jstr(json_array_get(lines, 0), "name"), "all");
    assert_string_equal(jstr(json_array_get(lines, 1), "name"), "paid");
    json_decref(lines);
    free(out);

    free(run_ok(tenant_key, NULL, ARGS("rule", "delete", "--bus", "orders", "all")));
    run(tenant_key, NULL, ARGS("rule", "get", "--bus", "orders", "all"), 1, &r);
    assert_non_null(strstr(r.err, "NOT_FOUND"));
    h_cli_result_free(&r);
    out = run_ok(tenant_key, NULL, ARGS("rule", "list", "--bus", "orders"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 1);
    json_decref(lines);
    free(out);
    free(tenant_key);
}

/* Keys of tenant "cli-events" for the publishing tests. */
static char pub_key[160], sub_key[160], admin_key[160];

static void events_tenant(struct h_env *env)
{
    struct h_tenant t;

    if (pub_key[0])
        return;
    h_tenant_create_ok(env->admin, "cli-events", "orders", &t);
    memcpy(pub_key, t.publisher_key, sizeof pub_key);
    memcpy(sub_key, t.subscriber_key, sizeof sub_key);
    memcpy(admin_key, t.admin_key, sizeof admin_key);
}

/* put from flags and from JSON lines on stdin; subscribe --count prints
 * the events as CloudEvents JSON lines, in order. */
static void test_cli_put_and_subscribe(void **state)
{
    static const char jsonl[] =
        "{\"specversion\":\"1.0\",\"id\":\"j1\",\"source\":\"/cli/jsonl\",\"type\":\"order.paid\","
        "\"data\":{\"amount\":10}}\n"
        "\n"
        "{\"specversion\":\"1.0\",\"id\":\"j2\",\"source\":\"/cli/"
        "jsonl\",\"type\":\"order.created\","
        "\"subject\":\"o-2\",\"data\":\"plain text\"}\n"
        "{\"specversion\":\"1.0\",\"id\":\"j3\",\"source\":\"/cli/jsonl\",\"type\":\"order.paid\","
        "\"data\":[1,2,3]}\n";
    char *out, *seqs;
    json_t *lines, *e;
    unsigned long long s1, s2, s3, s4;

    set_addr(state);
    events_tenant(*state);
    out = run_ok(pub_key, NULL,
                 ARGS("put", "--bus", "orders", "--type", "order.created", "--source", "/cli/flags",
                      "--id", "f1", "--subject", "o-1", "--attr", "region=eu", "--data",
                      "{\"amount\":150,\"customer\":{\"tier\":\"gold\"}}"));
    assert_int_equal(sscanf(out, "%llu", &s1), 1);
    free(out);

    seqs = run_ok(pub_key, jsonl, ARGS("put", "--bus", "orders", "--jsonl"));
    assert_int_equal(sscanf(seqs, "%llu\n%llu\n%llu\n", &s2, &s3, &s4), 3);
    assert_true(s1 < s2 && s2 < s3 && s3 < s4);
    free(seqs);

    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--from", "earliest", "--count", "4"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 4);
    e = json_array_get(lines, 0);
    assert_string_equal(jstr(e, "specversion"), "1.0");
    assert_string_equal(jstr(e, "id"), "f1");
    assert_string_equal(jstr(e, "source"), "/cli/flags");
    assert_string_equal(jstr(e, "type"), "order.created");
    assert_string_equal(jstr(e, "subject"), "o-1");
    assert_string_equal(jstr(e, "region"), "eu");
    assert_string_equal(jstr(e, "cebustenant"), "cli-events");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "data"), "amount")),
                     150);
    assert_string_equal(jstr(json_array_get(lines, 1), "id"), "j1");
    e = json_array_get(lines, 2);
    assert_string_equal(jstr(e, "id"), "j2");
    assert_string_equal(jstr(e, "subject"), "o-2");
    assert_string_equal(jstr(e, "data"), "plain text");
    assert_int_equal(json_array_size(json_object_get(json_array_get(lines, 3), "data")), 3);
    json_decref(lines);
    free(out);

    /* A pattern, a start sequence, and --sequence output. */
    {
        char from[32];
        snprintf(from, sizeof from, "%llu", s2);
        out = run_ok(sub_key, NULL,
                     ARGS("subscribe", "--bus", "orders", "--from", from, "--pattern",
                          "{\"type\":[\"order.paid\"]}", "--count", "2", "--sequence"));
    }
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(lines, 0), "sequence")),
                     (json_int_t)s2);
    assert_string_equal(jstr(json_object_get(json_array_get(lines, 0), "event"), "id"), "j1");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(lines, 1), "sequence")),
                     (json_int_t)s4);
    assert_string_equal(jstr(json_object_get(json_array_get(lines, 1), "event"), "id"), "j3");
    json_decref(lines);
    free(out);

    /* --idle-timeout-ms ends a quiet stream with exit 0 and nothing printed. */
    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--pattern", "{\"type\":[\"never\"]}",
                      "--from", "earliest", "--idle-timeout-ms", "300"));
    assert_string_equal(out, "");
    free(out);
}

/* --data-stdin, a rule's --subscription, and --jsonl with a bad line: the
 * good lines are stored, the bad one is reported in place, exit 1. */
static void test_cli_put_variants(void **state)
{
    static const char mixed[] =
        "{\"specversion\":\"1.0\",\"id\":\"m1\",\"source\":\"/cli/m\",\"type\":\"mixed\"}\n"
        "{\"id\":\"m2\"}\n"
        "not json at all\n"
        "{\"specversion\":\"0.3\",\"id\":\"m3\",\"source\":\"/cli/m\",\"type\":\"mixed\"}\n"
        "{\"specversion\":\"1.0\",\"id\":\"m4\",\"source\":\"/cli/m\",\"type\":\"mixed\"}\n";
    struct h_cli_result r;
    json_t *lines;
    char *out;
    unsigned long long seq;

    set_addr(state);
    events_tenant(*state);
    run(pub_key, mixed, ARGS("put", "--bus", "orders", "--jsonl", "-"), 1, &r);
    {
        char l1[64], l2[256], l3[256], l4[256], l5[64];
        assert_int_equal(sscanf(r.out, "%63[^\n]\n%255[^\n]\n%255[^\n]\n%255[^\n]\n%63[^\n]", l1,
                                l2, l3, l4, l5),
                         5);
        assert_int_equal(sscanf(l1, "%llu", &seq), 1);
        assert_non_null(strstr(l2, "error: INVALID_ARGUMENT"));
        assert_non_null(strstr(l2, "line 2"));
        assert_non_null(strstr(l3, "error: INVALID_ARGUMENT"));
        assert_non_null(strstr(l3, "line 3"));
        assert_non_null(strstr(l4, "error: INVALID_ARGUMENT"));
        assert_non_null(strstr(l4, "spec"));
        assert_int_equal(sscanf(l5, "%llu", &seq), 1);
    }
    h_cli_result_free(&r);

    out = run_ok(pub_key, "{\"from\":\"stdin\"}",
                 ARGS("put", "--bus", "orders", "--type", "piped", "--source", "/cli/stdin",
                      "--data-stdin"));
    free(out);

    free(run_ok(admin_key, NULL,
                ARGS("rule", "create", "--bus", "orders", "piped-rule", "--pattern",
                     "{\"type\":[\"piped\"]}", "--subscription", "piped-sub")));
    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--subscription", "piped-sub", "--from",
                      "earliest", "--count", "1"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 1);
    assert_string_equal(jstr(json_array_get(lines, 0), "type"), "piped");
    assert_string_equal(jstr(json_object_get(json_array_get(lines, 0), "data"), "from"), "stdin");
    json_decref(lines);
    free(out);
}

/* subscribe --subscription without --from is the durable stream: it
 * prints each event with its attempt and acks it, so a second run gets
 * only what was published since; --from still peeks at everything. */
static void test_cli_durable_subscribe_acks(void **state)
{
    json_t *lines;
    char *out;

    set_addr(state);
    events_tenant(*state);
    free(run_ok(admin_key, NULL,
                ARGS("rule", "create", "--bus", "orders", "durable-rule", "--pattern",
                     "{\"type\":[\"durable\"]}", "--subscription", "durable-sub")));
    for (int i = 0; i < 2; i++)
        free(run_ok(pub_key, NULL,
                    ARGS("put", "--bus", "orders", "--type", "durable", "--source", "/cli/d")));
    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--subscription", "durable-sub", "--count",
                      "2", "--sequence"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *l = json_array_get(lines, i);
        assert_int_equal(json_integer_value(json_object_get(l, "attempt")), 1);
        assert_string_equal(jstr(json_object_get(l, "event"), "type"), "durable");
    }
    json_decref(lines);
    free(out);

    /* Acked: the next run's first event is the new one. */
    out = run_ok(pub_key, NULL,
                 ARGS("put", "--bus", "orders", "--type", "durable", "--source", "/cli/d"));
    {
        long long seq = atoll(out);
        free(out);
        assert_true(seq > 0);
        out = run_ok(sub_key, NULL,
                     ARGS("subscribe", "--bus", "orders", "--subscription", "durable-sub",
                          "--count", "1", "--sequence"));
        lines = json_lines(out);
        assert_int_equal(json_array_size(lines), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(lines, 0), "sequence")),
                         seq);
        assert_int_equal(
            json_integer_value(json_object_get(json_array_get(lines, 0), "attempt")), 1);
        json_decref(lines);
        free(out);
    }

    /* A peek from the start: all three, no attempt. */
    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--subscription", "durable-sub", "--from",
                      "earliest", "--count", "3", "--sequence"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 3);
    assert_null(json_object_get(json_array_get(lines, 2), "attempt"));
    json_decref(lines);
    free(out);
}

/* subscribe --nack refuses each printed delivery with its error: the event
 * comes back at once until its attempts run out, and the dead letter keeps
 * the error. --nack without a durable stream is a usage error. */
static void test_cli_durable_nack_to_dead_letter(void **state)
{
    struct h_cli_result r;
    json_t *lines, *dl;
    char *out;

    set_addr(state);
    events_tenant(*state);
    free(run_ok(admin_key, NULL,
                ARGS("rule", "create", "--bus", "orders", "nack-rule", "--pattern",
                     "{\"type\":[\"poison\"]}", "--subscription", "nack-sub",
                     "--max-attempts", "2")));
    free(run_ok(pub_key, NULL,
                ARGS("put", "--bus", "orders", "--type", "poison", "--source", "/cli/p")));
    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--subscription", "nack-sub", "--count",
                      "2", "--sequence", "--nack", "cannot parse"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(lines, 0), "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(lines, 1), "attempt")), 2);
    json_decref(lines);
    free(out);

    /* The next claim (a stream with room) finds it out of attempts. */
    out = run_ok(sub_key, NULL,
                 ARGS("subscribe", "--bus", "orders", "--subscription", "nack-sub",
                      "--idle-timeout-ms", "1500"));
    assert_string_equal(out, "");
    free(out);
    out = run_ok(admin_key, NULL,
                 ARGS("dlq", "list", "--bus", "orders", "--subscription", "nack-sub"));
    lines = json_lines(out);
    assert_int_equal(json_array_size(lines), 1);
    dl = json_array_get(lines, 0);
    assert_string_equal(jstr(dl, "reason"), "max_attempts");
    assert_string_equal(jstr(dl, "last_error"), "cannot parse");
    assert_int_equal(json_integer_value(json_object_get(dl, "attempts")), 2);
    assert_string_equal(jstr(json_object_get(dl, "event"), "type"), "poison");
    json_decref(lines);
    free(out);

    run(sub_key, NULL,
        ARGS("subscribe", "--bus", "orders", "--pattern", "{}", "--nack", "x"), 2, &r);
    assert_non_null(strstr(r.err, "--nack"));
    free(r.out);
    free(r.err);
}

/* --help on every command (and group, and the program) prints usage on
 * stdout and exits 0, without needing a server or a key. */
static void test_cli_help_on_every_command_exits_zero(void **state)
{
    const char *const *cases[] = {
        ARGS("--help"),
        ARGS("health", "--help"),
        ARGS("tenant", "create", "--help"),
        ARGS("key", "create", "--help"),
        ARGS("bus", "create", "--help"),
        ARGS("bus", "list", "--help"),
        ARGS("bus", "--help"),
        ARGS("rule", "create", "--help"),
        ARGS("rule", "get", "--help"),
        ARGS("rule", "list", "--help"),
        ARGS("rule", "delete", "--help"),
        ARGS("rule", "--help"),
        ARGS("put", "--help"),
        ARGS("subscribe", "--help"),
    };
    struct h_cli_result r;

    set_addr(state);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run(NULL, NULL, cases[i], 0, &r);
        if (!strstr(r.out, "usage:"))
            fail_msg("%s %s: no usage on stdout:\n%s", cases[i][0], cases[i][1] ? cases[i][1] : "",
                     r.out);
        h_cli_result_free(&r);
    }
}

/* Returns a TCP port on 127.0.0.1 that nothing listens on (just freed). */
static int unused_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* Failed calls exit 1 with "cebus: STATUS_NAME: message" on stderr; usage
 * errors exit 2. */
static void test_cli_errors_exit_nonzero_with_status_name(void **state)
{
    struct {
        const char *key_kind;
        const char *const *args;
        int exit_code;
        const char *want1, *want2;
    } cases[] = {
        {"admin", ARGS("bus", "create", "orders"), 1, "ALREADY_EXISTS", "orders"},
        {"pub", ARGS("put", "--bus", "nope", "--type", "t", "--source", "/s"), 1, "NOT_FOUND",
         "nope"},
        {"sub", ARGS("put", "--bus", "orders", "--type", "t", "--source", "/s"), 1,
         "PERMISSION_DENIED", NULL},
        {"wrong", ARGS("bus", "list"), 1, "UNAUTHENTICATED", NULL},
        {"none", ARGS("bus", "list"), 1, "UNAUTHENTICATED", NULL},
        {"admin",
         ARGS("rule", "create", "--bus", "orders", "bad", "--pattern",
              "{\"data\":{\"amount\":[{\"numeric\":[\"<\"]}]}}"),
         1, "INVALID_ARGUMENT", "data.amount"},
        {"sub",
         ARGS("subscribe", "--bus", "orders", "--pattern", "{\"type\":\"x\"}", "--count", "1"), 1,
         "INVALID_ARGUMENT", "type"},
        {"sub", ARGS("subscribe", "--bus", "acme/orders", "--count", "1"), 1, "NOT_FOUND", NULL},
        {"pub", ARGS("put", "--bus", "orders", "--type", "t", "--source", "/s", "--id", ""), 2,
         "id", NULL},
        {"admin", ARGS("frobnicate"), 2, "unknown command", NULL},
        {"admin", ARGS("rule", "create", "--bus", "orders", "x"), 2, "--pattern", NULL},
        {"admin", ARGS("put", "--bus", "orders", "--type", "t"), 2, "--source", NULL},
        {"admin", ARGS("subscribe", "--bus", "orders", "--from", "yesterday"), 2, "--from", NULL},
    };
    struct h_cli_result r;

    set_addr(state);
    events_tenant(*state);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *key = strcmp(cases[i].key_kind, "admin") == 0 ? admin_key
                          : strcmp(cases[i].key_kind, "pub") == 0 ? pub_key
                          : strcmp(cases[i].key_kind, "sub") == 0 ? sub_key
                          : strcmp(cases[i].key_kind, "wrong") == 0
                              ? "cb_wrongkey_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
                              : NULL;
        run(key, NULL, cases[i].args, cases[i].exit_code, &r);
        if (!strstr(r.err, cases[i].want1) || (cases[i].want2 && !strstr(r.err, cases[i].want2)))
            fail_msg("case %zu (%s %s): stderr lacks \"%s\"%s%s:\n%s", i, cases[i].args[0],
                     cases[i].args[1] ? cases[i].args[1] : "", cases[i].want1,
                     cases[i].want2 ? " or " : "", cases[i].want2 ? cases[i].want2 : "", r.err);
        if (cases[i].exit_code == 1 && strncmp(r.err, "cebus: ", 7) != 0)
            fail_msg("case %zu: stderr does not start with \"cebus: \": %s", i, r.err);
        h_cli_result_free(&r);
    }

    /* An event over the server's limit, data from stdin: the entry's
     * error, exit 1. */
    {
        size_t big = 300 * 1024;
        char *data = malloc(big + 1);
        assert_non_null(data);
        memset(data, 'z', big);
        data[big] = '\0';
        run(pub_key, data,
            ARGS("put", "--bus", "orders", "--type", "t", "--source", "/s", "--data-stdin"), 1, &r);
        free(data);
        assert_non_null(strstr(r.err, "INVALID_ARGUMENT"));
        assert_non_null(strstr(r.err, "events[0]"));
        h_cli_result_free(&r);
    }

    /* No server there: UNAVAILABLE (or DEADLINE_EXCEEDED), exit 1. */
    {
        char there[64];
        snprintf(there, sizeof there, "127.0.0.1:%d", unused_port());
        h_cli_run(there, admin_key, NULL, CLI_TIMEOUT_MS,
                  ARGS("--timeout-ms", "3000", "bus", "list"), &r);
        assert_int_equal(r.exit_code, 1);
        if (!strstr(r.err, "UNAVAILABLE") && !strstr(r.err, "DEADLINE_EXCEEDED"))
            fail_msg("no server: stderr %s", r.err);
        h_cli_result_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_administration),
        cmocka_unit_test(test_cli_put_and_subscribe),
        cmocka_unit_test(test_cli_put_variants),
        cmocka_unit_test(test_cli_durable_subscribe_acks),
        cmocka_unit_test(test_cli_durable_nack_to_dead_letter),
        cmocka_unit_test(test_cli_help_on_every_command_exits_zero),
        cmocka_unit_test(test_cli_errors_exit_nonzero_with_status_name),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
