/* `cebus`: the command-line client. This file holds the command table,
 * the argument parser and main(); the handlers live in cli_admin.c,
 * cli_put.c, cli_subscribe.c and cli_pattern.c.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/status.h>

#include "addr.h"

#define GLOBAL_USAGE                                                                     \
    "Global options (before or after the command):\n"                                   \
    "  --addr HOST:PORT   server address (default $CEBUS_ADDR or 127.0.0.1:50051)\n"    \
    "  --key KEY          API key (default $CEBUS_API_KEY)\n"                           \
    "  --timeout-ms N     deadline of each call (default 30000)\n"                      \
    "  --tls-ca FILE      PEM CA certificates that verify the server ($CEBUS_TLS_CA)\n" \
    "  --tls-cert FILE    PEM client certificate, for mTLS ($CEBUS_TLS_CERT)\n"         \
    "  --tls-key FILE     its PEM private key ($CEBUS_TLS_KEY)\n"                       \
    "  --tls-server-name NAME  name the server's certificate must carry, when not the\n" \
    "                     host of --addr ($CEBUS_TLS_SERVER_NAME)\n"                     \
    "  --plaintext        no TLS, also to a non-loopback address ($CEBUS_PLAINTEXT=1)\n" \
    "Any --tls-* option means TLS. Without one, loopback addresses are reached in\n"    \
    "plaintext and other addresses over TLS, verified with the system's CAs.\n"

/* ---- Option tables --------------------------------------------------- */

static const struct cli_opt no_opts[] = {{NULL, CLI_FLAG}};
static const struct cli_opt tenant_create_opts[] = {{"--display-name", CLI_VALUE},
                                                    {NULL, CLI_FLAG}};
static const struct cli_opt key_create_opts[] = {{"--tenant", CLI_VALUE},
                                                 {"--role", CLI_VALUE},
                                                 {"--description", CLI_VALUE},
                                                 {NULL, CLI_FLAG}};
static const struct cli_opt bus_create_opts[] = {{"--tenant", CLI_VALUE},
                                                 {"--retention-hours", CLI_VALUE},
                                                 {"--dedup-window-seconds", CLI_VALUE},
                                                 {NULL, CLI_FLAG}};
static const struct cli_opt bus_list_opts[] = {{"--tenant", CLI_VALUE}, {NULL, CLI_FLAG}};
static const struct cli_opt tenant_update_opts[] = {{"--display-name", CLI_VALUE},
                                                    {"--disabled", CLI_FLAG},
                                                    {"--enabled", CLI_FLAG},
                                                    {NULL, CLI_FLAG}};
static const struct cli_opt bus_update_opts[] = {{"--tenant", CLI_VALUE},
                                                 {"--retention-hours", CLI_VALUE},
                                                 {"--dedup-window-seconds", CLI_VALUE},
                                                 {NULL, CLI_FLAG}};
static const struct cli_opt rule_create_opts[] = {{"--bus", CLI_VALUE},
                                                  {"--pattern", CLI_VALUE},
                                                  {"--subscription", CLI_MULTI},
                                                  {"--description", CLI_VALUE},
                                                  {"--disabled", CLI_FLAG},
                                                  {"--ack-deadline-seconds", CLI_VALUE},
                                                  {"--max-attempts", CLI_VALUE},
                                                  {"--max-age-seconds", CLI_VALUE},
                                                  {"--max-outstanding", CLI_VALUE},
                                                  {NULL, CLI_FLAG}};
static const struct cli_opt rule_bus_opts[] = {{"--bus", CLI_VALUE}, {NULL, CLI_FLAG}};
static const struct cli_opt rule_update_opts[] = {{"--bus", CLI_VALUE},
                                                  {"--pattern", CLI_VALUE},
                                                  {"--description", CLI_VALUE},
                                                  {"--subscription", CLI_MULTI},
                                                  {"--no-subscriptions", CLI_FLAG},
                                                  {"--ack-deadline-seconds", CLI_VALUE},
                                                  {"--max-attempts", CLI_VALUE},
                                                  {"--max-age-seconds", CLI_VALUE},
                                                  {"--max-outstanding", CLI_VALUE},
                                                  {NULL, CLI_FLAG}};
static const struct cli_opt put_opts[] = {{"--bus", CLI_VALUE},
                                          {"--type", CLI_VALUE},
                                          {"--source", CLI_VALUE},
                                          {"--id", CLI_VALUE},
                                          {"--subject", CLI_VALUE},
                                          {"--time", CLI_VALUE},
                                          {"--content-type", CLI_VALUE},
                                          {"--attr", CLI_MULTI},
                                          {"--data", CLI_VALUE},
                                          {"--data-file", CLI_VALUE},
                                          {"--data-stdin", CLI_FLAG},
                                          {"--jsonl", CLI_FLAG},
                                          {"--batch", CLI_VALUE},
                                          {NULL, CLI_FLAG}};
static const struct cli_opt subscribe_opts[] = {{"--bus", CLI_VALUE},
                                                {"--pattern", CLI_VALUE},
                                                {"--subscription", CLI_VALUE},
                                                {"--from", CLI_VALUE},
                                                {"--nack", CLI_VALUE},
                                                {"--count", CLI_VALUE},
                                                {"--idle-timeout-ms", CLI_VALUE},
                                                {"--sequence", CLI_FLAG},
                                                {NULL, CLI_FLAG}};
static const struct cli_opt grant_opts[] = {{"--bus", CLI_VALUE},
                                            {"--tenant", CLI_VALUE},
                                            {"--permission", CLI_VALUE},
                                            {NULL, CLI_FLAG}};
static const struct cli_opt source_opts[] = {{"--tenant", CLI_VALUE}, {NULL, CLI_FLAG}};
static const struct cli_opt quota_set_opts[] = {{"--events-per-second", CLI_VALUE},
                                                {"--bytes-per-second", CLI_VALUE},
                                                {"--burst-seconds", CLI_VALUE},
                                                {"--rules-per-bus", CLI_VALUE},
                                                {"--subscriptions", CLI_VALUE},
                                                {"--concurrent-streams", CLI_VALUE},
                                                {NULL, CLI_FLAG}};
static const struct cli_opt dlq_list_opts[] = {{"--bus", CLI_VALUE},
                                               {"--subscription", CLI_VALUE},
                                               {NULL, CLI_FLAG}};
static const struct cli_opt dlq_change_opts[] = {{"--bus", CLI_VALUE},
                                                 {"--subscription", CLI_VALUE},
                                                 {"--sequence", CLI_MULTI},
                                                 {"--reason", CLI_VALUE},
                                                 {"--all", CLI_FLAG},
                                                 {NULL, CLI_FLAG}};
static const struct cli_opt seek_opts[] = {{"--bus", CLI_VALUE},     {"--subscription", CLI_VALUE},
                                           {"--time", CLI_VALUE},    {"--sequence", CLI_VALUE},
                                           {"--earliest", CLI_FLAG}, {"--latest", CLI_FLAG},
                                           {NULL, CLI_FLAG}};
static const struct cli_opt pattern_test_opts[] = {{"--pattern", CLI_VALUE},
                                                   {"--event", CLI_VALUE},
                                                   {"--bus", CLI_VALUE},
                                                   {"--last", CLI_VALUE},
                                                   {"--since", CLI_VALUE},
                                                   {"--samples", CLI_VALUE},
                                                   {NULL, CLI_FLAG}};

/* ---- The command table ------------------------------------------------- */

static const struct cli_command commands[] = {
    {"health", NULL, cli_cmd_health, no_opts, 0, 0, "check that the server is serving",
     "usage: cebus health\n\n"
     "Calls grpc.health.v1.Health/Check. Prints SERVING and exits 0 when the\n"
     "server serves, prints the status and exits 1 otherwise.\n"},
    {"tenant", "create", cli_cmd_tenant_create, tenant_create_opts, 1, 1, "create a tenant",
     "usage: cebus tenant create NAME [--display-name S]\n\n"
     "Creates a tenant (platform admin key) and prints it as JSON.\n"},
    {"tenant", "get", cli_cmd_tenant_get, no_opts, 0, 1, "show a tenant",
     "usage: cebus tenant get [NAME]\n\n"
     "Prints the tenant as JSON; without NAME, the key's own tenant. A tenant\n"
     "admin may read its own tenant only.\n"},
    {"tenant", "list", cli_cmd_tenant_list, no_opts, 0, 0, "list tenants",
     "usage: cebus tenant list\n\n"
     "Prints every tenant (all pages), one JSON object per line. Platform admin\n"
     "key only.\n"},
    {"tenant", "update", cli_cmd_tenant_update, tenant_update_opts, 1, 1, "update a tenant",
     "usage: cebus tenant update NAME [--display-name S] [--disabled | --enabled]\n\n"
     "Changes the given fields and prints the tenant as JSON. Only a platform\n"
     "admin may disable or enable a tenant; a disabled tenant's keys stop working\n"
     "and its open streams end within about a second. The \"platform\" tenant\n"
     "cannot be disabled.\n"},
    {"tenant", "delete", cli_cmd_tenant_delete, no_opts, 1, 1, "delete a tenant",
     "usage: cebus tenant delete NAME\n\n"
     "Deletes the tenant with its keys, buses, rules and events (platform admin\n"
     "key). This cannot be undone. The \"platform\" tenant cannot be deleted.\n"},
    {"key", "create", cli_cmd_key_create, key_create_opts, 0, 0, "create an API key",
     "usage: cebus key create [--tenant T] --role ROLE [--description S]\n\n"
     "ROLE is platform-admin, tenant-admin, publisher or subscriber.\n"
     "Prints the secret alone on the first line of stdout and the key's\n"
     "description as JSON on stderr, so that KEY=$(cebus key create ...) works.\n"},
    {"key", "list", cli_cmd_key_list, bus_list_opts, 0, 0, "list API keys",
     "usage: cebus key list [--tenant T]\n\n"
     "Prints every key of the tenant (default: the key's own), one JSON object\n"
     "per line. Secrets are never shown: \"id\" is the key's non-secret prefix.\n"},
    {"key", "revoke", cli_cmd_key_revoke, no_opts, 1, 1, "revoke an API key",
     "usage: cebus key revoke ID\n\n"
     "Revokes the key whose id (prefix) is ID, as `cebus key list` shows it. It\n"
     "stops working on every server within about a second, open streams\n"
     "included. The last platform admin key cannot be revoked.\n"},
    {"bus", "create", cli_cmd_bus_create, bus_create_opts, 1, 1, "create a bus",
     "usage: cebus bus create NAME [--tenant T] [--retention-hours N]\n"
     "                        [--dedup-window-seconds N]\n\n"
     "Creates a bus and prints it as JSON. 0 or absent means the server's default.\n"},
    {"bus", "list", cli_cmd_bus_list, bus_list_opts, 0, 0, "list buses",
     "usage: cebus bus list [--tenant T]\n\n"
     "Prints every bus (all pages), one JSON object per line.\n"},
    {"bus", "get", cli_cmd_bus_get, bus_list_opts, 1, 1, "show a bus",
     "usage: cebus bus get NAME [--tenant T]\n\n"
     "Prints the bus as JSON. NAME may also be written TENANT/NAME.\n"},
    {"bus", "update", cli_cmd_bus_update, bus_update_opts, 1, 1, "update a bus",
     "usage: cebus bus update NAME [--tenant T] [--retention-hours N]\n"
     "                        [--dedup-window-seconds N]\n\n"
     "Changes the given settings and prints the bus as JSON. 0 means the\n"
     "server's default, as with `cebus bus create`.\n"},
    {"bus", "delete", cli_cmd_bus_delete, bus_list_opts, 1, 1, "delete a bus",
     "usage: cebus bus delete NAME [--tenant T]\n\n"
     "Deletes the bus with its rules, subscriptions and events. Open streams on\n"
     "it end with NOT_FOUND. This cannot be undone.\n"},
    {"rule", "create", cli_cmd_rule_create, rule_create_opts, 1, 1, "create a rule",
     "usage: cebus rule create --bus B NAME --pattern JSON|@FILE [--subscription S]...\n"
     "                         [--description S] [--disabled]\n"
     "                         [--ack-deadline-seconds N] [--max-attempts N]\n"
     "                         [--max-age-seconds N] [--max-outstanding N]\n\n"
     "Creates a rule whose targets are the named subscriptions and prints it\n"
     "as JSON. --pattern @FILE reads the pattern from FILE. The settings apply to\n"
     "every --subscription given (0 or absent: the default): the ack deadline\n"
     "(30; 1 to 600), deliveries before an event becomes a dead letter (5; 1 to\n"
     "100), the age at which it does (0: the bus's retention only) and the events\n"
     "outstanding at most (10000; 1 to 100000).\n"},
    {"rule", "get", cli_cmd_rule_get, rule_bus_opts, 1, 1, "show a rule",
     "usage: cebus rule get --bus B NAME\n\nPrints the rule as JSON.\n"},
    {"rule", "list", cli_cmd_rule_list, rule_bus_opts, 0, 0, "list the rules of a bus",
     "usage: cebus rule list --bus B\n\n"
     "Prints every rule of the bus (all pages), one JSON object per line.\n"},
    {"rule", "update", cli_cmd_rule_update, rule_update_opts, 1, 1, "change a rule",
     "usage: cebus rule update --bus B NAME [--pattern JSON|@FILE] [--description S]\n"
     "                         [--subscription S]... [--no-subscriptions]\n"
     "                         [--ack-deadline-seconds N] [--max-attempts N]\n"
     "                         [--max-age-seconds N] [--max-outstanding N]\n\n"
     "Replaces what is given and prints the rule as JSON. --subscription (repeatable)\n"
     "replaces the rule's subscription targets, with the settings given (as in\n"
     "rule create; a subscription keeps its deliveries and position when its name\n"
     "stays); --no-subscriptions removes them all.\n"
     "Open streams on the rule's subscriptions follow the change within about a\n"
     "second, on every server, without losing or repeating events; streams on a\n"
     "subscription the rule no longer targets end with NOT_FOUND.\n"},
    {"rule", "enable", cli_cmd_rule_enable, rule_bus_opts, 1, 1, "enable a rule",
     "usage: cebus rule enable --bus B NAME\n\n"
     "Its subscriptions' open streams deliver again, from the events published\n"
     "after the change: events published while the rule was disabled are not\n"
     "delivered. Prints the rule as JSON.\n"},
    {"rule", "disable", cli_cmd_rule_disable, rule_bus_opts, 1, 1, "disable a rule",
     "usage: cebus rule disable --bus B NAME\n\n"
     "Its subscriptions' open streams stay open and deliver nothing until the rule\n"
     "is enabled again. Prints the rule as JSON.\n"},
    {"rule", "delete", cli_cmd_rule_delete, rule_bus_opts, 1, 1, "delete a rule",
     "usage: cebus rule delete --bus B NAME\n\n"
     "Open streams on the rule's subscriptions end with NOT_FOUND.\n"},
    {"put", NULL, cli_cmd_put, put_opts, 0, 1, "publish events",
     "usage: cebus put --bus B --type T --source S [--id ID] [--subject S]\n"
     "                 [--time RFC3339] [--content-type CT] [--attr KEY=VALUE]...\n"
     "                 [--data STRING | --data-file FILE | --data-stdin]\n"
     "       cebus put --bus B --jsonl [FILE|-] [--batch N]\n\n"
     "The first form publishes one event and prints its sequence. --id defaults\n"
     "to a random UUID. Without --content-type, data that parses as JSON is sent\n"
     "as application/json; data that is not UTF-8 is sent as binary.\n\n"
     "The second form reads CloudEvents JSON objects, one per line, from FILE or\n"
     "stdin, sends them in batches of up to N (default and maximum 500), and\n"
     "prints one line per event: its sequence, or \"error: CODE MESSAGE\". It\n"
     "exits 1 if any event was rejected.\n"},
    {"subscribe", NULL, cli_cmd_subscribe, subscribe_opts, 0, 0, "stream events of a bus",
     "usage: cebus subscribe --bus B [--pattern JSON|@FILE | --subscription S]\n"
     "                       [--from latest|earliest|SEQUENCE|RFC3339-TIME]\n"
     "                       [--count N] [--idle-timeout-ms N] [--sequence]\n"
     "                       [--nack ERROR]\n\n"
     "Prints each matching event as one line of CloudEvents JSON; with\n"
     "--sequence, as {\"sequence\":N,\"event\":{...}}. Without --pattern or\n"
     "--subscription, the pattern is {}. --subscription without --from is the\n"
     "subscription's durable stream: it resumes where the subscription is, each\n"
     "event is acknowledged once printed (unacknowledged ones come back after\n"
     "the ack deadline), and --sequence adds \"attempt\":A, the delivery's number.\n"
     "--nack ERROR refuses each printed event instead, with ERROR as its last\n"
     "error: it comes back at once, until its attempts run out and it becomes a\n"
     "dead letter (see `cebus dlq`). With --from it only reads the rule's\n"
     "matches and acknowledges nothing.\n"
     "Exits 0 after --count events, after\n"
     "--idle-timeout-ms without events, on SIGINT or SIGTERM, or when the server\n"
     "ends the stream cleanly; exits 1 when the stream ends with an error.\n"},
    {"grant", "create", cli_cmd_grant_create, grant_opts, 0, 0,
     "let another tenant publish, subscribe or manage rules on a bus",
     "usage: cebus grant create --bus B --tenant T --permission P\n\n"
     "Grants tenant T permission P (publish, subscribe or manage-rules) on bus B\n"
     "(\"name\" or \"tenant/name\") and prints the grant as JSON. T then reaches the\n"
     "bus as \"OWNER/B\" with its own keys: publish for `cebus put`, subscribe for\n"
     "`cebus subscribe`, `cebus pattern test --bus` and reading rules, manage-rules\n"
     "for creating and deleting rules. Needs the bus owner's tenant admin key or a\n"
     "platform admin key.\n"},
    {"grant", "list", cli_cmd_grant_list, grant_opts, 0, 0, "list the grants on a bus",
     "usage: cebus grant list --bus B\n\n"
     "Prints every grant on bus B, one JSON object per line.\n"},
    {"grant", "revoke", cli_cmd_grant_revoke, grant_opts, 0, 0, "revoke a grant",
     "usage: cebus grant revoke --bus B --tenant T --permission P\n\n"
     "Revokes the grant. Calls stop using it within about a second; T's open\n"
     "streams on the bus end with PERMISSION_DENIED within about a second.\n"},
    {"source", "add", cli_cmd_source_add, source_opts, 1, 1, "register an event source prefix",
     "usage: cebus source add [--tenant T] PREFIX\n\n"
     "Registers PREFIX (1 to 1024 bytes) as a source the tenant (default: the\n"
     "key's own) may publish under: once a tenant has one, PutEvents rejects its\n"
     "events whose source does not start with one of its prefixes.\n"},
    {"source", "list", cli_cmd_source_list, source_opts, 0, 0,
     "list a tenant's event source prefixes",
     "usage: cebus source list [--tenant T]\n\n"
     "Prints every registered prefix of the tenant, one JSON object per line.\n"},
    {"source", "remove", cli_cmd_source_remove, source_opts, 1, 1,
     "remove an event source prefix",
     "usage: cebus source remove [--tenant T] PREFIX\n\n"
     "Removes a registered prefix; publishing under it stops within about a\n"
     "second.\n"},
    {"quota", "get", cli_cmd_quota_get, no_opts, 0, 1, "show a tenant's quota",
     "usage: cebus quota get [TENANT]\n\n"
     "Prints the tenant's effective quota (the server's defaults filled in) as\n"
     "JSON. Without TENANT, the key's own tenant. A tenant admin may read its\n"
     "own tenant's quota only; a platform admin any tenant's.\n"},
    {"quota", "set", cli_cmd_quota_set, quota_set_opts, 1, 1, "set a tenant's quota",
     "usage: cebus quota set TENANT [--events-per-second N] [--bytes-per-second N]\n"
     "                       [--burst-seconds N] [--rules-per-bus N]\n"
     "                       [--subscriptions N] [--concurrent-streams N]\n\n"
     "Replaces the tenant's quota and prints the effective one as JSON. A flag\n"
     "left out, or given as 0, means the server's default, so each call states\n"
     "the whole quota. Needs a platform admin key. Past the rates, PutEvents\n"
     "answers RESOURCE_EXHAUSTED with the wait in the message and in trailing\n"
     "metadata retry-after-ms; past the counts, CreateRule and Subscribe answer\n"
     "RESOURCE_EXHAUSTED. Changes apply at once on the server that made them and\n"
     "within about a second on the others.\n"},
    {"subscription", "seek", cli_cmd_subscription_seek, seek_opts, 0, 0,
     "move a durable subscription",
     "usage: cebus subscription seek --bus B --subscription S\n"
     "                               (--time RFC3339 | --sequence N | --earliest | --latest)\n\n"
     "Moves subscription S of bus B: its next delivery is the first matching\n"
     "event received at or after --time, from sequence N, from the oldest retained\n"
     "event, or only events published from now on. Seeking back delivers acked\n"
     "events again; deliveries outstanding are cancelled (their acks no longer\n"
     "apply); dead letters stay. Prints {\"next_sequence\":N}. A sequence older than\n"
     "the bus's retention fails with OUT_OF_RANGE naming the oldest retained one.\n"
     "Needs an admin or subscriber key of the bus's tenant, or of a tenant holding\n"
     "subscribe on it.\n"},
    {"dlq", "list", cli_cmd_dlq_list, dlq_list_opts, 0, 0,
     "list a durable subscription's dead letters",
     "usage: cebus dlq list --bus B --subscription S\n\n"
     "Prints every dead letter of subscription S (all pages), one JSON object per\n"
     "line: sequence, reason (max_attempts or max_age), last_error, attempts,\n"
     "create_time, and the event while the bus still retains it. Needs an admin\n"
     "key of the bus's tenant or of a tenant holding manage-rules on it, or a\n"
     "platform admin key.\n"},
    {"dlq", "redrive", cli_cmd_dlq_redrive, dlq_change_opts, 0, 0,
     "deliver dead letters again",
     "usage: cebus dlq redrive --bus B --subscription S [--sequence N]...\n"
     "                         [--reason max_attempts|max_age]\n\n"
     "Marks the selected dead letters (those with these sequences and this\n"
     "reason; without either, all of them) to be delivered again, attempts\n"
     "counted from zero, and prints {\"count\":N}, how many it marked. Dead\n"
     "letters whose event has expired are skipped. Keys as for dlq list.\n"},
    {"dlq", "purge", cli_cmd_dlq_purge, dlq_change_opts, 0, 0, "delete dead letters",
     "usage: cebus dlq purge --bus B --subscription S\n"
     "                       ([--sequence N]... [--reason max_attempts|max_age] | --all)\n\n"
     "Deletes the selected dead letters (--all: every one) and prints\n"
     "{\"count\":N}, how many it deleted. Keys as for dlq list.\n"},
    {"pattern", "test", cli_cmd_pattern_test, pattern_test_opts, 0, 0,
     "test a pattern on an event or a bus's history",
     "usage: cebus pattern test --pattern JSON|@FILE --event JSON|@FILE|-\n"
     "       cebus pattern test --pattern JSON|@FILE --bus B [--last N]\n"
     "                          [--since RFC3339-TIME] [--samples N]\n\n"
     "The first form tests one CloudEvents JSON event (\"-\" reads it from stdin)\n"
     "and prints \"match\" or \"no match: REASON\", naming the field that failed.\n\n"
     "The second form dry-runs the pattern on the newest events of bus B: the\n"
     "last N (default 1000, or 10000 with --since; at most 10000), only those from\n"
     "the first received at or after --since when given. It prints \"matched M of\n"
     "N events\", then up to --samples (default 10, at most 100) matching events,\n"
     "newest first, as {\"sequence\":N,\"event\":{...}} lines. It needs an admin\n"
     "or subscriber key.\n\n"
     "Exits 0 when the event (or any event examined) matches, 1 when none does\n"
     "or on an error (printed on stderr), 2 when the command line is wrong.\n"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- Helpers shared by the handlers ------------------------------------ */

static int opt_index(const struct cli_command *cmd, const char *name)
{
    for (int i = 0; cmd->opts[i].name; i++)
        if (strcmp(cmd->opts[i].name, name) == 0)
            return i;
    return -1;
}

const char *cli_get(const struct cli_args *a, const char *name)
{
    int i = opt_index(a->cmd, name);

    if (i < 0 || a->opt[i].count == 0)
        return NULL;
    return a->opt[i].values[a->opt[i].count - 1];
}

int cli_count(const struct cli_args *a, const char *name)
{
    int i = opt_index(a->cmd, name);

    return i < 0 ? 0 : a->opt[i].count;
}

const char *cli_nth(const struct cli_args *a, const char *name, int n)
{
    int i = opt_index(a->cmd, name);

    return i < 0 || n < 0 || n >= a->opt[i].count ? NULL : a->opt[i].values[n];
}

static void print_help_hint(const struct cli_command *cmd)
{
    if (!cmd)
        fprintf(stderr, "Run 'cebus --help' for usage.\n");
    else if (cmd->name)
        fprintf(stderr, "Run 'cebus %s %s --help' for usage.\n", cmd->group, cmd->name);
    else
        fprintf(stderr, "Run 'cebus %s --help' for usage.\n", cmd->group);
}

int cli_usage_error(const struct cli_args *a, const char *fmt, ...)
{
    va_list ap;

    fputs("cebus: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    print_help_hint(a ? a->cmd : NULL);
    return CLI_EXIT_USAGE;
}

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "cebus: %s: ", cebus_status_name(code));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_ERROR;
}

int cli_rpc_error(const cebus_error *err)
{
    /* Server messages are one line by contract; flatten any that are not
     * so that scripts can rely on one line per error. */
    char msg[sizeof(err->message)];

    snprintf(msg, sizeof(msg), "%s", err->message);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return cli_fail(err->code, "%s", msg);
}

int cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

char *cli_read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 8192, n = 0;
    char *buf;
    int saved;

    if (!f)
        return NULL;
    buf = malloc(cap);
    if (!buf)
        abort();
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
    }
    saved = ferror(f) ? EIO : 0;
    if (f != stdin)
        fclose(f);
    if (saved) {
        free(buf);
        errno = saved;
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *cli_value_or_file(const char *option, const char *v)
{
    char *s;
    size_t len;

    if (v[0] != '@') {
        s = strdup(v);
        if (!s)
            abort();
        return s;
    }
    s = cli_read_file(v + 1, &len);
    if (!s)
        cli_fail(GRPC_STATUS_INVALID_ARGUMENT, "%s: cannot read %s: %s", option, v + 1,
                 strerror(errno));
    return s;
}

void cli_print_json(FILE *f, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

    if (!s)
        abort();
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(j);
}

void cli_print_message(FILE *f, const ProtobufCMessage *m)
{
    cli_print_json(f, cli_message_to_json(m));
}

/* ---- Usage -------------------------------------------------------------- */

static void print_main_usage(FILE *f)
{
    fprintf(f, "usage: cebus [global options] COMMAND [options]\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char name[48];
        snprintf(name, sizeof(name), "%s%s%s", commands[i].group, commands[i].name ? " " : "",
                 commands[i].name ? commands[i].name : "");
        fprintf(f, "  %-17s %s\n", name, commands[i].summary);
    }
    fprintf(f, "\n" GLOBAL_USAGE "\nRun 'cebus COMMAND --help' for a command's options.\n");
}

static void print_group_usage(FILE *f, const char *group)
{
    fprintf(f, "usage: cebus %s SUBCOMMAND [options]\n\nSubcommands:\n", group);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].name && strcmp(commands[i].group, group) == 0)
            fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n" GLOBAL_USAGE);
}

static void print_command_usage(const struct cli_command *cmd)
{
    printf("%s\n" GLOBAL_USAGE, cmd->usage);
}

/* ---- Parsing ------------------------------------------------------------- */

struct globals {
    const char *addr;
    const char *key;
    const char *timeout;
    const char *tls_ca;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_server_name;
    bool plaintext;
};

/* Returns 1 when argv[*i] is global option name (as "NAME V" or "NAME=V"),
 * storing its value and advancing *i past it; -1 when its value is
 * missing; 0 when it is not that option. */
static int take_global(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t len = strlen(name);

    if (strncmp(argv[*i], name, len) != 0)
        return 0;
    if (argv[*i][len] == '=') {
        *value = argv[*i] + len + 1;
        return 1;
    }
    if (argv[*i][len] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

/* Moves the global options out of argv, wherever they are (up to "--"),
 * leaving the command words and command options in rest. */
static int split_globals(int argc, char **argv, struct globals *g, char **rest, int *nrest)
{
    static const char *const names[] = {"--addr",   "--key",    "--timeout-ms",
                                        "--tls-ca", "--tls-cert", "--tls-key",
                                        "--tls-server-name"};
    const char **slots[] = {&g->addr,   &g->key,      &g->timeout,        &g->tls_ca,
                            &g->tls_cert, &g->tls_key, &g->tls_server_name};
    const size_t nnames = sizeof(names) / sizeof(names[0]);
    bool dashdash = false;

    *nrest = 0;
    for (int i = 1; i < argc; i++) {
        int taken = 0;

        if (!dashdash && strcmp(argv[i], "--") == 0)
            dashdash = true;
        if (!dashdash && strcmp(argv[i], "--plaintext") == 0) {
            g->plaintext = true;
            continue;
        }
        for (size_t k = 0; !dashdash && k < nnames && taken == 0; k++) {
            taken = take_global(argc, argv, &i, names[k], slots[k]);
            if (taken < 0)
                return cli_usage_error(NULL, "option %s needs a value", names[k]);
        }
        if (!taken)
            rest[(*nrest)++] = argv[i];
    }
    return 0;
}

/* Returns the value of environment variable name, NULL when unset or empty. */
static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* Creates the client the global options ask for. Returns NULL after
 * printing why (an unreadable file, conflicting options). */
static cebus_client *connect_client(const struct globals *g, struct cli_args *a, int *rc)
{
    cebus_tls_options tls = {g->tls_ca, g->tls_cert, g->tls_key, g->tls_server_name};
    bool any_tls = g->tls_ca || g->tls_cert || g->tls_key || g->tls_server_name;
    cebus_client *client;
    cebus_error err;

    if (g->plaintext && any_tls) {
        *rc = cli_usage_error(a, "--plaintext cannot be combined with --tls-* options "
                                 "(or CEBUS_TLS_* variables)");
        return NULL;
    }
    if (!g->tls_cert != !g->tls_key) {
        *rc = cli_usage_error(a, "--tls-cert and --tls-key go together");
        return NULL;
    }
    if (g->plaintext || (!any_tls && cebus_addr_is_local(g->addr)))
        return cebus_client_new(g->addr, g->key);
    client = cebus_client_new_tls(g->addr, g->key, &tls, &err);
    if (!client) {
        /* Name the option as the user wrote it. */
        static const char *const lib[] = {"ca_file:", "cert_file:", "key_file:"};
        static const char *const cli[] = {"--tls-ca:", "--tls-cert:", "--tls-key:"};
        for (size_t i = 0; i < 3; i++)
            if (strncmp(err.message, lib[i], strlen(lib[i])) == 0) {
                *rc = cli_fail(err.code, "%s%s", cli[i], err.message + strlen(lib[i]));
                return NULL;
            }
        *rc = cli_fail(err.code, "%s", err.message);
    }
    return client;
}

/* Parses the options and positional arguments of cmd in argv[0..argc).
 * Returns -1 when --help was printed, 0 on success, or CLI_EXIT_USAGE. */
static int parse_command_args(const struct cli_command *cmd, int argc, char **argv,
                              struct cli_args *a)
{
    bool options_done = false;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq, *value = NULL;
        size_t namelen;
        int k;

        if (options_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            a->pos[a->npos++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_command_usage(cmd);
            return -1;
        }
        eq = strchr(arg, '=');
        namelen = eq ? (size_t)(eq - arg) : strlen(arg);
        for (k = 0; cmd->opts[k].name; k++)
            if (strlen(cmd->opts[k].name) == namelen &&
                strncmp(cmd->opts[k].name, arg, namelen) == 0)
                break;
        if (!cmd->opts[k].name)
            return cli_usage_error(a, "unknown option %.*s", (int)namelen, arg);
        if (cmd->opts[k].kind == CLI_FLAG) {
            if (eq)
                return cli_usage_error(a, "option %s takes no value", cmd->opts[k].name);
            value = "";
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return cli_usage_error(a, "option %s needs a value", cmd->opts[k].name);
        }
        a->opt[k].values[a->opt[k].count++] = value;
    }
    if (a->npos < cmd->min_pos)
        return cli_usage_error(a, "missing argument");
    if (a->npos > cmd->max_pos)
        return cli_usage_error(a, "unexpected argument '%s'", a->pos[cmd->max_pos]);
    return 0;
}

/* Returns the command named by words, or NULL after printing why not.
 * *consumed is how many words named it; *rc is the exit code to use when
 * NULL is returned. */
static const struct cli_command *find_command(int nwords, char **words, int *consumed, int *rc)
{
    bool group_known = false;

    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct cli_command *cmd = &commands[i];

        if (strcmp(cmd->group, words[0]) != 0)
            continue;
        group_known = true;
        if (!cmd->name) {
            *consumed = 1;
            return cmd;
        }
        if (nwords > 1 && strcmp(cmd->name, words[1]) == 0) {
            *consumed = 2;
            return cmd;
        }
    }
    if (!group_known) {
        *rc = cli_usage_error(NULL, "unknown command '%s'", words[0]);
        return NULL;
    }
    if (nwords > 1 && (strcmp(words[1], "--help") == 0 || strcmp(words[1], "-h") == 0)) {
        print_group_usage(stdout, words[0]);
        *rc = CLI_EXIT_OK;
        return NULL;
    }
    if (nwords > 1)
        fprintf(stderr, "cebus: unknown subcommand '%s %s'\n", words[0], words[1]);
    else
        fprintf(stderr, "cebus: '%s' needs a subcommand\n", words[0]);
    print_group_usage(stderr, words[0]);
    *rc = CLI_EXIT_USAGE;
    return NULL;
}

int main(int argc, char **argv)
{
    struct globals g = {getenv("CEBUS_ADDR"), getenv("CEBUS_API_KEY"), NULL,
                        env_or_null("CEBUS_TLS_CA"), env_or_null("CEBUS_TLS_CERT"),
                        env_or_null("CEBUS_TLS_KEY"), env_or_null("CEBUS_TLS_SERVER_NAME"),
                        false};
    const char *plaintext_env = getenv("CEBUS_PLAINTEXT");
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    const struct cli_command *cmd;
    struct cli_args a;
    cebus_client *client;
    uint64_t timeout = CEBUS_DEFAULT_TIMEOUT_MS;
    int nrest = 0, consumed = 0, rc = CLI_EXIT_USAGE;

    if (!rest)
        abort();
    memset(&a, 0, sizeof(a));
    g.plaintext = plaintext_env && (strcmp(plaintext_env, "1") == 0 ||
                                    strcmp(plaintext_env, "true") == 0);
    if (split_globals(argc, argv, &g, rest, &nrest) != 0)
        goto out;
    if (nrest == 0) {
        print_main_usage(stderr);
        goto out;
    }
    if (strcmp(rest[0], "--help") == 0 || strcmp(rest[0], "-h") == 0 ||
        strcmp(rest[0], "help") == 0) {
        print_main_usage(stdout);
        rc = CLI_EXIT_OK;
        goto out;
    }
    cmd = find_command(nrest, rest, &consumed, &rc);
    if (!cmd)
        goto out;

    a.cmd = cmd;
    a.pos = calloc((size_t)nrest + 1, sizeof(*a.pos));
    if (!a.pos)
        abort();
    for (int i = 0; i < CLI_MAX_OPTS; i++) {
        /* Each option can occur at most once per remaining word. */
        a.opt[i].values = calloc((size_t)nrest + 1, sizeof(*a.opt[i].values));
        if (!a.opt[i].values)
            abort();
    }
    rc = parse_command_args(cmd, nrest - consumed, rest + consumed, &a);
    if (rc < 0) {
        rc = CLI_EXIT_OK;
        goto out;
    }
    if (rc != 0)
        goto out;
    if (g.timeout && (cli_parse_uint(g.timeout, 24ULL * 3600 * 1000, &timeout) != 0 || timeout == 0)) {
        rc = cli_usage_error(&a, "--timeout-ms must be a positive number of milliseconds");
        goto out;
    }
    a.timeout_ms = (int)timeout;
    if (!g.addr || !*g.addr)
        g.addr = "127.0.0.1:50051";

    cebus_library_init();
    client = connect_client(&g, &a, &rc);
    if (!client) {
        cebus_library_shutdown();
        goto out;
    }
    cebus_client_set_timeout(client, a.timeout_ms);
    rc = cmd->run(client, &a);
    /* Anything printed must be out before the exit code says it is. */
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = cli_fail(GRPC_STATUS_UNKNOWN, "cannot write to stdout: %s", strerror(errno));
    cebus_client_free(client);
    cebus_library_shutdown();
out:
    for (int i = 0; i < CLI_MAX_OPTS; i++)
        free(a.opt[i].values);
    free(a.pos);
    free(rest);
    return rc;
}
