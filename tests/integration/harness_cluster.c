/* A PostgreSQL cluster owned by one test process, for tests that stop and
 * start the database under a running cebusd. See harness.h. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs a shell command; returns 0 when it exited 0. */
static int run(const char *cmd)
{
    int rc = system(cmd);

    if (rc != 0)
        fprintf(stderr, "harness: \"%s\" failed (%d)\n", cmd, rc);
    return rc == 0 ? 0 : -1;
}

/* The server binaries as scripts/pg.sh finds them, run as the cluster's
 * owner ("postgres" when the tests run as root, as PostgreSQL requires). */
#define PG_CTL                                                                                  \
    "bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); "                         \
    "if [ \"$(id -u)\" = 0 ]; then as='runuser -u postgres --'; else as=; fi; "                  \
    "$as \"$bindir/pg_ctl\""

int h_cluster_start(struct h_cluster *c)
{
    const char *src = getenv("CEBUS_TEST_SOURCE_DIR");
    char cmd[2048];

    memset(c, 0, sizeof *c);
    if (!src || !*src) {
        fprintf(stderr, "harness: CEBUS_TEST_SOURCE_DIR is not set; run the test through ctest\n");
        return -1;
    }
    /* The server listens on a Unix socket only, in its own directory, so
     * the port needs no coordination with other clusters; the path stays
     * short because socket paths are limited to about 100 bytes. */
    snprintf(c->dir, sizeof c->dir, "/tmp/cebus-it-%s-%ld", program_invocation_short_name,
             (long)getpid());
    c->port = 5432;
    snprintf(cmd, sizeof cmd, "'%s/scripts/pg.sh' start '%s' %d >/dev/null", src, c->dir,
             c->port);
    if (run(cmd) != 0)
        return -1;
    snprintf(c->url, sizeof c->url, "host=%s/run port=%d user=cebus dbname=postgres", c->dir,
             c->port);
    c->running = true;
    return 0;
}

int h_cluster_stop(struct h_cluster *c, const char *mode)
{
    char cmd[2048];

    snprintf(cmd, sizeof cmd, PG_CTL " -D '%s/data' stop -w -t 60 -m %s >/dev/null", c->dir,
             mode);
    if (run(cmd) != 0)
        return -1;
    c->running = false;
    return 0;
}

int h_cluster_resume(struct h_cluster *c)
{
    char cmd[2048];

    snprintf(cmd, sizeof cmd,
             PG_CTL " -D '%s/data' -l '%s/server.log' -w -t 60 -o \"-p %d -k %s/run"
                    " -c listen_addresses=''\" start >/dev/null",
             c->dir, c->dir, c->port, c->dir);
    if (run(cmd) != 0)
        return -1;
    c->running = true;
    return 0;
}

void h_cluster_destroy(struct h_cluster *c)
{
    const char *src = getenv("CEBUS_TEST_SOURCE_DIR");
    char cmd[2048];

    if (!c->dir[0])
        return;
    snprintf(cmd, sizeof cmd, "'%s/scripts/pg.sh' stop '%s' %d; rm -rf '%s'", src ? src : ".",
             c->dir, c->port, c->dir);
    run(cmd);
    c->dir[0] = '\0';
    c->running = false;
}
