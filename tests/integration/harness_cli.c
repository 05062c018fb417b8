/* Integration fixtures: runs the cebus CLI as a child process with given
 * arguments, environment and stdin, and captures its output. See harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct sink {
    char *buf;
    size_t len, cap;
};

static void sink_add(struct sink *k, const char *data, size_t n)
{
    if (k->len + n + 1 > k->cap) {
        k->cap = (k->len + n + 1) * 2;
        k->buf = realloc(k->buf, k->cap);
        if (!k->buf)
            abort();
    }
    memcpy(k->buf + k->len, data, n);
    k->len += n;
    k->buf[k->len] = '\0';
}

/* Reads what is available on *fd into k; closes it and sets -1 on EOF. */
static void drain(int *fd, struct sink *k)
{
    char buf[4096];
    ssize_t n = read(*fd, buf, sizeof buf);

    if (n > 0) {
        sink_add(k, buf, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    close(*fd);
    *fd = -1;
}

/* Runs program bin with args (NULL-terminated, without the program name),
 * the environment with overrides applied (see h_env_build), and stdin_data
 * on stdin; collects its outputs and exit status into r. */
static void run_program(const char *bin, const char *const *args, const char *const *overrides,
                        const char *stdin_data, int timeout_ms, struct h_cli_result *r)
{
    struct sink out = {0}, errs = {0};
    size_t nargs = 0, written = 0, inlen = stdin_data ? strlen(stdin_data) : 0;
    int in[2], op[2], ep[2], status = 0;
    int64_t deadline = h_now_ms() + timeout_ms;
    bool killed = false;
    char **argv, **envp;
    pid_t pid;

    memset(r, 0, sizeof *r);
    sink_add(&out, "", 0);
    sink_add(&errs, "", 0);
    if (!bin || !*bin) {
        r->exit_code = -1;
        r->out = out.buf;
        r->err = errs.buf;
        fprintf(stderr, "harness: the program to run is not set; run the test through ctest\n");
        return;
    }
    while (args[nargs])
        nargs++;
    argv = calloc(nargs + 2, sizeof *argv);
    if (!argv)
        abort();
    argv[0] = (char *)bin;
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = (char *)args[i];
    envp = h_env_build(overrides);

    if (pipe2(in, O_CLOEXEC) || pipe2(op, O_CLOEXEC) || pipe2(ep, O_CLOEXEC))
        abort();
    pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(in[0], STDIN_FILENO) < 0 || dup2(op[1], STDOUT_FILENO) < 0 ||
            dup2(ep[1], STDERR_FILENO) < 0)
            _exit(126);
        execve(bin, argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(op[1]);
    close(ep[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    if (inlen == 0) {
        close(in[1]);
        in[1] = -1;
    }

    /* Feed stdin and collect both outputs at once: a child blocked on a full
     * pipe would otherwise never exit. */
    while (op[0] >= 0 || ep[0] >= 0) {
        struct pollfd p[3];
        int n = 0, io = -1, oo = -1, eo = -1;
        int64_t left = deadline - h_now_ms();

        if (left <= 0) {
            kill(pid, SIGKILL);
            killed = true;
            break;
        }
        if (in[1] >= 0) {
            p[n] = (struct pollfd){.fd = in[1], .events = POLLOUT};
            io = n++;
        }
        if (op[0] >= 0) {
            p[n] = (struct pollfd){.fd = op[0], .events = POLLIN};
            oo = n++;
        }
        if (ep[0] >= 0) {
            p[n] = (struct pollfd){.fd = ep[0], .events = POLLIN};
            eo = n++;
        }
        if (poll(p, (nfds_t)n, (int)left) < 0 && errno != EINTR)
            break;
        if (io >= 0 && (p[io].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], stdin_data + written, inlen - written);
            if (w > 0)
                written += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == inlen) {
                close(in[1]);
                in[1] = -1;
            }
        }
        if (oo >= 0 && (p[oo].revents & (POLLIN | POLLHUP | POLLERR)))
            drain(&op[0], &out);
        if (eo >= 0 && (p[eo].revents & (POLLIN | POLLHUP | POLLERR)))
            drain(&ep[0], &errs);
    }
    if (in[1] >= 0)
        close(in[1]);
    if (op[0] >= 0)
        close(op[0]);
    if (ep[0] >= 0)
        close(ep[0]);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        if (!killed && h_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            killed = true;
        }
        usleep(5 * 1000); /* the child has closed its outputs; it is exiting */
    }
    if (killed)
        r->exit_code = -1;
    else if (WIFEXITED(status))
        r->exit_code = WEXITSTATUS(status);
    else
        r->exit_code = 128 + WTERMSIG(status);
    r->out = out.buf;
    r->err = errs.buf;
    h_env_free_list(envp);
    free(argv);
}

void h_cli_run(const char *addr, const char *key, const char *stdin_data, int timeout_ms,
               const char *const *args, struct h_cli_result *r)
{
    char addr_env[128], key_env[512];
    const char *overrides[3];

    snprintf(addr_env, sizeof addr_env, "CEBUS_ADDR=%s", addr);
    snprintf(key_env, sizeof key_env, "CEBUS_API_KEY=%s", key ? key : "");
    overrides[0] = addr_env;
    overrides[1] = key ? key_env : "CEBUS_API_KEY";
    overrides[2] = NULL;
    run_program(getenv("CEBUS_TEST_CLI"), args, overrides, stdin_data, timeout_ms, r);
}

void h_cebusd_run(const char *const *args, const char *const *extra_env, int timeout_ms,
                  struct h_cli_result *r)
{
    run_program(getenv("CEBUS_TEST_CEBUSD"), args, extra_env, NULL, timeout_ms, r);
}

void h_cli_result_free(struct h_cli_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}
