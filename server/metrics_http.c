/* The metrics endpoint: a deliberately small HTTP/1.1 responder on its own
 * port and thread. Prometheus scrapes it every few seconds; nothing else
 * should talk to it, so it serves one request per connection, one
 * connection at a time, each bounded in size and time so that a stuck or
 * hostile peer cannot hold it for long. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "util.h"

#define REQUEST_MAX 8192
#define IO_TIMEOUT_MS 2000

struct eb_metrics_server {
    int fd;
    int stop_pipe[2];
    pthread_t thread;
};

/* Writes all of p[0..len) or gives up at the socket's send timeout. */
static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, const char *status, const char *type, const char *body,
                    size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, len);
    write_all(fd, head, (size_t)n);
    write_all(fd, body, len);
}

/* Reads one request head (to the blank line) and answers it. */
static void serve(int fd)
{
    struct timeval tv = {IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000};
    char req[REQUEST_MAX + 1];
    size_t n = 0;
    int64_t deadline = eb_now_mono_us() + IO_TIMEOUT_MS * 1000LL;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (;;) {
        ssize_t got;
        if (n == REQUEST_MAX || eb_now_mono_us() > deadline) {
            static const char msg[] = "request head too large or too slow\n";
            respond(fd, "431 Request Header Fields Too Large", "text/plain", msg,
                    sizeof msg - 1);
            return;
        }
        got = recv(fd, req + n, REQUEST_MAX - n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return; /* closed or timed out before a whole head */
        n += (size_t)got;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            break;
    }
    if (strncmp(req, "GET ", 4) != 0) {
        static const char msg[] = "only GET is served here\n";
        respond(fd, "405 Method Not Allowed", "text/plain", msg, sizeof msg - 1);
        return;
    }
    {
        const char *path = strchr(req, ' ') + 1;
        size_t plen = strcspn(path, " ?\r\n");
        if (plen == 8 && memcmp(path, "/metrics", 8) == 0) {
            size_t len;
            char *body = eb_metrics_render(&len);
            respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body,
                    len);
            free(body);
        } else {
            static const char msg[] = "not found; metrics are at /metrics\n";
            respond(fd, "404 Not Found", "text/plain", msg, sizeof msg - 1);
        }
    }
}

static void *run(void *arg)
{
    eb_metrics_server *ms = arg;

    for (;;) {
        struct pollfd pfd[2] = {{.fd = ms->fd, .events = POLLIN},
                                {.fd = ms->stop_pipe[0], .events = POLLIN}};
        int c;

        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            eb_log_error("msg=\"metrics endpoint poll failed\" errno=%d", errno);
            return NULL;
        }
        if (pfd[1].revents)
            return NULL;
        if (!(pfd[0].revents & POLLIN))
            continue;
        c = accept4(ms->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue; /* ECONNABORTED, EMFILE...: the next scrape retries */
        serve(c);
        close(c);
    }
}

/* Splits "host:port" (host may be "[v6]") and resolves it for bind(). */
static eb_status resolve(const char *addr, struct addrinfo **res)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hlen;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char *end;
    long port;

    if (!colon || colon[1] == '\0')
        return EB_EINVAL;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return EB_EINVAL;
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return EB_EINVAL;
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    return getaddrinfo(hlen ? host : NULL, colon + 1, &hints, res) == 0 ? EB_OK : EB_EINVAL;
}

eb_status eb_metrics_server_start(const char *addr, eb_metrics_server **out, int *port)
{
    struct addrinfo *res = NULL;
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    eb_metrics_server *ms;
    int fd = -1, one = 1;
    eb_status st;

    st = resolve(addr, &res);
    if (st) {
        eb_log_error("msg=\"metrics-listen: expected host:port\" metrics_listen=%.100s", addr);
        return st;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        eb_log_error("msg=\"cannot listen for metrics; is another server on that address?\" "
                     "metrics_listen=%.100s errno=%d",
                     addr, errno);
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return EB_EUNAVAIL;
    }
    freeaddrinfo(res);
    ms = eb_calloc(1, sizeof *ms);
    ms->fd = fd;
    /* Like an allocation failure, running out of these at start is not
     * something to recover from. */
    if (pipe2(ms->stop_pipe, O_CLOEXEC) != 0 || pthread_create(&ms->thread, NULL, run, ms) != 0)
        abort();
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    *out = ms;
    return EB_OK;
}

void eb_metrics_server_free(eb_metrics_server *ms)
{
    if (!ms)
        return;
    if (write(ms->stop_pipe[1], "x", 1) != 1)
        eb_log_error("msg=\"cannot stop the metrics endpoint\"");
    pthread_join(ms->thread, NULL);
    close(ms->stop_pipe[0]);
    close(ms->stop_pipe[1]);
    close(ms->fd);
    free(ms);
}
