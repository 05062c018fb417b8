/* `cebus pattern test`: TestEventPattern on one event (match, or why not)
 * or as a dry run on the newest events of a bus (how many match, with
 * samples).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "cejson.h"

#define METHOD "/cebus.v1.EventBus/TestEventPattern"

/* Reads --event (JSON, @FILE or "-" for stdin) into a new CloudEvent.
 * Returns 0, or an exit code after printing why. */
static int read_event(const char *v, Io__Cloudevents__V1__CloudEvent **out)
{
    char *text;
    size_t len;
    json_error_t jerr;
    json_t *obj;
    char why[256];
    int rc = 0;

    if (strcmp(v, "-") == 0) {
        text = cli_read_file("-", &len);
        if (!text)
            return cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "--event: cannot read stdin: %s",
                            strerror(errno));
    } else {
        text = cli_value_or_file("--event", v);
        if (!text)
            return CLI_EXIT_ERROR;
    }
    obj = json_loads(text, 0, &jerr);
    if (!obj)
        rc = cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "--event: not JSON: %s", jerr.text);
    else if (ce_from_json(obj, out, why, sizeof(why)) != 0)
        rc = cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "--event: %s", why);
    json_decref(obj);
    free(text);
    return rc;
}

/* Fills the dry-run fields of req from --last, --since and --samples.
 * Returns 0 or a usage exit code. */
static int dry_run_options(const struct cli_args *a, Cebus__V1__TestEventPatternRequest *req,
                           Google__Protobuf__Timestamp *since)
{
    uint64_t v;

    if (cli_get(a, "--last")) {
        if (cli_parse_uint(cli_get(a, "--last"), UINT32_MAX, &v) != 0 || v == 0)
            return cli_usage_error(a, "--last must be a positive number of events");
        req->last = (uint32_t)v;
    }
    if (cli_get(a, "--samples")) {
        if (cli_parse_uint(cli_get(a, "--samples"), UINT32_MAX, &v) != 0 || v == 0)
            return cli_usage_error(a, "--samples must be a positive number");
        req->max_samples = (uint32_t)v;
    }
    if (cli_get(a, "--since")) {
        if (ce_parse_rfc3339(cli_get(a, "--since"), &since->seconds, &since->nanos) != 0)
            return cli_usage_error(a, "--since must be an RFC 3339 time, e.g. 2024-05-01T12:00:00Z");
        req->since = since;
    }
    return 0;
}

/* Prints the outcome of a dry run; returns the exit code. */
static int print_dry_run(const Cebus__V1__TestEventPatternResponse *resp)
{
    printf("matched %" PRIu64 " of %" PRIu64 " event%s\n", resp->matched_count, resp->examined,
           resp->examined == 1 ? "" : "s");
    for (size_t i = 0; i < resp->n_samples; i++) {
        const Cebus__V1__TestEventPatternSample *s = resp->samples[i];
        Io__Cloudevents__V1__CloudEvent empty;
        json_t *obj = json_object();

        if (!obj)
            abort();
        if (!s->event)
            io__cloudevents__v1__cloud_event__init(&empty);
        json_object_set_new(obj, "sequence", json_integer((json_int_t)s->sequence));
        json_object_set_new(obj, "event", ce_to_json(s->event ? s->event : &empty));
        cli_print_json(stdout, obj);
    }
    return resp->matched_count > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

int cli_cmd_pattern_test(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__TestEventPatternRequest req = CEBUS__V1__TEST_EVENT_PATTERN_REQUEST__INIT;
    Google__Protobuf__Timestamp since = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Cebus__V1__TestEventPatternResponse *resp = NULL;
    Io__Cloudevents__V1__CloudEvent *ev = NULL;
    const char *bus = cli_get(a, "--bus");
    const char *event = cli_get(a, "--event");
    char *pattern = NULL;
    cebus_error err;
    int rc;

    if (!cli_get(a, "--pattern"))
        return cli_usage_error(a, "--pattern is required");
    if ((bus != NULL) == (event != NULL))
        return cli_usage_error(a, "give one of --event and --bus");
    if (bus && !*bus)
        return cli_usage_error(a, "--bus must name a bus");
    if (event && (cli_get(a, "--last") || cli_get(a, "--since") || cli_get(a, "--samples")))
        return cli_usage_error(a, "--last, --since and --samples go with --bus");
    if (bus) {
        rc = dry_run_options(a, &req, &since);
        if (rc != 0)
            return rc;
        req.bus = (char *)bus;
    }
    pattern = cli_value_or_file("--pattern", cli_get(a, "--pattern"));
    if (!pattern)
        return CLI_EXIT_ERROR;
    req.pattern = pattern;
    if (event) {
        rc = read_event(event, &ev);
        if (rc != 0)
            goto out;
        req.event = ev;
    }
    rc = cebus_call_unary(c, METHOD, &req.base, &cebus__v1__test_event_pattern_response__descriptor,
                          0, (ProtobufCMessage **)&resp, &err);
    if (rc != 0) {
        rc = cli_rpc_error(&err);
        goto out;
    }
    if (bus) {
        rc = print_dry_run(resp);
    } else if (resp->matched) {
        printf("match\n");
        rc = CLI_EXIT_OK;
    } else {
        printf("no match: %s\n", resp->reason);
        rc = CLI_EXIT_ERROR;
    }
out:
    cebus__v1__test_event_pattern_response__free_unpacked(resp, NULL);
    io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
    free(pattern);
    return rc;
}
