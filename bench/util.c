/* cebus-bench helpers: clock, latency samples and option parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until_ns(int64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000),
                          .tv_nsec = (long)(t_ns % 1000000000)};

    if (t_ns <= bench_now_ns())
        return;
    /* An absolute deadline: EINTR restarts towards the same instant. The
     * retry count bounds the loop should signals keep arriving. */
    for (int i = 0; i < 1000; i++)
        if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != EINTR)
            return;
}

/* ---- Samples ------------------------------------------------------------- */

void bench_samples_add(struct bench_samples *s, int64_t ns)
{
    size_t limit = s->limit ? s->limit : BENCH_SAMPLES_DEFAULT_LIMIT;

    if (s->n >= limit) {
        s->dropped++;
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        int64_t *v;

        if (cap > limit)
            cap = limit;
        v = realloc(s->v, cap * sizeof *v);
        if (!v)
            abort(); /* out of memory: see STYLE.md */
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = ns;
}

void bench_samples_merge(struct bench_samples *dst, const struct bench_samples *src)
{
    for (size_t i = 0; i < src->n; i++)
        bench_samples_add(dst, src->v[i]);
    dst->dropped += src->dropped;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

void bench_samples_sort(struct bench_samples *s)
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof *s->v, cmp_i64);
}

int64_t bench_samples_pct(const struct bench_samples *s, double p)
{
    size_t rank;

    if (s->n == 0)
        return 0;
    /* Nearest rank: the smallest sample with at least p% at or below it. */
    rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

int64_t bench_samples_max(const struct bench_samples *s)
{
    return s->n ? s->v[s->n - 1] : 0;
}

void bench_samples_free(struct bench_samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

void bench_run_id(char *buf, size_t size)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%06lx%010llx", (unsigned long)getpid() & 0xffffff,
             ((unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec) &
                 0xffffffffffULL);
}

const char *bench_fmt_us(char *buf, size_t size, int64_t ns)
{
    snprintf(buf, size, "%.1f", (double)ns / 1000.0);
    return buf;
}

/* ---- Options --------------------------------------------------------------- */

static int opt_fail(const char *usage, const char *fmt, const char *a, const char *b)
{
    fputs("cebus-bench: ", stderr);
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n%s", usage);
    return 2;
}

static int opt_assign(const struct bench_opt *o, const char *v, const char *usage)
{
    char *end = NULL;

    switch (o->kind) {
    case BENCH_OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case BENCH_OPT_INT: {
        long n;

        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || end == v || *end || (double)n < o->min || (double)n > o->max)
            return opt_fail(usage, "--%s: \"%s\" is not an integer in range", o->name, v);
        *(long *)o->dst = n;
        return 0;
    }
    case BENCH_OPT_DOUBLE: {
        double d;

        errno = 0;
        d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= o->min && d <= o->max))
            return opt_fail(usage, "--%s: \"%s\" is not a number in range", o->name, v);
        *(double *)o->dst = d;
        return 0;
    }
    case BENCH_OPT_FLAG:
        *(bool *)o->dst = true;
        return 0;
    }
    return 2;
}

int bench_parse_opts(int argc, char **argv, const struct bench_opt *opts, const char *usage)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *eq, *name, *value = NULL;
        const struct bench_opt *o;
        size_t nlen;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0)
            return opt_fail(usage, "unexpected argument \"%s\"%s", a, "");
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t)(eq - name) : strlen(name);
        for (o = opts; o->name; o++)
            if (strlen(o->name) == nlen && strncmp(o->name, name, nlen) == 0)
                break;
        if (!o->name)
            return opt_fail(usage, "unknown option \"%s\"%s", a, "");
        if (o->kind == BENCH_OPT_FLAG) {
            if (eq)
                return opt_fail(usage, "--%s takes no value%s", o->name, "");
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return opt_fail(usage, "--%s needs a value%s", o->name, "");
        }
        if (opt_assign(o, value, usage))
            return 2;
    }
    return 0;
}
