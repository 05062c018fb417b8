/* The Prometheus endpoint of a real cebusd: counters move with the work the
 * server does (publishes, duplicates, rejected entries, commits, streams,
 * RPC outcomes), histograms are consistent, no tenant's names appear, and
 * the endpoint answers bad or stalled HTTP clients without hanging. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RESPONSE_MAX (1 << 20)

/* Connects to "127.0.0.1:PORT". Returns the socket or fails the test. */
static int connect_to(const char *addr)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const char *colon = strrchr(addr, ':');
    int fd;

    assert_non_null(colon);
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("connect %s: %s", addr, strerror(errno));
    return fd;
}

/* Sends request and reads the whole response (the server closes). Returns
 * a new string; free() it. */
static char *http(const char *addr, const char *request, size_t reqlen)
{
    int fd = connect_to(addr);
    char *buf = malloc(RESPONSE_MAX + 1);
    size_t n = 0;
    int64_t deadline = h_now_ms() + H_EVENT_TIMEOUT_MS;

    assert_int_equal(send(fd, request, reqlen, MSG_NOSIGNAL), (ssize_t)reqlen);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t got;
        int64_t left = deadline - h_now_ms();
        if (left <= 0)
            fail_msg("no complete HTTP response from %s in time", addr);
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        got = recv(fd, buf + n, RESPONSE_MAX - n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        assert_true(n < RESPONSE_MAX);
    }
    close(fd);
    buf[n] = '\0';
    return buf;
}

static char *scrape(const char *addr)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    char *r = http(addr, req, sizeof req - 1);

    if (strncmp(r, "HTTP/1.1 200 OK\r\n", 17) != 0)
        fail_msg("scrape: unexpected response: %.200s", r);
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4"));
    return r;
}

/* Returns the value of the sample line that starts with series followed by
 * a space, or fails the test when there is none. */
static double sample(const char *text, const char *series)
{
    size_t len = strlen(series);

    for (const char *p = text; (p = strstr(p, series)) != NULL; p += len)
        if ((p == text || p[-1] == '\n') && p[len] == ' ')
            return strtod(p + len + 1, NULL);
    fail_msg("no sample %s in the metrics", series);
    return -1;
}

static void test_counters_follow_the_work(void **state)
{
    struct h_env *env = *state;
    const char *maddr = env->srv[0].metrics_addr;
    struct h_tenant t;
    cebus_client *pub, *sub, *nobody;
    Cebus__V1__PutEventsResponse *resp = NULL;
    cebus_error err;
    h_event *evs[4];
    cebus_stream *st;
    char *before, *after;
    double appended0, dup0, rejected0, commits0, ok0, opened0;

    assert_true(maddr[0] != '\0');
    h_tenant_create_ok(env->admin, "metrics-acme-corp", "secret-orders-bus", &t);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    nobody = cebus_client_new(env->srv[0].addr,
                              "cb_nosuchke_0000000000000000000000000000000000000000000");

    before = scrape(maddr);
    appended0 = sample(before, "cebus_events_appended_total");
    dup0 = sample(before, "cebus_events_duplicate_total");
    rejected0 = sample(before, "cebus_events_rejected_total");
    commits0 = sample(before, "cebus_append_commits_total");
    ok0 = sample(before, "cebus_rpc_total{method=\"/cebus.v1.EventBus/PutEvents\",code=\"OK\"}");
    opened0 = sample(before, "cebus_streams_opened_total");

    st = h_subscribe_ok(sub, t.bus, "{}", CEBUS__V1__START_POSITION__START_POSITION_LATEST, 0);
    /* The server registers the stream after the call is sent: wait for it. */
    for (int64_t deadline = h_now_ms() + H_EVENT_TIMEOUT_MS;;) {
        char *m = scrape(maddr);
        double opened = sample(m, "cebus_streams_opened_total");
        free(m);
        if (opened == opened0 + 1)
            break;
        if (h_now_ms() > deadline)
            fail_msg("the stream was not counted as opened in time");
        usleep(20 * 1000);
    }

    /* Three new events, one repeat of the first, one invalid entry. */
    evs[0] = h_event_new("m1", "/it", "t", "{\"marker\":\"PAYLOAD-MARKER-7\"}");
    evs[1] = h_event_new("m2", "/it", "t", "{}");
    evs[2] = h_event_new("m3", "/it", "t", "{}");
    evs[3] = h_event_new("m4", "/it", "t", "{}");
    h_event_set_spec_version(evs[3], "0.3");
    assert_int_equal(h_put(pub, t.bus, evs, 4, &resp, &err), 0);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    assert_int_equal(h_put(pub, t.bus, evs, 1, &resp, &err), 0);
    assert_true(resp->results[0]->duplicate);
    cebus__v1__put_events_response__free_unpacked(resp, NULL);
    for (int i = 0; i < 4; i++)
        h_event_free(evs[i]);

    /* A refused call is counted under its code. */
    h_assert_status("PutEvents with an unknown key",
                    h_put(nobody, t.bus, NULL, 0, &resp, &err), &err, GRPC_STATUS_UNAUTHENTICATED,
                    NULL);

    after = scrape(maddr);
    assert_true(sample(after, "cebus_events_appended_total") == appended0 + 3);
    assert_true(sample(after, "cebus_events_duplicate_total") == dup0 + 1);
    assert_true(sample(after, "cebus_events_rejected_total") == rejected0 + 1);
    assert_true(sample(after, "cebus_append_commits_total") >= commits0 + 1);
    assert_true(sample(after,
                       "cebus_rpc_total{method=\"/cebus.v1.EventBus/PutEvents\",code=\"OK\"}") ==
                ok0 + 2);
    assert_true(sample(after, "cebus_rpc_total{method=\"/cebus.v1.EventBus/PutEvents\","
                              "code=\"UNAUTHENTICATED\"}") >= 1);
    assert_true(sample(after, "cebus_streams_opened_total") == opened0 + 1);
    assert_true(sample(after, "cebus_streams_open") >= 1);

    /* Histograms: the +Inf bucket is the count, and buckets never fall. */
    assert_true(sample(after, "cebus_append_commit_seconds_bucket{le=\"+Inf\"}") ==
                sample(after, "cebus_append_commit_seconds_count"));
    assert_true(sample(after, "cebus_append_commit_seconds_bucket{le=\"0.001\"}") <=
                sample(after, "cebus_append_commit_seconds_bucket{le=\"0.01\"}"));
    assert_true(sample(after, "cebus_rpc_duration_seconds_count{method=\""
                              "/cebus.v1.EventBus/PutEvents\"}") >= 3);

    /* Nothing that names a tenant, a bus or a payload. */
    assert_null(strstr(after, "metrics-acme-corp"));
    assert_null(strstr(after, "secret-orders-bus"));
    assert_null(strstr(after, "PAYLOAD-MARKER-7"));
    assert_null(strstr(after, "cb_"));

    cebus_stream_close(st);
    free(before);
    free(after);
    cebus_client_free(pub);
    cebus_client_free(sub);
    cebus_client_free(nobody);
}

static void test_http_edges(void **state)
{
    struct h_env *env = *state;
    const char *maddr = env->srv[0].metrics_addr;
    static const char notfound[] = "GET /admin HTTP/1.1\r\n\r\n";
    static const char post[] = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    char *r, *big;
    int idle;

    r = http(maddr, notfound, sizeof notfound - 1);
    assert_non_null(strstr(r, "HTTP/1.1 404 "));
    free(r);
    r = http(maddr, post, sizeof post - 1);
    assert_non_null(strstr(r, "HTTP/1.1 405 "));
    free(r);

    /* A head larger than the 8 KiB cap is refused, not buffered. */
    big = malloc(16384);
    memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
    memset(big + 26, 'a', 16384 - 26);
    {
        int fd = connect_to(maddr);
        char buf[512];
        ssize_t n;
        (void)send(fd, big, 16384, MSG_NOSIGNAL);
        n = recv(fd, buf, sizeof buf - 1, 0);
        assert_true(n > 0);
        buf[n] = '\0';
        assert_non_null(strstr(buf, "HTTP/1.1 431 "));
        close(fd);
    }
    free(big);

    /* A client that connects and says nothing is dropped after the I/O
     * limit; the next scrape is then answered. */
    idle = connect_to(maddr);
    r = scrape(maddr);
    assert_non_null(strstr(r, "cebus_build_info{version="));
    free(r);
    close(idle);
}

/* Durable subscriptions: deliveries, acks and nacks are counted, and the
 * in-flight gauge follows the deliveries the server's streams hold. */
static void test_durable_subscription_metrics(void **state)
{
    struct h_env *env = *state;
    const char *maddr = env->srv[0].metrics_addr;
    Cebus__V1__CreateRuleRequest rreq = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__SubscriptionTarget st = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    Cebus__V1__SubscribeRequest sreq;
    Cebus__V1__AckRequest areq = CEBUS__V1__ACK_REQUEST__INIT;
    Cebus__V1__NackRequest nreq = CEBUS__V1__NACK_REQUEST__INIT;
    Cebus__V1__SubscribeResponse *m[2];
    Cebus__V1__Rule *rule = NULL;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s = NULL;
    cebus_error err;
    double deliveries, acks, nacks;
    char *text;

    h_tenant_create_ok(env->admin, "metrics-durable", "orders", &t);
    admin = cebus_client_new(env->srv[0].addr, t.admin_key);
    pub = cebus_client_new(env->srv[0].addr, t.publisher_key);
    sub = cebus_client_new(env->srv[0].addr, t.subscriber_key);
    st.name = "q";
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &st;
    rreq.bus = "orders";
    rreq.name = "r";
    rreq.pattern = "{}";
    rreq.n_targets = 1;
    rreq.targets = targets;
    assert_int_equal(cebus_create_rule(admin, &rreq, &rule, &err), 0);
    cebus__v1__rule__free_unpacked(rule, NULL);

    text = scrape(maddr);
    deliveries = sample(text, "cebus_subscription_deliveries_total");
    acks = sample(text, "cebus_subscription_acks_total");
    nacks = sample(text, "cebus_subscription_nacks_total");
    assert_true(sample(text, "cebus_subscription_in_flight") == 0);
    free(text);

    h_subscribe_request(&sreq, "orders", NULL, "q",
                        CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED, 0);
    assert_int_equal(cebus_subscribe(sub, &sreq, &s, &err), 0);
    h_put_one_ok(pub, "orders", "m1", "t", NULL);
    h_put_one_ok(pub, "orders", "m2", "t", NULL);
    m[0] = h_expect_next(s);
    m[1] = h_expect_next(s);
    text = scrape(maddr);
    assert_true(sample(text, "cebus_subscription_deliveries_total") >= deliveries + 2);
    assert_true(sample(text, "cebus_subscription_in_flight") == 2);
    free(text);

    areq.bus = nreq.bus = "orders";
    areq.subscription = nreq.subscription = "q";
    areq.n_ack_ids = nreq.n_ack_ids = 1;
    areq.ack_ids = &m[0]->ack_id;
    nreq.ack_ids = &m[1]->ack_id;
    nreq.redelivery_delay_ms = 3600000; /* not again during the test */
    assert_int_equal(cebus_ack(sub, &areq, NULL, &err), 0);
    assert_int_equal(cebus_nack(sub, &nreq, NULL, &err), 0);
    text = scrape(maddr);
    assert_true(sample(text, "cebus_subscription_acks_total") == acks + 1);
    assert_true(sample(text, "cebus_subscription_nacks_total") == nacks + 1);
    assert_true(sample(text, "cebus_subscription_in_flight") == 0);
    free(text);

    for (int i = 0; i < 2; i++)
        cebus__v1__subscribe_response__free_unpacked(m[i], NULL);
    cebus_stream_close(s);
    cebus_client_free(admin);
    cebus_client_free(pub);
    cebus_client_free(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_follow_the_work),
        cmocka_unit_test(test_http_edges),
        cmocka_unit_test(test_durable_subscription_metrics),
    };

    return cmocka_run_group_tests(tests, h_env_setup, h_env_teardown);
}
