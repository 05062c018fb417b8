/* ingest: PutEvents throughput through gRPC, and the latency of each call.
 *
 * N threads each loop over one synchronous PutEvents of `batch` events of
 * about `bytes` encoded bytes; success means the events are committed to
 * PostgreSQL (DESIGN: durable ingest). Each thread has its own cebus_client
 * unless --shared-client is given. Calls that complete within the measured
 * window (after --warmup) count.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cebus.h"

#define USAGE                                                                              \
    "usage: cebus-bench ingest --addr HOST:PORT --key KEY --bus BUS [--clients 8]\n"       \
    "                          [--batch 100] [--seconds 5] [--bytes 1024] [--warmup 1]\n"  \
    "                          [--shared-client]\n"                                       \
    "PutEvents throughput (events/s) and call latency with N concurrent callers.\n"

#define MAX_CLIENTS 256
#define MAX_BATCH 10000

struct ingest_worker {
    pthread_t thread;
    unsigned index;
    cebus_client *client; /* own, or the shared one */
    const char *bus;
    const char *run;
    long batch, bytes;
    pthread_barrier_t *ready, *go;
    const int64_t *measure_from, *measure_until;
    /* Results. */
    uint64_t events, calls, errors, rejected;
    size_t event_bytes;
    struct bench_samples lat;
    cebus_error first_error;
};

static void *ingest_worker_main(void *arg)
{
    struct ingest_worker *w = arg;
    struct bench_event *evs = calloc((size_t)w->batch, sizeof *evs);
    Io__Cloudevents__V1__CloudEvent **ptrs = calloc((size_t)w->batch, sizeof *ptrs);
    Cebus__V1__PutEventsRequest req = CEBUS__V1__PUT_EVENTS_REQUEST__INIT;
    uint64_t n = 0;

    if (!evs || !ptrs)
        abort();
    for (long i = 0; i < w->batch; i++) {
        bench_event_init(&evs[i], w->index, (size_t)w->bytes, false, w->run);
        ptrs[i] = &evs[i].ev;
    }
    w->event_bytes = bench_event_size(&evs[0]);
    req.bus = (char *)w->bus;
    req.events = ptrs;
    req.n_events = (size_t)w->batch;
    pthread_barrier_wait(w->ready);
    pthread_barrier_wait(w->go);

    for (;;) {
        Cebus__V1__PutEventsResponse *resp = NULL;
        cebus_error err;
        int64_t t0 = bench_now_ns(), t1;
        int rc;

        if (t0 >= *w->measure_until)
            break;
        for (long i = 0; i < w->batch; i++)
            bench_event_set_id(&evs[i], w->index, ++n);
        rc = cebus_put_events(w->client, &req, &resp, &err);
        t1 = bench_now_ns();
        if (rc != 0) {
            if (w->errors++ == 0)
                w->first_error = err;
            continue;
        }
        if (resp->failed_count != 0 || resp->n_results != (size_t)w->batch) {
            if (w->rejected == 0 && w->errors == 0) {
                w->first_error.code = resp->n_results ? resp->results[0]->code : -1;
                snprintf(w->first_error.message, sizeof w->first_error.message,
                         "%u of %zu entries rejected%s%s", resp->failed_count, resp->n_results,
                         resp->n_results ? ": " : "",
                         resp->n_results && resp->results[0]->message ? resp->results[0]->message
                                                                      : "");
            }
            w->rejected += resp->failed_count ? resp->failed_count : 1;
        }
        cebus__v1__put_events_response__free_unpacked(resp, NULL);
        if (t1 >= *w->measure_from && t1 <= *w->measure_until) {
            w->events += (uint64_t)w->batch;
            w->calls++;
            bench_samples_add(&w->lat, t1 - t0);
        }
    }
    for (long i = 0; i < w->batch; i++)
        bench_event_free(&evs[i]);
    free(ptrs);
    free(evs);
    return NULL;
}

int bench_cmd_ingest(int argc, char **argv)
{
    const char *addr = NULL, *key = NULL, *bus = NULL;
    long clients = 8, batch = 100, bytes = 1024;
    double seconds = 5, warmup = 1;
    bool shared = false;
    const struct bench_opt opts[] = {
        {"addr", BENCH_OPT_STR, &addr, 0, 0},
        {"key", BENCH_OPT_STR, &key, 0, 0},
        {"bus", BENCH_OPT_STR, &bus, 0, 0},
        {"clients", BENCH_OPT_INT, &clients, 1, MAX_CLIENTS},
        {"batch", BENCH_OPT_INT, &batch, 1, MAX_BATCH},
        {"seconds", BENCH_OPT_DOUBLE, &seconds, 0.1, 3600},
        {"bytes", BENCH_OPT_INT, &bytes, 64, 4 << 20},
        {"warmup", BENCH_OPT_DOUBLE, &warmup, 0, 600},
        {"shared-client", BENCH_OPT_FLAG, &shared, 0, 0},
        {NULL, BENCH_OPT_FLAG, NULL, 0, 0},
    };
    struct ingest_worker *w;
    struct bench_samples all = {0};
    pthread_barrier_t ready, go;
    int64_t measure_from = 0, measure_until = 0;
    uint64_t events = 0, calls = 0, errors = 0, rejected = 0;
    const cebus_error *first_error = NULL;
    cebus_client *shared_client = NULL;
    char p50[32], p99[32], run[24];
    double rate;
    int rc;

    rc = bench_parse_opts(argc, argv, opts, USAGE);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (!addr || !key || !bus) {
        fprintf(stderr, "cebus-bench ingest: --addr, --key and --bus are required\n%s", USAGE);
        return 2;
    }

    bench_run_id(run, sizeof run);
    cebus_library_init();
    if (shared)
        shared_client = cebus_client_new(addr, key);
    w = calloc((size_t)clients, sizeof *w);
    if (!w)
        abort();
    pthread_barrier_init(&ready, NULL, (unsigned)clients + 1);
    pthread_barrier_init(&go, NULL, (unsigned)clients + 1);
    for (long i = 0; i < clients; i++) {
        w[i].index = (unsigned)i;
        w[i].client = shared ? shared_client : cebus_client_new(addr, key);
        w[i].bus = bus;
        w[i].run = run;
        w[i].batch = batch;
        w[i].bytes = bytes;
        w[i].ready = &ready;
        w[i].go = &go;
        w[i].measure_from = &measure_from;
        w[i].measure_until = &measure_until;
        if (pthread_create(&w[i].thread, NULL, ingest_worker_main, &w[i]) != 0)
            abort();
    }
    pthread_barrier_wait(&ready);
    measure_from = bench_now_ns() + (int64_t)(warmup * 1e9);
    measure_until = measure_from + (int64_t)(seconds * 1e9);
    pthread_barrier_wait(&go);
    for (long i = 0; i < clients; i++) {
        pthread_join(w[i].thread, NULL);
        events += w[i].events;
        calls += w[i].calls;
        errors += w[i].errors;
        rejected += w[i].rejected;
        if ((w[i].errors || w[i].rejected) && !first_error)
            first_error = &w[i].first_error;
        bench_samples_merge(&all, &w[i].lat);
        bench_samples_free(&w[i].lat);
    }
    pthread_barrier_destroy(&ready);
    pthread_barrier_destroy(&go);

    bench_samples_sort(&all);
    rate = (double)events / seconds;
    printf("ingest: %ld clients (%s), batch %ld, %zu-byte events: %.0f events/s, %.0f calls/s, "
           "call p50 %s us p99 %s us, failed calls %" PRIu64 ", rejected events %" PRIu64 "\n",
           clients, shared ? "one shared cebus_client" : "one cebus_client each", batch,
           w[0].event_bytes, rate, (double)calls / seconds,
           bench_fmt_us(p50, sizeof p50, bench_samples_pct(&all, 50)),
           bench_fmt_us(p99, sizeof p99, bench_samples_pct(&all, 99)), errors, rejected);
    if (first_error)
        printf("ingest: first error: %s: %s\n", cebus_status_name(first_error->code),
               first_error->message);
    printf("bench=ingest clients=%ld shared_client=%d batch=%ld event_bytes=%zu seconds=%.2f "
           "events=%" PRIu64 " events_per_s=%.0f calls_per_s=%.0f call_p50_us=%.1f "
           "call_p99_us=%.1f call_max_us=%.1f errors=%" PRIu64 " rejected=%" PRIu64 "\n",
           clients, shared ? 1 : 0, batch, w[0].event_bytes, seconds, events, rate,
           (double)calls / seconds, (double)bench_samples_pct(&all, 50) / 1000.0,
           (double)bench_samples_pct(&all, 99) / 1000.0,
           (double)bench_samples_max(&all) / 1000.0, errors, rejected);
    fflush(stdout);
    bench_samples_free(&all);
    rc = (errors || rejected || events == 0) ? 1 : 0;

    for (long i = 0; i < clients; i++)
        if (!shared)
            cebus_client_free(w[i].client);
    cebus_client_free(shared_client);
    free(w);
    cebus_library_shutdown();
    return rc;
}
