/* `cebus subscribe`: print the events of a Subscribe stream, one JSON line
 * each, until a count, an idle timeout, a signal or the end of the stream.
 */
#include "cli.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/status.h>

#include "cejson.h"

/* How often the loop looks at the signal flag while no event arrives; a
 * signal cannot interrupt a wait inside gRPC, so this bounds how long
 * Ctrl-C takes to be honoured. */
#define POLL_MS 100
/* Deliveries of a durable subscription are acknowledged in groups of up to
 * this many, and at once whenever the stream goes quiet. */
#define ACK_BATCH 64

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signal_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocking write to a stalled pipe should give up. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills the start position of req from --from. Returns 0 or -1. */
static int parse_from(const char *from, Cebus__V1__SubscribeRequest *req,
                      Google__Protobuf__Timestamp *ts)
{
    uint64_t seq;

    if (strcmp(from, "latest") == 0) {
        req->start = CEBUS__V1__START_POSITION__START_POSITION_LATEST;
    } else if (strcmp(from, "earliest") == 0) {
        req->start = CEBUS__V1__START_POSITION__START_POSITION_EARLIEST;
    } else if (cli_parse_uint(from, UINT64_MAX, &seq) == 0) {
        req->start = CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE;
        req->start_sequence = seq;
    } else if (ce_parse_rfc3339(from, &ts->seconds, &ts->nanos) == 0) {
        req->start = CEBUS__V1__START_POSITION__START_POSITION_TIME;
        req->start_time = ts;
    } else {
        return -1;
    }
    return 0;
}

struct acks {
    char *ids[ACK_BATCH];
    size_t n;
};

/* Acknowledges the pending ack ids, or with nack_error set refuses them
 * with that error (redelivered at once, until they become dead letters),
 * and forgets them. Returns 0 or an exit code. */
static int flush_acks(cebus_client *c, const char *bus, const char *subscription,
                      const char *nack_error, struct acks *k)
{
    cebus_error err;
    int rc = 0;

    if (k->n == 0)
        return 0;
    if (nack_error) {
        Cebus__V1__NackRequest req = CEBUS__V1__NACK_REQUEST__INIT;

        req.bus = (char *)bus;
        req.subscription = (char *)subscription;
        req.n_ack_ids = k->n;
        req.ack_ids = k->ids;
        req.error = (char *)nack_error;
        if (cebus_nack(c, &req, NULL, &err) != 0)
            rc = cli_rpc_error(&err);
    } else {
        Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;

        req.bus = (char *)bus;
        req.subscription = (char *)subscription;
        req.n_ack_ids = k->n;
        req.ack_ids = k->ids;
        if (cebus_ack(c, &req, NULL, &err) != 0)
            rc = cli_rpc_error(&err);
    }
    for (size_t i = 0; i < k->n; i++)
        free(k->ids[i]);
    k->n = 0;
    return rc;
}

static void print_delivery(const Cebus__V1__SubscribeResponse *m, bool with_sequence)
{
    Io__Cloudevents__V1__CloudEvent empty;
    const Io__Cloudevents__V1__CloudEvent *ev = m->event;

    if (!ev) {
        io__cloudevents__v1__cloud_event__init(&empty);
        ev = &empty;
    }

    if (with_sequence) {
        json_t *obj = json_object();
        if (!obj)
            abort();
        json_object_set_new(obj, "sequence", json_integer((json_int_t)m->sequence));
        /* Durable deliveries: how many times this event was delivered. */
        if (m->attempt > 0)
            json_object_set_new(obj, "attempt", json_integer((json_int_t)m->attempt));
        json_object_set_new(obj, "event", ce_to_json(ev));
        cli_print_json(stdout, obj);
    } else {
        char *s = ce_to_json_string(ev);
        printf("%s\n", s);
        free(s);
    }
    /* Consumers downstream of a pipe must see each event as it arrives. */
    fflush(stdout);
}

int cli_cmd_subscribe(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__SubscribeRequest req = CEBUS__V1__SUBSCRIBE_REQUEST__INIT;
    Google__Protobuf__Timestamp start_time = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    const char *bus = cli_get(a, "--bus");
    const char *subscription = cli_get(a, "--subscription");
    const char *nack_error = cli_get(a, "--nack");
    bool with_sequence = cli_get(a, "--sequence") != NULL;
    uint64_t max_count = 0, idle_ms = 0, received = 0;
    struct acks acks = {.n = 0};
    cebus_stream *s = NULL;
    char *pattern = NULL;
    cebus_error err;
    int64_t last_event;
    int rc = CLI_EXIT_OK;

    if (!bus || !*bus)
        return cli_usage_error(a, "--bus is required");
    if (cli_get(a, "--pattern") && subscription)
        return cli_usage_error(a, "--pattern and --subscription are mutually exclusive");
    if (cli_get(a, "--from") && parse_from(cli_get(a, "--from"), &req, &start_time) != 0)
        return cli_usage_error(a, "--from must be latest, earliest, a sequence or an RFC 3339 time");
    if (nack_error && (!subscription || cli_get(a, "--from")))
        return cli_usage_error(a, "--nack needs --subscription without --from");
    if (nack_error && strlen(nack_error) > 1024)
        return cli_usage_error(a, "--nack: the error is at most 1024 bytes");
    if (cli_get(a, "--count") &&
        (cli_parse_uint(cli_get(a, "--count"), UINT64_MAX, &max_count) != 0 || max_count == 0))
        return cli_usage_error(a, "--count must be a positive number");
    if (cli_get(a, "--idle-timeout-ms") &&
        (cli_parse_uint(cli_get(a, "--idle-timeout-ms"), INT_MAX, &idle_ms) != 0 || idle_ms == 0))
        return cli_usage_error(a, "--idle-timeout-ms must be a positive number");
    if (subscription) {
        req.subscription = (char *)subscription;
    } else {
        pattern = cli_value_or_file("--pattern", cli_get(a, "--pattern") ? cli_get(a, "--pattern") : "{}");
        if (!pattern)
            return CLI_EXIT_ERROR;
        req.pattern = pattern;
    }
    req.bus = (char *)bus;

    install_signal_handlers();
    if (cebus_subscribe(c, &req, &s, &err) != 0) {
        rc = cli_rpc_error(&err);
        goto out;
    }
    last_event = now_ms();
    while (!stop_requested) {
        Cebus__V1__SubscribeResponse *m = NULL;
        int wait = POLL_MS, r;

        if (idle_ms) {
            int64_t left = (int64_t)idle_ms - (now_ms() - last_event);
            if (left <= 0)
                break;
            if (left < wait)
                wait = (int)left;
        }
        /* With acks pending, only take what is already there; a quiet
         * stream then gets its acks before the next wait. */
        r = cebus_stream_next(s, acks.n ? 0 : wait, &m, &err);
        if (r == 0) {
            rc = flush_acks(c, bus, subscription, nack_error, &acks);
            if (rc != 0)
                break;
            continue;
        }
        if (r < 0) {
            if (err.code != GRPC_STATUS_OK)
                rc = cli_rpc_error(&err);
            break;
        }
        print_delivery(m, with_sequence);
        if (subscription && m->ack_id && *m->ack_id) {
            acks.ids[acks.n] = strdup(m->ack_id);
            if (!acks.ids[acks.n])
                abort();
            acks.n++;
        }
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
        last_event = now_ms();
        received++;
        if ((max_count && received >= max_count) || acks.n == ACK_BATCH) {
            rc = flush_acks(c, bus, subscription, nack_error, &acks);
            if (rc != 0 || (max_count && received >= max_count))
                break;
        }
    }
    /* What was printed was delivered: acknowledge it even when stopping.
     * After a failed ack there is no point in trying again. */
    if (rc == CLI_EXIT_OK)
        rc = flush_acks(c, bus, subscription, nack_error, &acks);
out:
    for (size_t i = 0; i < acks.n; i++)
        free(acks.ids[i]);
    cebus_stream_close(s);
    free(pattern);
    return rc;
}
