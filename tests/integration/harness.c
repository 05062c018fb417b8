/* Integration fixtures: a fresh database per test process and cebusd child
 * processes on it. See harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

extern char **environ;

static int db_counter;
static int server_counter;

int64_t h_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *require_env(const char *name)
{
    const char *v = getenv(name);

    if (!v || !*v) {
        fprintf(stderr, "harness: %s is not set; run the test through ctest\n", name);
        return NULL;
    }
    return v;
}

void h_assert_status(const char *what, int rc, const cebus_error *err, int code, const char *substr)
{
    if (rc != code)
        fail_msg("%s: expected %s, got %s: %s", what, cebus_status_name(code),
                 cebus_status_name(rc), err->message);
    if (err->code != code)
        fail_msg("%s: returned %d but err->code is %d", what, rc, err->code);
    if (substr && !strstr(err->message, substr))
        fail_msg("%s: message \"%s\" does not contain \"%s\"", what, err->message, substr);
}

/* ---- Database ------------------------------------------------------------ */

/* Appends " key='value'" to buf with libpq's quoting. */
static void append_conn_option(char *buf, size_t size, const char *key, const char *value)
{
    size_t n = strlen(buf);

    n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s='", n ? " " : "", key);
    for (const char *p = value; *p && n + 3 < size; p++) {
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + 2 < size) {
        buf[n++] = '\'';
        buf[n] = '\0';
    }
}

/* Rewrites url with dbname replaced. Returns 0 or -1. */
static int conninfo_with_dbname(const char *url, const char *dbname, char *out, size_t size)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);

    if (!opts) {
        fprintf(stderr, "harness: cannot parse CEBUS_TEST_DATABASE_URL: %s\n",
                errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return -1;
    }
    out[0] = '\0';
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "dbname") == 0)
            continue;
        if (o->val && *o->val)
            append_conn_option(out, size, o->keyword, o->val);
    }
    append_conn_option(out, size, "dbname", dbname);
    PQconninfoFree(opts);
    return 0;
}

/* Runs one utility statement on the cluster's maintenance database. */
static int admin_exec(const char *sql)
{
    const char *url = require_env("CEBUS_TEST_DATABASE_URL");
    PGconn *conn;
    PGresult *res;
    int rc = 0;

    if (!url)
        return -1;
    conn = PQconnectdb(url);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "harness: cannot connect to the test cluster: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "harness: %s: %s", sql, PQerrorMessage(conn));
        rc = -1;
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

int h_db_create(struct h_db *db)
{
    const char *url = require_env("CEBUS_TEST_DATABASE_URL");
    char sql[256];

    memset(db, 0, sizeof *db);
    if (!url)
        return -1;
    snprintf(db->name, sizeof db->name, "cebus_it_%ld_%d", (long)getpid(), ++db_counter);
    if (conninfo_with_dbname(url, db->name, db->conninfo, sizeof db->conninfo) != 0)
        goto fail;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db->name);
    if (admin_exec(sql) != 0)
        goto fail;
    return 0;
fail:
    db->name[0] = '\0';
    return -1;
}

int h_db_drop(struct h_db *db)
{
    char sql[256];
    int rc;

    if (!db->name[0])
        return 0;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    rc = admin_exec(sql);
    db->name[0] = '\0';
    return rc;
}

/* ---- Environment lists ------------------------------------------------------ */

static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');

    return eq ? (size_t)(eq - entry) : strlen(entry);
}

char **h_env_build(const char *const *overrides)
{
    size_t n = 0, nover = 0, k = 0;
    char **envp;

    while (environ[n])
        n++;
    while (overrides && overrides[nover])
        nover++;
    envp = calloc(n + nover + 1, sizeof *envp);
    if (!envp)
        abort();
    for (size_t i = 0; i < n; i++) {
        bool overridden = false;
        for (size_t j = 0; j < nover && !overridden; j++)
            overridden = name_len(environ[i]) == name_len(overrides[j]) &&
                         strncmp(environ[i], overrides[j], name_len(environ[i])) == 0;
        if (!overridden)
            envp[k++] = strdup(environ[i]);
    }
    for (size_t j = 0; j < nover; j++)
        if (strchr(overrides[j], '='))
            envp[k++] = strdup(overrides[j]);
    for (size_t i = 0; i < k; i++)
        if (!envp[i])
            abort();
    return envp;
}

void h_env_free_list(char **envp)
{
    if (!envp)
        return;
    for (char **p = envp; *p; p++)
        free(*p);
    free(envp);
}

/* ---- cebusd -------------------------------------------------------------------- */

void h_server_dump_log(const struct h_server *s)
{
    char buf[4096];
    FILE *f = fopen(s->log_path, "r");
    size_t n;

    fprintf(stderr, "---- cebusd log %s ----\n", s->log_path);
    if (!f) {
        fprintf(stderr, "(cannot open: %s)\n", strerror(errno));
        return;
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
    fprintf(stderr, "---- end of log ----\n");
}

/* Opens a new log file for a server under $CEBUS_TEST_BUILD_DIR/it-logs. */
static int open_log(struct h_server *s)
{
    const char *dir = getenv("CEBUS_TEST_BUILD_DIR");
    char logdir[900];

    snprintf(logdir, sizeof logdir, "%s/it-logs", dir && *dir ? dir : "/tmp");
    if (mkdir(logdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "harness: mkdir %s: %s\n", logdir, strerror(errno));
        return -1;
    }
    snprintf(s->log_path, sizeof s->log_path, "%s/%s-%ld-%d.log", logdir,
             program_invocation_short_name, (long)getpid(), ++server_counter);
    return open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

/* Reads the child's stdout until the "listening" line; fills s->addr.
 * Returns 0, or -1 on timeout or when the child closed its stdout. */
static int wait_listening(struct h_server *s)
{
    static const char marker[] = "cebusd: listening on ";
    static const char metrics_marker[] = "cebusd: metrics on ";
    char buf[4096];
    size_t n = 0;
    int64_t deadline = h_now_ms() + H_START_TIMEOUT_MS;

    for (;;) {
        struct pollfd pfd = {.fd = s->stdout_fd, .events = POLLIN};
        int64_t left = deadline - h_now_ms();
        char *line, *nl;
        ssize_t got;

        if (left <= 0) {
            fprintf(stderr, "harness: cebusd did not report its address within %d ms\n",
                    H_START_TIMEOUT_MS);
            return -1;
        }
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return -1;
        if (!(pfd.revents & (POLLIN | POLLHUP)))
            continue;
        got = read(s->stdout_fd, buf + n, sizeof buf - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            fprintf(stderr, "harness: cebusd closed its stdout before listening\n");
            return -1;
        }
        n += (size_t)got;
        buf[n] = '\0';
        line = strstr(buf, marker);
        if (line && (nl = strchr(line, '\n')) != NULL) {
            /* The metrics line comes first; remember it for tests that
             * scrape. */
            char *m = strstr(buf, metrics_marker), *mnl;
            if (m && (mnl = strchr(m, '\n')) != NULL)
                snprintf(s->metrics_addr, sizeof s->metrics_addr, "%.*s",
                         (int)(mnl - m - (ptrdiff_t)strlen(metrics_marker)),
                         m + strlen(metrics_marker));
            *nl = '\0';
            snprintf(s->addr, sizeof s->addr, "%s", line + strlen(marker));
            return 0;
        }
        if (n == sizeof buf - 1) {
            /* Keep the tail: the marker may straddle the boundary. */
            memmove(buf, buf + n / 2, n - n / 2);
            n -= n / 2;
        }
    }
}

/* Starts cebusd listening on listen ("127.0.0.1:0" for any free port). */
static int server_start(struct h_server *s, const char *conninfo, const char *listen,
                        const char *const *extra_env, const char *const *extra_args)
{
    const char *bin = require_env("CEBUS_TEST_CEBUSD");
    const char *const plain[] = {"--listen", listen};
    static const char *const vg[] = {"/usr/bin/valgrind",     "--quiet",
                                     "--error-exitcode=99",   "--leak-check=full",
                                     "--errors-for-leak-kinds=definite",
                                     "--show-leak-kinds=definite"};
    const char *argv[48];
    size_t argc = 0;
    char dburl[2200];
    const char *overrides[32];
    size_t nover = 0;
    char **envp = NULL;
    int out[2] = {-1, -1}, logfd = -1;
    pid_t pid;

    memset(s, 0, sizeof *s);
    s->stdout_fd = -1;
    if (!bin)
        return -1;
    snprintf(dburl, sizeof dburl, "CEBUS_DATABASE_URL=%s", conninfo);
    overrides[nover++] = dburl;
    overrides[nover++] = "CEBUS_ADMIN_KEY=" H_ADMIN_KEY;
    overrides[nover++] = "CEBUS_LISTEN";
    overrides[nover++] = "CEBUS_METRICS_LISTEN=127.0.0.1:0";
    for (size_t i = 0; extra_env && extra_env[i] && nover < 31; i++)
        overrides[nover++] = extra_env[i];
    overrides[nover] = NULL;

    logfd = open_log(s);
    if (logfd < 0 || pipe2(out, O_CLOEXEC) != 0) {
        fprintf(stderr, "harness: cannot set up cebusd's output: %s\n", strerror(errno));
        goto fail;
    }
    envp = h_env_build(overrides);
    /* CEBUS_TEST_VALGRIND=1 runs the server under memcheck (`make
     * valgrind`): any memory error or definite leak makes cebusd exit 99,
     * which h_server_stop() reports as a failure. Built before fork(). */
    if (h_under_valgrind())
        for (size_t i = 0; i < sizeof vg / sizeof vg[0]; i++)
            argv[argc++] = vg[i];
    argv[argc++] = bin;
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        argv[argc++] = plain[i];
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        if (argc + 1 >= sizeof argv / sizeof argv[0]) {
            fprintf(stderr, "harness: too many cebusd arguments\n");
            goto fail;
        }
        argv[argc++] = extra_args[i];
    }
    argv[argc] = NULL;
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec: the parent
         * has gRPC threads. A server must not outlive a crashed test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(out[1], STDOUT_FILENO) < 0 || dup2(logfd, STDERR_FILENO) < 0)
            _exit(126);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    s->pid = pid;
    close(out[1]);
    out[1] = -1;
    close(logfd);
    logfd = -1;
    h_env_free_list(envp);
    envp = NULL;
    s->stdout_fd = out[0];
    if (wait_listening(s) != 0) {
        int code = h_server_stop(s);
        fprintf(stderr, "harness: cebusd failed to start (exit %d)\n", code);
        h_server_dump_log(s);
        return -1;
    }
    return 0;
fail:
    h_env_free_list(envp);
    if (out[0] >= 0)
        close(out[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (logfd >= 0)
        close(logfd);
    return -1;
}

int h_server_start(struct h_server *s, const char *conninfo, const char *const *extra_env)
{
    return server_start(s, conninfo, "127.0.0.1:0", extra_env, NULL);
}

int h_server_start_args(struct h_server *s, const char *conninfo, const char *const *extra_env,
                        const char *const *extra_args)
{
    return server_start(s, conninfo, "127.0.0.1:0", extra_env, extra_args);
}

int h_server_restart(struct h_server *s, const char *conninfo, const char *const *extra_env)
{
    char addr[sizeof s->addr];
    int64_t deadline = h_now_ms() + H_START_TIMEOUT_MS;

    snprintf(addr, sizeof addr, "%s", s->addr);
    /* The old process's connections may hold the port for a moment after
     * it died; the bind succeeds once the kernel has let it go. */
    for (;;) {
        if (server_start(s, conninfo, addr, extra_env, NULL) == 0)
            return 0;
        if (h_now_ms() > deadline)
            return -1;
        usleep(200 * 1000); /* retry pacing, bounded by the deadline */
        snprintf(s->addr, sizeof s->addr, "%s", addr);
    }
}

int h_server_kill(struct h_server *s)
{
    pid_t pid = s->pid, r;
    int status = 0;

    if (!pid)
        return -1;
    kill(pid, SIGKILL);
    do
        r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    s->pid = 0;
    if (s->stdout_fd >= 0)
        close(s->stdout_fd);
    s->stdout_fd = -1;
    return r == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : -1;
}

bool h_under_valgrind(void)
{
    const char *v = getenv("CEBUS_TEST_VALGRIND");

    return v && *v && strcmp(v, "0") != 0;
}

int h_server_stop(struct h_server *s)
{
    int64_t deadline = h_now_ms() + H_STOP_TIMEOUT_MS;
    int status = 0, code;
    pid_t r;

    if (!s->pid)
        return 0;
    kill(s->pid, SIGTERM);
    for (;;) {
        r = waitpid(s->pid, &status, WNOHANG);
        if (r == s->pid || (r < 0 && errno != EINTR))
            break;
        if (h_now_ms() >= deadline) {
            fprintf(stderr, "harness: cebusd %s did not stop within %d ms; killing it\n", s->addr,
                    H_STOP_TIMEOUT_MS);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            r = -2;
            break;
        }
        usleep(20 * 1000); /* polling a child's exit; bounded by the deadline */
    }
    s->pid = 0;
    if (s->stdout_fd >= 0)
        close(s->stdout_fd);
    s->stdout_fd = -1;
    if (r == -2)
        code = -1;
    else if (r < 0)
        code = -1;
    else if (WIFEXITED(status))
        code = WEXITSTATUS(status);
    else
        code = 128 + WTERMSIG(status);
    if (code != 0) {
        fprintf(stderr, "harness: cebusd %s exited with %d\n", s->addr, code);
        h_server_dump_log(s);
    }
    return code;
}

/* ---- Per-process environment ------------------------------------------------------ */

int h_env_setup(void **state)
{
    struct h_env *env = calloc(1, sizeof *env);

    if (!env)
        abort();
    /* A child that exits before reading all its stdin, or a server that
     * drops a connection, must fail a write, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    cebus_library_init();
    if (h_db_create(&env->db) != 0)
        goto fail;
    if (h_server_start(&env->srv[0], env->db.conninfo, NULL) != 0)
        goto fail;
    env->nservers = 1;
    env->admin = cebus_client_new(env->srv[0].addr, H_ADMIN_KEY);
    *state = env;
    return 0;
fail:
    h_db_drop(&env->db);
    cebus_library_shutdown();
    free(env);
    return -1;
}

int h_env_teardown(void **state)
{
    struct h_env *env = *state;
    int rc = 0;

    if (!env)
        return 0;
    cebus_client_free(env->admin);
    for (int i = env->nservers - 1; i >= 0; i--) {
        int code = h_server_stop(&env->srv[i]);
        if (code != 0) {
            fprintf(stderr, "harness: server %d did not shut down cleanly (exit %d)\n", i, code);
            rc = -1;
        }
    }
    if (h_db_drop(&env->db) != 0)
        rc = -1;
    cebus_library_shutdown();
    free(env);
    *state = NULL;
    return rc;
}

int h_env_add_server_ok(struct h_env *env, const char *const *extra_env)
{
    int i = env->nservers;

    assert_true(i < H_MAX_SERVERS);
    assert_int_equal(h_server_start(&env->srv[i], env->db.conninfo, extra_env), 0);
    env->nservers++;
    return i;
}
