/* Internals shared by the files of the `cebus` command-line tool: the
 * command table's types, parsed arguments, error reporting and output.
 * Not part of libcebus.
 */
#ifndef CEBUS_CLI_H
#define CEBUS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cebus.h"

/* Exit codes: success, an error reported by the server or the system, and
 * a command line that does not parse. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_ERROR = 1, CLI_EXIT_USAGE = 2 };

enum cli_opt_kind {
    CLI_FLAG,  /* --disabled */
    CLI_VALUE, /* --bus B; the last one given wins */
    CLI_MULTI, /* --attr k=v ...; every one is kept */
};

struct cli_opt {
    const char *name; /* with the dashes: "--bus" */
    enum cli_opt_kind kind;
};

#define CLI_MAX_OPTS 24

struct cli_args;

/* One row of the command table. */
struct cli_command {
    const char *group;        /* first word: "rule", "put" */
    const char *name;         /* second word ("create"), or NULL */
    int (*run)(cebus_client *c, const struct cli_args *a);
    const struct cli_opt *opts; /* terminated by a row with a NULL name */
    int min_pos, max_pos;     /* bounds on the positional arguments */
    const char *summary;      /* one line for the command list */
    const char *usage;        /* the --help text */
};

/* A command line parsed against one command's options. Strings borrow
 * from argv. */
struct cli_args {
    const struct cli_command *cmd;
    int timeout_ms;
    int npos;
    const char **pos;
    struct {
        int count;
        const char **values;
    } opt[CLI_MAX_OPTS];
};

/* Returns the last value given for option name (or "" for a flag that was
 * given), or NULL when it was not given. */
const char *cli_get(const struct cli_args *a, const char *name);

/* Returns how many times option name was given; values via cli_nth(). */
int cli_count(const struct cli_args *a, const char *name);
const char *cli_nth(const struct cli_args *a, const char *name, int i);

/* Prints "cebus: <message>" and a pointer to --help on stderr; returns
 * CLI_EXIT_USAGE for the caller to return. */
int cli_usage_error(const struct cli_args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "cebus: <code name>: <message>" on stderr; returns CLI_EXIT_ERROR. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_rpc_error(const cebus_error *err);

/* Parses a decimal integer in [0, max]. Returns 0 and sets *out, or -1. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Reads a whole file ("-" is stdin) into a new NUL-terminated buffer
 * (free() it) and its length (without the NUL) into *len. Returns NULL with
 * errno set on failure. */
char *cli_read_file(const char *path, size_t *len);

/* Returns a new copy of v, or of the contents of file F when v is "@F".
 * On failure prints the error and returns NULL. */
char *cli_value_or_file(const char *option, const char *v);

/* Returns the JSON form of a protobuf-c message: proto field names, enums
 * by name, Timestamps as RFC 3339, bytes as base64, CloudEvents in their
 * JSON format. Caller owns the result. */
json_t *cli_message_to_json(const ProtobufCMessage *m);

/* Prints the JSON form of m on one line of f. */
void cli_print_message(FILE *f, const ProtobufCMessage *m);

/* Calls a paged List method (req has "page_token", the response the
 * repeated field named items and "next_page_token") page after page,
 * printing every item as one JSON line. Returns the exit code. */
int cli_list_all(cebus_client *c, const char *method, ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *resp_desc, const char *items);

/* Makes one unary call and prints the response as JSON, or nothing when
 * print is false (empty responses). Returns the exit code. */
int cli_call_print(cebus_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, bool print);

/* Prints j compactly on one line of f. Takes the reference. */
void cli_print_json(FILE *f, json_t *j);

/* Command handlers (cli_admin.c, cli_put.c, cli_subscribe.c, and as noted). */
int cli_cmd_health(cebus_client *c, const struct cli_args *a);
int cli_cmd_tenant_create(cebus_client *c, const struct cli_args *a);
int cli_cmd_key_create(cebus_client *c, const struct cli_args *a);
int cli_cmd_bus_create(cebus_client *c, const struct cli_args *a);
int cli_cmd_bus_list(cebus_client *c, const struct cli_args *a);
int cli_cmd_tenant_get(cebus_client *c, const struct cli_args *a);
int cli_cmd_tenant_list(cebus_client *c, const struct cli_args *a);
int cli_cmd_tenant_update(cebus_client *c, const struct cli_args *a);
int cli_cmd_tenant_delete(cebus_client *c, const struct cli_args *a);
int cli_cmd_key_list(cebus_client *c, const struct cli_args *a);
int cli_cmd_key_revoke(cebus_client *c, const struct cli_args *a);
int cli_cmd_bus_get(cebus_client *c, const struct cli_args *a);
int cli_cmd_bus_update(cebus_client *c, const struct cli_args *a);
int cli_cmd_bus_delete(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_create(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_get(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_list(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_delete(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_update(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_enable(cebus_client *c, const struct cli_args *a);
int cli_cmd_rule_disable(cebus_client *c, const struct cli_args *a);
int cli_cmd_put(cebus_client *c, const struct cli_args *a);
int cli_cmd_subscribe(cebus_client *c, const struct cli_args *a);
int cli_cmd_pattern_test(cebus_client *c, const struct cli_args *a); /* cli_pattern.c */
int cli_cmd_grant_create(cebus_client *c, const struct cli_args *a); /* cli_grants.c */
int cli_cmd_grant_list(cebus_client *c, const struct cli_args *a);
int cli_cmd_grant_revoke(cebus_client *c, const struct cli_args *a);
int cli_cmd_source_add(cebus_client *c, const struct cli_args *a);
int cli_cmd_source_list(cebus_client *c, const struct cli_args *a);
int cli_cmd_source_remove(cebus_client *c, const struct cli_args *a);
int cli_cmd_quota_get(cebus_client *c, const struct cli_args *a); /* cli_quota.c */
int cli_cmd_quota_set(cebus_client *c, const struct cli_args *a);
int cli_cmd_dlq_list(cebus_client *c, const struct cli_args *a); /* cli_dead.c */
int cli_cmd_dlq_redrive(cebus_client *c, const struct cli_args *a);
int cli_cmd_dlq_purge(cebus_client *c, const struct cli_args *a);
int cli_cmd_subscription_seek(cebus_client *c, const struct cli_args *a);

#endif
