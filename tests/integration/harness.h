/* Fixtures of the integration tests: a fresh database per test process,
 * real cebusd child processes on it, tenants, events, streams, raw gRPC
 * calls and CLI runs.
 *
 * Tests are cmocka programs; the helpers named h_*_ok and h_expect* fail the
 * current test (cmocka assertions) when things do not go as stated, so they
 * may only be called from the test's own thread. Everything else reports
 * through its return value and is safe from any thread.
 *
 * Files: harness.c (database, servers, environment), harness_events.c
 * (events, publishing, streams, tenants), harness_raw.c (raw gRPC calls),
 * harness_cli.c (running the cebus CLI), harness_cluster.c (a PostgreSQL
 * cluster of the test's own) and harness_load.c (publishers and a resuming
 * reader under faults; harness_load.h).
 */
#ifndef CEBUS_IT_HARNESS_H
#define CEBUS_IT_HARNESS_H

/* cmocka needs these before its header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <grpc/status.h>
#include <sys/types.h>

#include "cebus.h"

typedef Io__Cloudevents__V1__CloudEvent h_event;

/* The platform admin key every test server is started with. */
#define H_ADMIN_KEY "it-platform-admin-key-0123456789abcdefghij"

/* Time limits, generous enough for sanitizer builds on a busy machine. */
#define H_START_TIMEOUT_MS 60000
#define H_STOP_TIMEOUT_MS 30000
#define H_EVENT_TIMEOUT_MS 10000

#define H_MAX_SERVERS 3

/* ---- Clock ------------------------------------------------------------- */

/* Monotonic milliseconds, for deadlines. */
int64_t h_now_ms(void);

/* Fails the test unless rc is code and, when substr is not NULL, err's
 * message contains substr. what names the call in the failure message. */
void h_assert_status(const char *what, int rc, const cebus_error *err, int code,
                     const char *substr);

/* ---- Database (harness.c) ---------------------------------------------- */

struct h_db {
    char name[64];       /* "" when not created */
    char conninfo[2048]; /* CEBUS_TEST_DATABASE_URL with dbname replaced */
};

/* Creates a database with a unique name on the cluster of
 * CEBUS_TEST_DATABASE_URL. Returns 0, or -1 after printing why. */
int h_db_create(struct h_db *db);

/* Drops the database (connections forced out). Returns 0 or -1. Safe on a
 * database that was never created. */
int h_db_drop(struct h_db *db);

/* ---- A cluster of the test's own (harness_cluster.c) --------------------
 * For tests that stop and start PostgreSQL: the shared cluster of
 * CEBUS_TEST_DATABASE_URL serves other tests. */

struct h_cluster {
    char dir[256];  /* data under dir/data, socket under dir/run */
    int port;
    char url[512];  /* libpq conninfo of its "postgres" database */
    bool running;
};

/* Initializes and starts a new cluster (scripts/pg.sh). Returns 0, or -1
 * after printing why. */
int h_cluster_start(struct h_cluster *c);

/* Stops the cluster with pg_ctl's shutdown mode ("fast", "immediate") and
 * waits until it is down. Returns 0 or -1. */
int h_cluster_stop(struct h_cluster *c, const char *mode);

/* Starts a stopped cluster again on its data, waiting until it accepts
 * connections. Returns 0 or -1. */
int h_cluster_resume(struct h_cluster *c);

/* Stops the cluster if running and removes its directory. */
void h_cluster_destroy(struct h_cluster *c);

/* ---- cebusd (harness.c) ------------------------------------------------ */

struct h_server {
    pid_t pid;           /* 0 when not running */
    int stdout_fd;       /* read end of its stdout, kept open while it runs */
    char addr[64];       /* "127.0.0.1:PORT" */
    char metrics_addr[64]; /* "127.0.0.1:PORT" of GET /metrics; "" if none */
    char log_path[1024]; /* its stderr */
};

/* Starts cebusd on database conninfo with "--listen 127.0.0.1:0" and
 * CEBUS_ADMIN_KEY=H_ADMIN_KEY; extra_env (NULL-terminated "NAME=VALUE"
 * strings, may be NULL) is added to its environment. Waits until it prints
 * its address. Its stderr goes to a log file under
 * $CEBUS_TEST_BUILD_DIR/it-logs. Returns 0, or -1 after printing the log. */
int h_server_start(struct h_server *s, const char *conninfo, const char *const *extra_env);

/* Like h_server_start, with extra_args (NULL-terminated, may be NULL)
 * appended to cebusd's command line after "--listen 127.0.0.1:0"; a later
 * --listen wins. */
int h_server_start_args(struct h_server *s, const char *conninfo, const char *const *extra_env,
                        const char *const *extra_args);

/* Sends SIGTERM and waits for the exit (SIGKILL after H_STOP_TIMEOUT_MS).
 * Returns the exit code (0 for a graceful shutdown), 128 + signal when it
 * died of a signal, or -1 when it had to be killed. Prints the log when the
 * exit was not clean. No-op returning 0 when not running. */
int h_server_stop(struct h_server *s);

/* Starts s again on the address it had (its previous process must be gone:
 * see h_server_kill), retrying the bind until H_START_TIMEOUT_MS. Clients
 * made for that address reconnect by themselves. Returns 0 or -1. */
int h_server_restart(struct h_server *s, const char *conninfo, const char *const *extra_env);

/* Kills the server with SIGKILL (no drain, no cleanup) and reaps it.
 * Returns 0 when it died of that signal, -1 otherwise or when not running. */
int h_server_kill(struct h_server *s);

/* True when CEBUS_TEST_VALGRIND asks for servers under memcheck (tests
 * lighten their load then). */
bool h_under_valgrind(void);

/* Prints the server's log to stderr (for diagnosis). */
void h_server_dump_log(const struct h_server *s);

/* ---- Per-process environment (harness.c) ----------------------------------
 * h_env_setup / h_env_teardown are cmocka group fixtures: the group state is
 * a struct h_env with a fresh database, one running server and a platform
 * admin client on it. Teardown fails (so the run fails) when a server does
 * not shut down cleanly with exit code 0. */

struct h_env {
    struct h_db db;
    struct h_server srv[H_MAX_SERVERS];
    int nservers;
    cebus_client *admin; /* platform admin on srv[0] */
};

int h_env_setup(void **state);
int h_env_teardown(void **state);

/* Starts one more server on the env's database (a replica) with extra_env
 * as in h_server_start; fails the test on error. Returns its index. */
int h_env_add_server_ok(struct h_env *env, const char *const *extra_env);

/* Builds a NULL-terminated environment: the current one with overrides
 * applied ("NAME=VALUE" sets, "NAME" removes). Free with h_env_free_list. */
char **h_env_build(const char *const *overrides);
void h_env_free_list(char **envp);

/* ---- Tenants (harness_events.c) ------------------------------------------ */

struct h_tenant {
    char name[65];
    char bus[65];
    char admin_key[160];
    char publisher_key[160];
    char subscriber_key[160];
};

/* With the platform admin client, creates tenant name, bus bus in it and one
 * key of each tenant role. Fails the test on error. */
void h_tenant_create_ok(cebus_client *platform_admin, const char *name, const char *bus,
                        struct h_tenant *t);

/* Creates a key of role for tenant (NULL: the caller's) and copies its
 * secret into out. Returns the call's status code. */
int h_key_create(cebus_client *c, const char *tenant, Cebus__V1__Role role, char *out,
                 size_t outlen, cebus_error *err);

/* Creates a bus; returns the call's status code. */
int h_bus_create(cebus_client *c, const char *tenant, const char *name, cebus_error *err);

/* ---- Events (harness_events.c) -------------------------------------------- */

/* Returns a new CloudEvent (spec_version "1.0"); NULL strings become "".
 * json_data, when not NULL, becomes text_data (JSON payload). Free with
 * h_event_free. */
h_event *h_event_new(const char *id, const char *source, const char *type, const char *json_data);
void h_event_free(h_event *ev);

/* Replaces required attributes; value NULL makes it the empty string. */
void h_event_set_spec_version(h_event *ev, const char *v);

/* Adds a ce_string extension attribute. */
void h_event_add_attr(h_event *ev, const char *name, const char *value);

/* Sets binary_data to len bytes of fill. */
void h_event_set_binary(h_event *ev, size_t len, int fill);

/* Returns the string value of attribute name of ev (ce_string, ce_uri or
 * ce_uri_ref), or NULL when absent or of another kind. Borrowed. */
const char *h_event_attr_string(const h_event *ev, const char *name);

/* Returns the attribute value of name, or NULL. Borrowed. */
const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *h_event_attr(const h_event *ev,
                                                                              const char *name);

/* Returns how many attribute entries are named name. */
size_t h_event_attr_count(const h_event *ev, const char *name);

/* ---- Publishing (harness_events.c) ------------------------------------------ */

/* Puts events (borrowed) on bus. Returns the call's status; on OK sets *resp
 * (free with cebus__v1__put_events_response__free_unpacked). */
int h_put(cebus_client *c, const char *bus, h_event **events, size_t n,
          Cebus__V1__PutEventsResponse **resp, cebus_error *err);

/* Puts one event {id, source "/it", type, data} and fails the test unless
 * both the call and the entry succeed. Returns its sequence. */
uint64_t h_put_one_ok(cebus_client *c, const char *bus, const char *id, const char *type,
                      const char *json_data);

/* ---- Streams (harness_events.c) -------------------------------------------- */

/* Fills req for bus with pattern (or subscription when pattern is NULL and
 * subscription is not) and start position. */
void h_subscribe_request(Cebus__V1__SubscribeRequest *req, const char *bus, const char *pattern,
                         const char *subscription, Cebus__V1__StartPosition start,
                         uint64_t start_sequence);

/* Opens a stream with an inline pattern; fails the test on error. */
cebus_stream *h_subscribe_ok(cebus_client *c, const char *bus, const char *pattern,
                             Cebus__V1__StartPosition start, uint64_t start_sequence);

/* Opens a stream and reports how the server took it: the final status of a
 * stream it refused (waiting up to H_EVENT_TIMEOUT_MS for it), or 0 when the
 * stream is open after that time or delivered an event. */
int h_subscribe_status(cebus_client *c, const Cebus__V1__SubscribeRequest *req, cebus_error *err);

/* Waits up to timeout_ms for the next delivery. Returns it (free with
 * cebus__v1__subscribe_response__free_unpacked) or NULL on timeout; fails
 * the test when the stream ends. */
Cebus__V1__SubscribeResponse *h_next(cebus_stream *s, int timeout_ms);

/* Like h_next with H_EVENT_TIMEOUT_MS, failing the test on timeout. */
Cebus__V1__SubscribeResponse *h_expect_next(cebus_stream *s);

/* For a stream whose pattern matches every event: puts marker events of
 * type "it.sync" on bus until one arrives on s, then drains s up to the last
 * marker put, so that the stream is known to be live and caught up. Fails the
 * test if anything but a marker arrives. Returns the last marker's sequence. */
uint64_t h_stream_sync_ok(cebus_client *publisher, const char *bus, cebus_stream *s);

/* ---- Raw gRPC calls (harness_raw.c) ----------------------------------------- */

/* Makes a call to method whose request message is body[0..len), bytes sent
 * as is (they need not be a valid protobuf), with api_key (NULL: no
 * authorization metadata). Reads the first response message if any
 * (*resp_len gets its size when resp_len is not NULL) and the final status.
 * Returns the status code and fills err with the details. */
int h_call_raw(const char *addr, const char *api_key, const char *method, const void *body,
               size_t len, int timeout_ms, size_t *resp_len, cebus_error *err);

/* ---- Who may do what (harness_ops.c) ------------------------------------------ */

/* The calls a key may try on a bus reference, for tests of roles, grants
 * and tenancy. */
enum h_op {
    H_OP_PUT,
    H_OP_SUBSCRIBE,
    H_OP_TEST_PATTERN,
    H_OP_CREATE_RULE,
    H_OP_GET_RULE,
    H_OP_LIST_RULES,
    H_OP_DELETE_RULE,
    H_NOPS
};

/* The RPC name of each h_op ("PutEvents"...). */
extern const char *const h_op_names[H_NOPS];

/* What the calls use: H_OP_PUT's event id and source, and the rules that
 * H_OP_GET_RULE reads, H_OP_CREATE_RULE creates and H_OP_DELETE_RULE
 * deletes. */
struct h_op_args {
    const char *event_id;
    const char *source;
    const char *get_rule;
    const char *create_rule;
    const char *delete_rule;
};

/* Makes call op on bus with c and returns its status code (err filled).
 * H_OP_SUBSCRIBE reports as h_subscribe_status. A PutEvents call that
 * succeeds with a failed entry fails the test. */
int h_try_op(cebus_client *c, enum h_op op, const char *bus, const struct h_op_args *a,
             cebus_error *err);

/* Creates or (create false) revokes grant perm on bus for tenant grantee;
 * returns the call's status code. */
int h_grant(cebus_client *c, bool create, const char *bus, const char *grantee,
            Cebus__V1__Permission perm, cebus_error *err);

/* Copies msg into out[0..size) with every occurrence of ref replaced by
 * "<bus>", so that answers about different buses can be compared. */
void h_normalize(const char *msg, const char *ref, char *out, size_t size);

/* ---- CLI (harness_cli.c) ------------------------------------------------------ */

struct h_cli_result {
    int exit_code; /* exit status; 128 + signal; -1 when killed at the deadline */
    char *out;     /* all of stdout, NUL-terminated */
    char *err;     /* all of stderr */
};

/* Runs $CEBUS_TEST_CLI with args (NULL-terminated, without the program
 * name), CEBUS_ADDR=addr and CEBUS_API_KEY=key (NULL: unset) in its
 * environment, and stdin_data on stdin (NULL: empty). Waits up to
 * timeout_ms. Free the result with h_cli_result_free. */
void h_cli_run(const char *addr, const char *key, const char *stdin_data, int timeout_ms,
               const char *const *args, struct h_cli_result *r);
void h_cli_result_free(struct h_cli_result *r);

/* Runs $CEBUS_TEST_CEBUSD with args (NULL-terminated, without the program
 * name) and extra_env applied to the environment as in h_env_build (may be
 * NULL), and waits up to timeout_ms for it to exit: for settings that must
 * stop it at start. Free the result with h_cli_result_free. */
void h_cebusd_run(const char *const *args, const char *const *extra_env, int timeout_ms,
                  struct h_cli_result *r);

#endif
