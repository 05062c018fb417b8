/* TLS and mTLS against a real cebusd, through libcebus and the CLI:
 * handshakes and real RPCs (unary and streaming) over TLS, clients that
 * trust another CA or present no or the wrong client certificate are
 * refused, the certificate is replaced on disk and new connections get it
 * without a restart (and a broken replacement is ignored), and settings
 * that must stop cebusd at start do, naming the setting.
 *
 * The certificates are made at test time with the openssl command: two
 * CAs, a server certificate from each (for 127.0.0.1 and localhost), and
 * a client certificate from each.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long the reload test waits for cebusd to notice new files; it looks
 * at most once a second. */
#define RELOAD_TIMEOUT_MS 20000
#define CALL_TIMEOUT_MS 5000

/* The group's state: the certificate directory and one database. */
struct tls_env {
    char dir[1024];
    struct h_db db;
    char *paths[256]; /* what path() returned */
    size_t npaths;
};

static struct tls_env *E;

/* Returns dir/name; the string lives until the group's teardown. */
static const char *path(const char *name)
{
    char *p;

    assert_true(E->npaths < sizeof E->paths / sizeof E->paths[0]);
    if (asprintf(&p, "%s/%s", E->dir, name) < 0)
        abort();
    E->paths[E->npaths++] = p;
    return p;
}

/* Makes the certificates under E->dir. Returns 0, or -1 after printing
 * openssl's output. */
static int make_certificates(void)
{
    static const char script[] =
        "set -e; cd \"$1\"\n"
        "ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout $1.key -out $1.crt -days 2 -subj /CN=$1; }\n"
        "leaf() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout $1.key -out $1.csr -subj /CN=$1; printf \"$3\\n\" > $1.ext; "
        "openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial -out $1.crt "
        "-days 2 -extfile $1.ext; }\n"
        "ca ca1; ca ca2\n"
        "srv='subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth'\n"
        "leaf server1 ca1 \"$srv\"; leaf server2 ca2 \"$srv\"\n"
        "leaf client1 ca1 'extendedKeyUsage=clientAuth'\n"
        "leaf client2 ca2 'extendedKeyUsage=clientAuth'\n";
    char cmd[2400];
    int rc;

    /* The script goes through the environment: no quoting to get wrong. */
    setenv("TLS_TEST_SCRIPT", script, 1);
    snprintf(cmd, sizeof cmd, "sh -c \"$TLS_TEST_SCRIPT\" sh '%s' >'%s/openssl.log' 2>&1",
             E->dir, E->dir);
    rc = system(cmd);
    unsetenv("TLS_TEST_SCRIPT");
    if (rc != 0) {
        char show[1200];
        fprintf(stderr, "test_tls: making certificates failed (status %d); openssl said:\n", rc);
        snprintf(show, sizeof show, "cat '%s/openssl.log' >&2", E->dir);
        if (system(show) != 0)
            fprintf(stderr, "(no log)\n");
        return -1;
    }
    return 0;
}

/* Copies file from to to through a temporary file and rename(), the way a
 * certificate manager replaces files. Fails the test on error. */
static void install_file(const char *from, const char *to)
{
    char tmp[1300], buf[8192];
    FILE *in = fopen(from, "rb"), *out;
    size_t n;

    assert_non_null(in);
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    out = fopen(tmp, "wb");
    assert_non_null(out);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, to), 0);
}

static void write_file(const char *to, const char *text)
{
    char tmp[1300];
    FILE *out;

    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    out = fopen(tmp, "wb");
    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, to), 0);
}

/* Returns how many times needle occurs in the file at p (-1: unreadable). */
static int count_in_file(const char *p, const char *needle)
{
    FILE *f = fopen(p, "rb");
    char *buf;
    long len;
    int count = 0;

    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)len + 1);
    if (!buf)
        abort();
    if (fread(buf, 1, (size_t)len, f) != (size_t)len)
        len = 0;
    buf[len] = '\0';
    fclose(f);
    for (const char *q = buf; (q = strstr(q, needle)) != NULL; q += strlen(needle))
        count++;
    free(buf);
    return count;
}

static int group_setup(void **state)
{
    const char *build = getenv("CEBUS_TEST_BUILD_DIR");

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    E = calloc(1, sizeof *E);
    if (!E)
        abort();
    snprintf(E->dir, sizeof E->dir, "%s/tls-%ld", build && *build ? build : "/tmp",
             (long)getpid());
    if (mkdir(E->dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "test_tls: mkdir %s: %s\n", E->dir, strerror(errno));
        return -1;
    }
    if (make_certificates() != 0)
        return -1;
    cebus_library_init();
    if (h_db_create(&E->db) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[1200];
    int rc = 0;

    (void)state;
    if (h_db_drop(&E->db) != 0)
        rc = -1;
    cebus_library_shutdown();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", E->dir);
    if (system(cmd) != 0)
        rc = -1;
    for (size_t i = 0; i < E->npaths; i++)
        free(E->paths[i]);
    free(E);
    return rc;
}

/* Starts cebusd serving TLS with the given files (client_ca NULL: no
 * client certificates). Fails the test on error. */
static void start_tls_server(struct h_server *srv, const char *cert, const char *key,
                             const char *client_ca)
{
    const char *args[] = {"--tls-cert-file", cert, "--tls-key-file", key,
                          client_ca ? "--tls-client-ca-file" : NULL, client_ca, NULL};

    assert_int_equal(h_server_start_args(srv, E->db.conninfo, NULL, args), 0);
}

/* Stops srv, failing the test unless it exits cleanly, and checks that its
 * log never shows key material. */
static void stop_server_ok(struct h_server *srv)
{
    assert_int_equal(h_server_stop(srv), 0);
    assert_int_equal(count_in_file(srv->log_path, "PRIVATE KEY"), 0);
    assert_int_equal(count_in_file(srv->log_path, "-----BEGIN"), 0);
}

/* Makes one health check on a new client (so a new connection). tls NULL:
 * plaintext. Returns the status code; err gets the details. */
static int health(const char *addr, const cebus_tls_options *tls, cebus_error *err)
{
    cebus_client *c = tls ? cebus_client_new_tls(addr, NULL, tls, err) : cebus_client_new(addr, NULL);
    int serving = 0, rc;

    if (!c)
        return err->code;
    rc = cebus_health_check(c, CALL_TIMEOUT_MS, &serving, err);
    if (rc == 0 && !serving)
        fail_msg("health check over %s: not SERVING", tls ? "TLS" : "plaintext");
    cebus_client_free(c);
    return rc;
}

/* A TLS server answers health checks, unary RPCs and a stream from a client
 * that trusts its CA, and refuses plaintext, other CAs and other names. */
static void test_tls_handshake_and_rpcs(void **state)
{
    cebus_tls_options ca1 = {.ca_file = path("ca1.crt")};
    cebus_tls_options ca2 = {.ca_file = path("ca2.crt")};
    cebus_tls_options wrong_name = {.ca_file = path("ca1.crt"), .server_name = "other.example"};
    cebus_tls_options by_name = {.ca_file = path("ca1.crt"), .server_name = "localhost"};
    struct h_server srv;
    struct h_tenant t;
    cebus_client *admin, *pub, *sub;
    cebus_stream *s;
    Cebus__V1__SubscribeResponse *m;
    cebus_error err;
    uint64_t seq;

    (void)state;
    start_tls_server(&srv, path("server1.crt"), path("server1.key"), NULL);

    assert_int_equal(health(srv.addr, &ca1, &err), 0);
    assert_int_equal(health(srv.addr, &by_name, &err), 0);
    h_assert_status("plaintext client", health(srv.addr, NULL, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);
    h_assert_status("client trusting another CA", health(srv.addr, &ca2, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);
    h_assert_status("client expecting another name", health(srv.addr, &wrong_name, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);

    /* Real RPCs: admin calls, a publish and a stream that delivers it. */
    admin = cebus_client_new_tls(srv.addr, H_ADMIN_KEY, &ca1, &err);
    assert_non_null(admin);
    h_tenant_create_ok(admin, "tls-co", "orders", &t);
    pub = cebus_client_new_tls(srv.addr, t.publisher_key, &ca1, &err);
    sub = cebus_client_new_tls(srv.addr, t.subscriber_key, &ca1, &err);
    assert_non_null(pub);
    assert_non_null(sub);
    s = h_subscribe_ok(sub, "orders", "{}", CEBUS__V1__START_POSITION__START_POSITION_EARLIEST, 0);
    seq = h_put_one_ok(pub, "orders", "tls-1", "it.tls", "{\"secure\":true}");
    m = h_expect_next(s);
    assert_int_equal(m->sequence, seq);
    assert_string_equal(m->event->id, "tls-1");
    cebus__v1__subscribe_response__free_unpacked(m, NULL);
    cebus_stream_close(s);
    cebus_client_free(sub);
    cebus_client_free(pub);
    cebus_client_free(admin);

    /* The CLI: TLS with --tls-ca; without it, loopback means plaintext. */
    {
        const char *ok_args[] = {"--tls-ca", path("ca1.crt"), "health", NULL};
        const char *plain_args[] = {"health", NULL};
        const char *missing_args[] = {"--tls-ca", path("missing.crt"), "health", NULL};
        struct h_cli_result r;

        h_cli_run(srv.addr, NULL, NULL, 30000, ok_args, &r);
        if (r.exit_code != 0)
            fail_msg("cebus --tls-ca health: exit %d: %s", r.exit_code, r.err);
        assert_string_equal(r.out, "SERVING\n");
        h_cli_result_free(&r);
        h_cli_run(srv.addr, NULL, NULL, 30000, plain_args, &r);
        assert_int_equal(r.exit_code, 1);
        assert_non_null(strstr(r.err, "UNAVAILABLE"));
        h_cli_result_free(&r);
        h_cli_run(srv.addr, NULL, NULL, 30000, missing_args, &r);
        assert_int_equal(r.exit_code, 1);
        assert_non_null(strstr(r.err, "--tls-ca"));
        assert_non_null(strstr(r.err, "missing.crt"));
        h_cli_result_free(&r);
    }
    stop_server_ok(&srv);
}

/* With a client CA, cebusd requires a client certificate that CA signed. */
static void test_mtls_requires_a_client_certificate_from_the_ca(void **state)
{
    cebus_tls_options none = {.ca_file = path("ca1.crt")};
    cebus_tls_options other = {.ca_file = path("ca1.crt"),
                               .cert_file = path("client2.crt"),
                               .key_file = path("client2.key")};
    cebus_tls_options right = {.ca_file = path("ca1.crt"),
                               .cert_file = path("client1.crt"),
                               .key_file = path("client1.key")};
    cebus_tls_options half = {.ca_file = path("ca1.crt"), .cert_file = path("client1.crt")};
    cebus_tls_options swapped = {.ca_file = path("client1.key")};
    struct h_server srv;
    Cebus__V1__ListBusesRequest req = CEBUS__V1__LIST_BUSES_REQUEST__INIT;
    Cebus__V1__ListBusesResponse *resp = NULL;
    cebus_client *c;
    cebus_error err;

    (void)state;
    start_tls_server(&srv, path("server1.crt"), path("server1.key"), path("ca1.crt"));

    h_assert_status("no client certificate", health(srv.addr, &none, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);
    h_assert_status("client certificate of another CA", health(srv.addr, &other, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);
    assert_int_equal(health(srv.addr, &right, &err), 0);
    assert_null(cebus_client_new_tls(srv.addr, NULL, &half, &err));
    h_assert_status("cert_file without key_file", err.code, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "key_file");
    /* Files of the wrong kind are named at once, not as a failed connection. */
    assert_null(cebus_client_new_tls(srv.addr, NULL, &swapped, &err));
    h_assert_status("key file as ca_file", err.code, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "ca_file: no PEM certificate");
    swapped.ca_file = path("ca1.crt");
    swapped.cert_file = path("client1.crt");
    swapped.key_file = path("client1.crt");
    assert_null(cebus_client_new_tls(srv.addr, NULL, &swapped, &err));
    h_assert_status("certificate as key_file", err.code, &err, GRPC_STATUS_INVALID_ARGUMENT,
                    "key_file: no PEM private key");

    /* The certificate opens the connection; the API key still decides. */
    c = cebus_client_new_tls(srv.addr, H_ADMIN_KEY, &right, &err);
    assert_non_null(c);
    assert_int_equal(cebus_list_buses(c, &req, &resp, &err), 0);
    cebus__v1__list_buses_response__free_unpacked(resp, NULL);
    cebus_client_free(c);
    c = cebus_client_new_tls(srv.addr, "cb_nope_xxxxxxxxxxxxxxxxxxxxxx", &right, &err);
    h_assert_status("bad key over mTLS", cebus_list_buses(c, &req, &resp, &err), &err,
                    GRPC_STATUS_UNAUTHENTICATED, NULL);
    cebus_client_free(c);

    {
        const char *args[] = {"--tls-ca", path("ca1.crt"), "--tls-cert", path("client1.crt"),
                              "--tls-key", path("client1.key"), "health", NULL};
        struct h_cli_result r;

        h_cli_run(srv.addr, NULL, NULL, 30000, args, &r);
        if (r.exit_code != 0)
            fail_msg("cebus mTLS health: exit %d: %s", r.exit_code, r.err);
        assert_string_equal(r.out, "SERVING\n");
        h_cli_result_free(&r);
    }
    stop_server_ok(&srv);
}

/* Polls health checks with tls until one succeeds or RELOAD_TIMEOUT_MS
 * passes. Returns the last status. */
static int wait_until_healthy(const char *addr, const cebus_tls_options *tls, cebus_error *err)
{
    int64_t deadline = h_now_ms() + RELOAD_TIMEOUT_MS;
    int rc;

    while ((rc = health(addr, tls, err)) != 0 && h_now_ms() < deadline)
        usleep(100 * 1000); /* cebusd looks at its files once a second */
    return rc;
}

/* Replacing the certificate and key files changes what new connections
 * get, without a restart; open connections keep working; files that do
 * not load are reported once and the last good pair stays. */
static void test_reload_without_restart(void **state)
{
    cebus_tls_options ca1 = {.ca_file = path("ca1.crt")};
    cebus_tls_options ca2 = {.ca_file = path("ca2.crt")};
    const char *live_crt = path("live.crt");
    const char *live_key = path("live.key");
    static const char refused[] = "TLS files changed but do not load";
    struct h_server srv;
    cebus_client *old;
    cebus_error err;
    int serving = 0;
    pid_t pid;
    int64_t until;

    (void)state;
    install_file(path("server1.crt"), path("live.crt"));
    install_file(path("server1.key"), path("live.key"));
    start_tls_server(&srv, live_crt, live_key, NULL);
    pid = srv.pid;

    old = cebus_client_new_tls(srv.addr, NULL, &ca1, &err);
    assert_non_null(old);
    assert_int_equal(cebus_health_check(old, CALL_TIMEOUT_MS, &serving, &err), 0);
    h_assert_status("CA 2 before the reload", health(srv.addr, &ca2, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);

    /* Key first, then certificate: for a moment the pair does not match. */
    install_file(path("server2.key"), path("live.key"));
    install_file(path("server2.crt"), path("live.crt"));
    if (wait_until_healthy(srv.addr, &ca2, &err) != 0)
        fail_msg("new connections trusting CA 2 still fail after %d ms: %s", RELOAD_TIMEOUT_MS,
                 err.message);
    h_assert_status("CA 1 after the reload", health(srv.addr, &ca1, &err), &err,
                    GRPC_STATUS_UNAVAILABLE, NULL);
    assert_int_equal(srv.pid, pid); /* the same process throughout */
    assert_int_equal(cebus_health_check(old, CALL_TIMEOUT_MS, &serving, &err), 0);
    assert_true(serving);
    cebus_client_free(old);
    assert_true(count_in_file(srv.log_path, "TLS certificate reloaded") >= 1);

    /* A certificate file that is not PEM: refused, logged once, and the
     * server keeps presenting the pair from CA 2. */
    write_file(live_crt, "not a certificate\n");
    until = h_now_ms() + RELOAD_TIMEOUT_MS;
    while (count_in_file(srv.log_path, refused) < 1 && h_now_ms() < until) {
        assert_int_equal(health(srv.addr, &ca2, &err), 0);
        usleep(100 * 1000);
    }
    assert_int_equal(count_in_file(srv.log_path, refused), 1);
    assert_true(count_in_file(srv.log_path, "setting=tls-cert-file") >= 1);
    /* More handshakes, past the next look at the files: no new line. */
    until = h_now_ms() + 1500;
    while (h_now_ms() < until) {
        assert_int_equal(health(srv.addr, &ca2, &err), 0);
        usleep(100 * 1000);
    }
    assert_int_equal(count_in_file(srv.log_path, refused), 1);

    /* Fixed files load again. */
    install_file(path("server1.crt"), path("live.crt"));
    install_file(path("server1.key"), path("live.key"));
    if (wait_until_healthy(srv.addr, &ca1, &err) != 0)
        fail_msg("CA 1 not back after %d ms: %s", RELOAD_TIMEOUT_MS, err.message);
    stop_server_ok(&srv);
}

/* Runs cebusd with args and expects it to stop at start with exit code 2
 * and a message containing want and also (when not NULL). */
static void expect_start_error(const char *const *args, const char *want, const char *also)
{
    /* A database that cannot exist: should the settings wrongly pass,
     * cebusd fails with another code instead of starting anything. */
    const char *env[] = {"CEBUS_DATABASE_URL=host=/nonexistent/cebus-tls-test",
                         "CEBUS_ADMIN_KEY=" H_ADMIN_KEY, "CEBUS_LISTEN", NULL};
    struct h_cli_result r;

    h_cebusd_run(args, env, 30000, &r);
    if (r.exit_code != 2 || !strstr(r.err, want) || (also && !strstr(r.err, also)))
        fail_msg("cebusd %s ...: exit %d, stderr \"%s\"; wanted exit 2 naming %s%s%s", args[0],
                 r.exit_code, r.err, want, also ? " and " : "", also ? also : "");
    h_cli_result_free(&r);
}

#define START_ERROR(want, also, ...) \
    expect_start_error((const char *const[]){__VA_ARGS__, NULL}, (want), (also))

/* Bad TLS files and plaintext off loopback stop cebusd at start with a
 * message naming the setting; --allow-plaintext lets it listen. */
static void test_start_errors_name_the_setting(void **state)
{
    struct h_server srv;
    cebus_error err;
    char addr[64];
    const char *colon;
    const char *allow[] = {"--listen", "0.0.0.0:0", "--allow-plaintext", "true", NULL};

    (void)state;
    START_ERROR("tls-key-file", NULL, "--tls-cert-file", path("server1.crt"));
    START_ERROR("tls-cert-file", "missing.crt", "--tls-cert-file", path("missing.crt"),
                "--tls-key-file", path("server1.key"));
    START_ERROR("tls-key-file", "does not belong", "--tls-cert-file", path("server1.crt"),
                "--tls-key-file", path("client1.key"));
    START_ERROR("tls-cert-file", "no PEM certificate", "--tls-cert-file", path("server1.key"),
                "--tls-key-file", path("server1.key"));
    START_ERROR("tls-key-file", "private key", "--tls-cert-file", path("server1.crt"),
                "--tls-key-file", path("server1.crt"));
    START_ERROR("tls-client-ca-file", "openssl.log", "--tls-cert-file", path("server1.crt"),
                "--tls-key-file", path("server1.key"), "--tls-client-ca-file",
                path("openssl.log"));
    START_ERROR("listen", "allow-plaintext", "--listen", "0.0.0.0:0");

    assert_int_equal(h_server_start_args(&srv, E->db.conninfo, NULL, allow), 0);
    colon = strrchr(srv.addr, ':');
    assert_non_null(colon);
    snprintf(addr, sizeof addr, "127.0.0.1%s", colon);
    assert_int_equal(health(addr, NULL, &err), 0);
    assert_true(count_in_file(srv.log_path, "plaintext on a non-loopback address") == 1);
    assert_int_equal(h_server_stop(&srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_handshake_and_rpcs),
        cmocka_unit_test(test_mtls_requires_a_client_certificate_from_the_ca),
        cmocka_unit_test(test_reload_without_restart),
        cmocka_unit_test(test_start_errors_name_the_setting),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
