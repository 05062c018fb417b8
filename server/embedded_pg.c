#include "embedded_pg.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Finds the newest /usr/lib/postgresql/N/bin. */
static bool find_bindir(char *out, size_t size)
{
    DIR *d = opendir("/usr/lib/postgresql");
    struct dirent *de;
    int best = -1;

    if (!d)
        return false;
    while ((de = readdir(d)) != NULL) {
        int v = atoi(de->d_name);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "/usr/lib/postgresql/%s/bin/pg_ctl", de->d_name);
        if (v > best && access(path, X_OK) == 0)
            best = v;
    }
    closedir(d);
    if (best < 0)
        return false;
    snprintf(out, size, "/usr/lib/postgresql/%d/bin", best);
    return true;
}

/* Runs argv (as the postgres user when we are root) with output appended to
 * logfile (NULL: discarded); returns the exit status, or -1. */
static int run(char *const argv[], const char *logfile)
{
    pid_t pid = fork();
    int status;

    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Tool output goes to the log (or nowhere), never to cebusd's
         * stdout, which carries the lines clients wait for. */
        FILE *f = freopen(logfile ? logfile : "/dev/null", "a", stdout);
        (void)f;
        dup2(STDOUT_FILENO, STDERR_FILENO);
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("postgres");
            if (!pw || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
                _exit(126);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Creates dir (and parents) owned by the postgres user when root. */
static bool make_dir(const char *dir)
{
    char tmp[PATH_MAX];
    size_t len = eb_strlcpy(tmp, dir, sizeof tmp);

    if (len >= sizeof tmp)
        return false;
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return false;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(tmp, pw->pw_uid, pw->pw_gid) != 0)
            return false;
    }
    return true;
}

eb_status eb_embedded_pg_start(const char *data_dir, long port, char *url, size_t urlsize)
{
    char bindir[256], abs[PATH_MAX], pgdata[PATH_MAX + 32], rundir[PATH_MAX + 32], logfile[PATH_MAX + 32];
    char tool[320], opts[PATH_MAX + 128], version[PATH_MAX + 48];
    struct stat stt;

    if (!find_bindir(bindir, sizeof bindir)) {
        eb_log_error("msg=\"embedded PostgreSQL: server binaries not found; install the "
                     "postgresql package or set CEBUS_DATABASE_URL\"");
        return EB_EUNAVAIL;
    }
    if (!make_dir(data_dir) || !realpath(data_dir, abs)) {
        eb_log_error("msg=\"embedded PostgreSQL: cannot create data directory\" dir=%s",
                     data_dir);
        return EB_EUNAVAIL;
    }
    snprintf(pgdata, sizeof pgdata, "%s/pg", abs);
    snprintf(rundir, sizeof rundir, "%s/pg-run", abs);
    snprintf(logfile, sizeof logfile, "%s/pg.log", abs);
    if (!make_dir(rundir)) {
        eb_log_error("msg=\"embedded PostgreSQL: cannot create socket directory\" dir=%s",
                     rundir);
        return EB_EUNAVAIL;
    }
    if (geteuid() == 0) {
        /* The log is written by the postgres user. */
        FILE *f = fopen(logfile, "a");
        struct passwd *pw = getpwnam("postgres");
        if (f)
            fclose(f);
        if (pw && chown(logfile, pw->pw_uid, pw->pw_gid) != 0)
            eb_log_warn("msg=\"embedded PostgreSQL: cannot chown log\"");
    }
    snprintf(version, sizeof version, "%s/PG_VERSION", pgdata);
    if (stat(version, &stt) != 0) {
        char *argv[] = {tool, "-D", pgdata, "-U", "cebus", "--auth=trust", "-E", "UTF8",
                        "--no-locale", NULL};
        eb_log_info("msg=\"embedded PostgreSQL: initializing\" dir=%s", pgdata);
        if (!make_dir(pgdata))
            return EB_EUNAVAIL;
        snprintf(tool, sizeof tool, "%s/initdb", bindir);
        if (run(argv, logfile) != 0) {
            eb_log_error("msg=\"embedded PostgreSQL: initdb failed; see log\" log=%s", logfile);
            return EB_EUNAVAIL;
        }
    }
    snprintf(tool, sizeof tool, "%s/pg_ctl", bindir);
    {
        char *status_argv[] = {tool, "-D", pgdata, "status", NULL};
        if (run(status_argv, NULL) != 0) {
            char *start_argv[] = {tool, "-D", pgdata, "-l", logfile, "-w", "-t", "60",
                                  "-o", opts, "start", NULL};
            snprintf(opts, sizeof opts, "-p %ld -k %s -c listen_addresses=''", port, rundir);
            eb_log_info("msg=\"embedded PostgreSQL: starting\" port=%ld", port);
            if (run(start_argv, logfile) != 0) {
                eb_log_error("msg=\"embedded PostgreSQL: start failed; see log\" log=%s",
                             logfile);
                return EB_EUNAVAIL;
            }
        }
    }
    /* The "cebus" database is created on first connection by the caller. */
    snprintf(url, urlsize, "host=%s port=%ld user=cebus dbname=postgres connect_timeout=5",
             rundir, port);
    return EB_OK;
}

void eb_embedded_pg_stop(const char *data_dir)
{
    char bindir[256], abs[PATH_MAX], pgdata[PATH_MAX + 32], tool[320];
    char *argv[] = {tool, "-D", pgdata, "stop", "-m", "fast", NULL};

    if (!find_bindir(bindir, sizeof bindir) || !realpath(data_dir, abs))
        return;
    snprintf(pgdata, sizeof pgdata, "%s/pg", abs);
    snprintf(tool, sizeof tool, "%s/pg_ctl", bindir);
    if (run(argv, NULL) == 0)
        eb_log_info("msg=\"embedded PostgreSQL: stopped\"");
}
