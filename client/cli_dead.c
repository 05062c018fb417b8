/* CLI handlers for durable subscriptions' dead letters (`cebus dlq
 * list|redrive|purge`) and for moving a subscription (`cebus subscription
 * seek`). Each prints the JSON form of what came back, one object per line.
 */
#include "cli.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"
#include "cejson.h"

/* Sequences one redrive or purge may name (the server's limit). */
#define MAX_SEQUENCES 1000

/* Reads the required --bus and --subscription. Returns 0, or the usage
 * error's exit code. */
static int sub_args(const struct cli_args *a, const char **bus, const char **sub)
{
    *bus = cli_get(a, "--bus");
    *sub = cli_get(a, "--subscription");
    if (!*bus || !**bus)
        return cli_usage_error(a, "--bus is required");
    if (!*sub || !**sub)
        return cli_usage_error(a, "--subscription is required");
    return 0;
}

/* The selection of dlq redrive and purge: every --sequence (into a new
 * array *seqs, free() it) and --reason. Returns 0, or the usage error's
 * exit code. */
static int dead_filter(const struct cli_args *a, uint64_t **seqs, size_t *nseqs,
                       const char **reason)
{
    int n = cli_count(a, "--sequence");

    *seqs = NULL;
    *nseqs = 0;
    *reason = cli_get(a, "--reason");
    if (!*reason)
        *reason = "";
    if (**reason && strcmp(*reason, "max_attempts") != 0 && strcmp(*reason, "max_age") != 0)
        return cli_usage_error(a, "--reason must be max_attempts or max_age");
    if (n > MAX_SEQUENCES)
        return cli_usage_error(a, "at most %d --sequence", MAX_SEQUENCES);
    if (n == 0)
        return 0;
    *seqs = calloc((size_t)n, sizeof **seqs);
    if (!*seqs)
        abort();
    for (int i = 0; i < n; i++)
        if (cli_parse_uint(cli_nth(a, "--sequence", i), INT64_MAX, &(*seqs)[i]) != 0 ||
            (*seqs)[i] == 0) {
            free(*seqs);
            *seqs = NULL;
            return cli_usage_error(a, "--sequence must be a sequence number (1 or more)");
        }
    *nseqs = (size_t)n;
    return 0;
}

int cli_cmd_dlq_list(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__ListDeadLettersRequest req = CEBUS__V1__LIST_DEAD_LETTERS_REQUEST__INIT;
    const char *bus, *sub;
    int rc = sub_args(a, &bus, &sub);

    if (rc)
        return rc;
    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    return cli_list_all(c, "/cebus.v1.Admin/ListDeadLetters", &req.base,
                        &cebus__v1__list_dead_letters_response__descriptor, "dead_letters");
}

int cli_cmd_dlq_redrive(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__RedriveDeadLettersRequest req = CEBUS__V1__REDRIVE_DEAD_LETTERS_REQUEST__INIT;
    const char *bus, *sub, *reason;
    uint64_t *seqs = NULL;
    size_t nseqs = 0;
    int rc = sub_args(a, &bus, &sub);

    if (!rc)
        rc = dead_filter(a, &seqs, &nseqs, &reason);
    if (rc)
        return rc;
    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    req.sequences = seqs;
    req.n_sequences = nseqs;
    req.reason = (char *)reason;
    rc = cli_call_print(c, "/cebus.v1.Admin/RedriveDeadLetters", &req.base,
                        &cebus__v1__redrive_dead_letters_response__descriptor, true);
    free(seqs);
    return rc;
}

int cli_cmd_dlq_purge(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__PurgeDeadLettersRequest req = CEBUS__V1__PURGE_DEAD_LETTERS_REQUEST__INIT;
    const char *bus, *sub, *reason;
    uint64_t *seqs = NULL;
    size_t nseqs = 0;
    int rc = sub_args(a, &bus, &sub);

    if (!rc)
        rc = dead_filter(a, &seqs, &nseqs, &reason);
    if (rc)
        return rc;
    /* Deleting every dead letter is said out loud. */
    if (nseqs == 0 && !*reason && !cli_get(a, "--all"))
        return cli_usage_error(a, "give --sequence, --reason, or --all to purge every dead letter");
    if ((nseqs > 0 || *reason) && cli_get(a, "--all")) {
        free(seqs);
        return cli_usage_error(a, "--all purges every dead letter: no --sequence or --reason");
    }
    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    req.sequences = seqs;
    req.n_sequences = nseqs;
    req.reason = (char *)reason;
    rc = cli_call_print(c, "/cebus.v1.Admin/PurgeDeadLetters", &req.base,
                        &cebus__v1__purge_dead_letters_response__descriptor, true);
    free(seqs);
    return rc;
}

int cli_cmd_subscription_seek(cebus_client *c, const struct cli_args *a)
{
    Cebus__V1__SeekRequest req = CEBUS__V1__SEEK_REQUEST__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    const char *bus, *sub, *v;
    int given = (cli_get(a, "--time") != NULL) + (cli_get(a, "--sequence") != NULL) +
                (cli_get(a, "--earliest") != NULL) + (cli_get(a, "--latest") != NULL);
    int rc = sub_args(a, &bus, &sub);

    if (rc)
        return rc;
    if (given != 1)
        return cli_usage_error(a, "give one of --time, --sequence, --earliest, --latest");
    if (cli_get(a, "--earliest")) {
        req.position = CEBUS__V1__START_POSITION__START_POSITION_EARLIEST;
    } else if (cli_get(a, "--latest")) {
        req.position = CEBUS__V1__START_POSITION__START_POSITION_LATEST;
    } else if ((v = cli_get(a, "--sequence")) != NULL) {
        if (cli_parse_uint(v, INT64_MAX, &req.sequence) != 0 || req.sequence == 0)
            return cli_usage_error(a, "--sequence must be a sequence number (1 or more)");
        req.position = CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE;
    } else {
        if (ce_parse_rfc3339(cli_get(a, "--time"), &ts.seconds, &ts.nanos) != 0)
            return cli_usage_error(a, "--time must be an RFC 3339 time");
        req.position = CEBUS__V1__START_POSITION__START_POSITION_TIME;
        req.time = &ts;
    }
    req.bus = (char *)bus;
    req.subscription = (char *)sub;
    return cli_call_print(c, "/cebus.v1.EventBus/Seek", &req.base,
                          &cebus__v1__seek_response__descriptor, true);
}
