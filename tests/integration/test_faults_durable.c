/* Faults under durable subscriptions (docs/decisions/0014, "What
 * at-least-once means here" and "Failure cases"), with the real cebusd on
 * a PostgreSQL cluster of this test's own: a replica killed with SIGKILL
 * while consumers ack and publishers are mid-batch, PostgreSQL stopped
 * (fast and immediate) under load, a consumer moving to another replica,
 * and consumers on three replicas sharing one subscription with slow acks.
 *
 * A ledger records, per sequence, every delivery and every Ack answered
 * OK. It fails the test when a sequence is delivered with a new attempt
 * after an Ack of it was answered OK, when two Acks of one sequence both
 * apply, and (where asked) when a sequence is leased to a second consumer
 * before the first lease's deadline. At the end, every sequence whose
 * PutEvents succeeded must have been acked, and every delivery must be of
 * an event that was sent. Duplicates (deliveries of an unacked event
 * again) are allowed and counted. Nothing is timed: waits are for
 * conditions, with generous deadlines. */
#include "harness_load.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* Bounds each phase of a test: publishing enough, recovering, draining. */
#define PHASE_DEADLINE_MS 90000
/* Deadline of one call of a consumer: a call into a dead server or
 * database fails long before; this only bounds a hang. */
#define CONSUMER_CALL_TIMEOUT_MS 20000
/* Ack ids a consumer sends in one Ack (the server takes up to 1,000). */
#define ACK_BATCH 64
#define MAX_CONSUMERS 8
/* How much earlier than a lease's deadline a second lease may be seen:
 * timestamps are PostgreSQL's and this process's, of one clock. */
#define LEASE_CLOCK_SLACK_MS 250

#define ALLOW(code) (1u << (code))

typedef Cebus__V1__SubscribeResponse delivery;

static int64_t wall_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- The ledger ------------------------------------------------------------ */

struct seq_state {
    uint64_t seq; /* 0: free slot */
    int publisher, index; /* from the event's id; -1 when not a load event */
    int deliveries;
    uint32_t acked_attempt; /* attempt of the Ack answered OK; 0: none */
    /* The latest delivery: who holds it, its attempt and lease deadline,
     * and whether it was handed back on purpose (stream end, Nack). */
    int holder;
    uint32_t attempt;
    int64_t deadline_wall_ms;
    bool released;
    /* An Ack of it failed (its outcome unknown: it may have committed)
     * and a later one did not apply: it may be acked already. */
    bool maybe_acked;
    /* Its consumer dropped it unacked at this many deliveries: it must be
     * delivered again. -1 when not dropped. */
    int dropped_at;
};

struct ledger {
    struct seq_state *slots;
    size_t cap, n;
    bool check_leases; /* a second lease before the first's deadline fails */
    bool db_down;      /* PostgreSQL is stopped: no Ack or Nack may answer OK */
    const char *conninfo; /* the servers' database, for diagnosis; borrowed */
    long deliveries, duplicates, stale, acks_ok, not_applied, ack_failures, maybe_acked,
        dropped;
    char violation[700];
};

static void ledger_init(struct ledger *l)
{
    memset(l, 0, sizeof *l);
    l->cap = 1 << 14;
    l->slots = calloc(l->cap, sizeof *l->slots);
    assert_non_null(l->slots);
}

static void ledger_free(struct ledger *l)
{
    free(l->slots);
    memset(l, 0, sizeof *l);
}

static struct seq_state *slot_of(struct seq_state *slots, size_t cap, uint64_t seq)
{
    size_t i = (size_t)(seq * 0x9E3779B97F4A7C15ull) & (cap - 1);

    while (slots[i].seq && slots[i].seq != seq)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

/* Returns the state of seq, NULL when it was never delivered. */
static struct seq_state *ledger_find(struct ledger *l, uint64_t seq)
{
    struct seq_state *s = slot_of(l->slots, l->cap, seq);

    return s->seq ? s : NULL;
}

static struct seq_state *ledger_get(struct ledger *l, uint64_t seq)
{
    struct seq_state *s;

    if (2 * (l->n + 1) > l->cap) {
        size_t cap = l->cap * 2;
        struct seq_state *slots = calloc(cap, sizeof *slots);

        assert_non_null(slots);
        for (size_t i = 0; i < l->cap; i++)
            if (l->slots[i].seq)
                *slot_of(slots, cap, l->slots[i].seq) = l->slots[i];
        free(l->slots);
        l->slots = slots;
        l->cap = cap;
    }
    s = slot_of(l->slots, l->cap, seq);
    if (!s->seq) {
        *s = (struct seq_state){.seq = seq, .publisher = -1, .index = -1, .holder = -1,
                                .dropped_at = -1};
        l->n++;
    }
    return s;
}

/* Records the first violation: fmt takes a sequence and two unsigned
 * numbers. */
static void violation(struct ledger *l, const char *fmt, unsigned long long a, unsigned b,
                      unsigned c)
{
    if (!l->violation[0])
        snprintf(l->violation, sizeof l->violation, fmt, a, b, c);
}

/* Records a delivery of m to consumer `who`. */
static void ledger_delivered(struct ledger *l, int who, const delivery *m)
{
    struct seq_state *s = ledger_get(l, m->sequence);
    int64_t deadline = 0;

    if (m->ack_deadline)
        deadline = m->ack_deadline->seconds * 1000 + m->ack_deadline->nanos / 1000000;
    if (!m->ack_id || !m->ack_id[0] || m->attempt == 0)
        violation(l, "sequence %llu delivered without an ack id or attempt (%u, %u)",
                  (unsigned long long)m->sequence, m->attempt, 0);
    if (s->deliveries == 0 && m->event && m->event->id &&
        sscanf(m->event->id, "p%d-%d", &s->publisher, &s->index) != 2)
        s->publisher = s->index = -1;
    l->deliveries++;
    if (s->deliveries++ > 0)
        l->duplicates++;
    if (s->acked_attempt) {
        /* A copy of a delivery made before the Ack, read late, has an
         * attempt no newer than the acked one; a newer attempt was made
         * after the Ack applied. */
        if (m->attempt > s->acked_attempt)
            violation(l, "sequence %llu delivered again (attempt %u) after its Ack of attempt "
                      "%u was answered OK",
                      (unsigned long long)m->sequence, m->attempt, s->acked_attempt);
        else
            l->stale++;
    }
    if (l->check_leases && s->holder >= 0 && s->holder != who && !s->released &&
        m->attempt > s->attempt && wall_ms() + LEASE_CLOCK_SLACK_MS < s->deadline_wall_ms)
        violation(l, "sequence %llu leased to consumer %u while consumer %u still held it",
                  (unsigned long long)m->sequence, (unsigned)who, (unsigned)s->holder);
    if (m->attempt > s->attempt)
        s->maybe_acked = false; /* it was not */
    if (m->attempt >= s->attempt) {
        s->holder = who;
        s->attempt = m->attempt;
        s->deadline_wall_ms = deadline;
        s->released = false;
    }
}

/* Records that an Ack of (seq, attempt) was answered OK and applied. */
static void ledger_acked(struct ledger *l, uint64_t seq, uint32_t attempt)
{
    struct seq_state *s = ledger_get(l, seq);

    if (s->acked_attempt) {
        violation(l, "sequence %llu acked twice: the Acks of attempts %u and %u both applied",
                  (unsigned long long)seq, s->acked_attempt, attempt);
    } else {
        s->acked_attempt = attempt;
    }
    l->acks_ok++;
}

/* Records that an Ack of seq may have committed although its call failed. */
static void ledger_maybe_acked(struct ledger *l, uint64_t seq)
{
    struct seq_state *s = ledger_get(l, seq);

    if (!s->acked_attempt && !s->maybe_acked) {
        s->maybe_acked = true;
        l->maybe_acked++;
    }
}

static void ledger_assert_clean(struct ledger *l, const char *what)
{
    if (l->violation[0])
        fail_msg("%s: %s", what, l->violation);
}

/* ---- Consumers --------------------------------------------------------------- */

struct pending_ack {
    char id[72];
    uint64_t seq;
    uint32_t attempt;
    int64_t received_ms;
    bool tried; /* in an Ack call that failed */
};

/* A durable consumer: reads its stream, acks what it read (after hold_ms),
 * reopens its stream when it ends, on the next address of its list when
 * it has several. */
struct consumer {
    int number;
    struct ledger *ledger;
    const char *const *addrs; /* borrowed */
    int naddrs, at;
    char key[160], bus[65], sub[65];
    uint32_t max_in_flight;
    int hold_ms;   /* how long to keep a delivery before acking it */
    bool no_acks;  /* collect deliveries, ack none (set by the test) */
    /* Drop the unacked deliveries when the stream ends, as a consumer
     * that loses its work with its server would. */
    bool forget_on_end;
    cebus_client *client;
    cebus_stream *stream; /* NULL while not open */
    struct pending_ack *pending;
    size_t npending, cap;
    long got; /* deliveries read */
    int opens, ends, last_end_code;
    int64_t next_open_ms; /* retry pacing while its server is away */
};

static void consumer_init(struct consumer *c, int number, struct ledger *l,
                          const char *const *addrs, int naddrs, const char *key,
                          const char *bus, const char *sub)
{
    memset(c, 0, sizeof *c);
    c->number = number;
    c->ledger = l;
    c->addrs = addrs;
    c->naddrs = naddrs;
    snprintf(c->key, sizeof c->key, "%s", key);
    snprintf(c->bus, sizeof c->bus, "%s", bus);
    snprintf(c->sub, sizeof c->sub, "%s", sub);
    c->client = cebus_client_new(addrs[0], c->key);
    cebus_client_set_timeout(c->client, CONSUMER_CALL_TIMEOUT_MS);
}

static void consumer_free(struct consumer *c)
{
    cebus_stream_close(c->stream);
    cebus_client_free(c->client);
    free(c->pending);
    memset(c, 0, sizeof *c);
}

/* Closes the stream (if open) and moves the consumer to the next address. */
static void consumer_move(struct consumer *c)
{
    cebus_stream_close(c->stream);
    c->stream = NULL;
    cebus_client_free(c->client);
    c->at = (c->at + 1) % c->naddrs;
    c->client = cebus_client_new(c->addrs[c->at], c->key);
    cebus_client_set_timeout(c->client, CONSUMER_CALL_TIMEOUT_MS);
}

static int consumer_open(struct consumer *c, cebus_error *err)
{
    Cebus__V1__SubscribeRequest req;
    int rc;

    assert_null(c->stream);
    h_subscribe_request(&req, c->bus, NULL, c->sub,
                        CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED, 0);
    req.max_in_flight = c->max_in_flight;
    rc = cebus_subscribe(c->client, &req, &c->stream, err);
    if (rc != 0)
        c->stream = NULL;
    else
        c->opens++;
    return rc;
}

/* Sends an Ack of the pending deliveries held at least hold_ms (at most
 * ACK_BATCH). On OK, the applied ones are recorded in the ledger and all of
 * them dropped; on a failure allowed by allowed_codes they stay pending
 * for the next try (their ids stay valid until re-leased). Returns the
 * call's status, or 0 when there was nothing to ack. */
static int consumer_ack(struct consumer *c, unsigned allowed_codes)
{
    Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;
    Cebus__V1__AckResponse *resp = NULL;
    char *ids[ACK_BATCH];
    size_t n = 0;
    int64_t now = h_now_ms();
    cebus_error err;
    int rc;

    while (n < c->npending && n < ACK_BATCH && now - c->pending[n].received_ms >= c->hold_ms) {
        ids[n] = c->pending[n].id;
        n++;
    }
    if (n == 0 || c->no_acks)
        return 0;
    req.bus = c->bus;
    req.subscription = c->sub;
    req.n_ack_ids = n;
    req.ack_ids = ids;
    rc = cebus_ack(c->client, &req, &resp, &err);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            c->pending[i].tried = true;
        c->ledger->ack_failures++;
        if (!(rc > 0 && rc < 32 && (allowed_codes & (1u << rc))) && !c->ledger->violation[0])
            snprintf(c->ledger->violation, sizeof c->ledger->violation,
                     "consumer %d: Ack failed with %s: %.300s", c->number, cebus_status_name(rc),
                     err.message);
        return rc;
    }
    if (c->ledger->db_down)
        violation(c->ledger, "an Ack of %llu ids answered OK while PostgreSQL was stopped",
                  (unsigned long long)n, 0, 0);
    for (size_t i = 0; i < n; i++) {
        bool applied = true;

        for (size_t k = 0; k < resp->n_not_applied; k++)
            if (resp->not_applied[k] == i)
                applied = false;
        if (applied) {
            ledger_acked(c->ledger, c->pending[i].seq, c->pending[i].attempt);
        } else {
            c->ledger->not_applied++;
            if (c->pending[i].tried)
                ledger_maybe_acked(c->ledger, c->pending[i].seq);
        }
    }
    cebus__v1__ack_response__free_unpacked(resp, NULL);
    c->npending -= n;
    memmove(c->pending, c->pending + n, c->npending * sizeof *c->pending);
    return 0;
}

/* Reads what the stream has (waiting up to wait_ms for the first), then
 * acks. A stream that ended is closed and reopened (on the next address
 * when it has several), retrying while its server or database is away.
 * Any ack failure outside allowed_codes is recorded in the ledger. */
static void consumer_step(struct consumer *c, int wait_ms, unsigned allowed_codes)
{
    cebus_error err;

    if (!c->stream) {
        if (h_now_ms() >= c->next_open_ms && consumer_open(c, &err) != 0)
            c->next_open_ms = h_now_ms() + 50; /* retry pacing */
    }
    for (int k = 0; c->stream && k < ACK_BATCH; k++) {
        delivery *m = NULL;
        int got = cebus_stream_next(c->stream, k == 0 ? wait_ms : 0, &m, &err);

        if (got == 0)
            break;
        if (got < 0) {
            /* Its deliveries were handed back (at their deadlines when its
             * server died): the lease check leaves them alone. */
            for (size_t i = 0; i < c->npending; i++) {
                struct seq_state *s = ledger_find(c->ledger, c->pending[i].seq);
                if (s && s->holder == c->number && s->attempt == c->pending[i].attempt)
                    s->released = true;
            }
            c->ends++;
            c->last_end_code = err.code;
            if (c->forget_on_end) {
                for (size_t i = 0; i < c->npending; i++) {
                    struct seq_state *s = ledger_get(c->ledger, c->pending[i].seq);
                    if (c->pending[i].tried) {
                        ledger_maybe_acked(c->ledger, s->seq);
                    } else if (!s->acked_attempt) {
                        s->dropped_at = s->deliveries;
                        c->ledger->dropped++;
                    }
                }
                c->npending = 0;
            }
            cebus_stream_close(c->stream);
            c->stream = NULL;
            if (c->naddrs > 1)
                consumer_move(c);
            break;
        }
        ledger_delivered(c->ledger, c->number, m);
        c->got++;
        if (c->npending == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 256;
            c->pending = realloc(c->pending, c->cap * sizeof *c->pending);
            assert_non_null(c->pending);
        }
        snprintf(c->pending[c->npending].id, sizeof c->pending[c->npending].id, "%s",
                 m->ack_id ? m->ack_id : "");
        c->pending[c->npending].seq = m->sequence;
        c->pending[c->npending].attempt = m->attempt;
        c->pending[c->npending].received_ms = h_now_ms();
        c->pending[c->npending].tried = false;
        c->npending++;
        cebus__v1__subscribe_response__free_unpacked(m, NULL);
    }
    while (c->npending && consumer_ack(c, allowed_codes) == 0 && !c->no_acks &&
           c->npending >= ACK_BATCH && h_now_ms() - c->pending[0].received_ms >= c->hold_ms)
        ;
}

/* Steps every consumer until done(arg) is true; fails the test with what
 * on a ledger violation or when deadline_ms (h_now_ms() clock) passes. */
static void run_until(struct consumer *cs, int n, unsigned allowed_codes,
                      bool (*done)(void *arg), void *arg, int64_t deadline_ms, const char *what)
{
    while (!done(arg)) {
        for (int i = 0; i < n; i++)
            consumer_step(&cs[i], 5, allowed_codes);
        ledger_assert_clean(cs[0].ledger, what);
        if (h_now_ms() > deadline_ms)
            fail_msg("%s: not reached in time (%ld deliveries, %ld acks applied)", what,
                     cs[0].ledger->deliveries, cs[0].ledger->acks_ok);
    }
}

/* ---- Progress and the final check ------------------------------------------------ */

struct progress {
    struct h_load *load;
    struct ledger *ledger;
    long published;  /* at least this many events acknowledged by PutEvents */
    long acked;      /* and at least this many Acks applied */
    long failed;     /* and at least this many failed publish calls */
    long ok_after[H_LOAD_MAX_PUBLISHERS]; /* and each publisher past this many OK calls */
};

static bool progressed(void *arg)
{
    struct progress *p = arg;
    long published, failed;

    h_load_totals(p->load, &published, NULL, &failed);
    if (published < p->published || p->ledger->acks_ok < p->acked || failed < p->failed)
        return false;
    for (int i = 0; i < p->load->npubs; i++)
        if (h_load_ok_calls(p->load, i) <= p->ok_after[i])
            return false;
    return true;
}

/* Sets p to wait for more events published and acked than now, and a new
 * successful call from every publisher. */
static void expect_more(struct progress *p, long more_published, long more_acked)
{
    h_load_totals(p->load, &p->published, NULL, &p->failed);
    p->published += more_published;
    p->acked = p->ledger->acks_ok + more_acked;
    for (int i = 0; i < p->load->npubs; i++)
        p->ok_after[i] = h_load_ok_calls(p->load, i);
}

/* With a replica dead, its publishers cannot succeed: more Acks applied
 * and more failed publish calls than asked. */
static bool acked_and_failed(void *arg)
{
    struct progress *p = arg;
    long failed;

    h_load_totals(p->load, NULL, NULL, &failed);
    return p->ledger->acks_ok >= p->acked && failed >= p->failed;
}

static bool failed_enough(void *arg)
{
    struct progress *p = arg;
    long failed;

    h_load_totals(p->load, NULL, NULL, &failed);
    return failed >= p->failed;
}

struct all_acked {
    struct h_load *load;
    struct ledger *ledger;
    uint64_t missing; /* the first published sequence not acked yet */
};

/* Every sequence PutEvents acknowledged, and every sequence delivered
 * (events stored by a call that failed included), has been acked, or may
 * have been by an Ack whose call failed (the ledger cannot tell; such an
 * event not acked is delivered again, which clears the doubt). */
static bool every_published_acked(void *arg)
{
    struct all_acked *a = arg;

    for (size_t i = 0; i < a->ledger->cap; i++) {
        const struct seq_state *s = &a->ledger->slots[i];
        if (s->seq && !s->acked_attempt && !s->maybe_acked) {
            a->missing = s->seq;
            return false;
        }
    }

    for (int i = 0; i < a->load->npubs; i++)
        for (size_t k = 0; k < a->load->pubs[i].nacks; k++) {
            struct seq_state *s = ledger_find(a->ledger, a->load->pubs[i].acks[k].seq);
            if (!s || (!s->acked_attempt && !s->maybe_acked)) {
                a->missing = a->load->pubs[i].acks[k].seq;
                return false;
            }
        }
    return true;
}

/* Describes what the database holds of seq (its outstanding row, a dead
 * letter) into out, for a failure message. */
static void describe_in_db(const char *conninfo, uint64_t seq, char *out, size_t size)
{
    PGconn *db = PQconnectdb(conninfo);
    char param[24];
    const char *params[1] = {param};
    PGresult *r;

    snprintf(out, size, "the database did not answer");
    snprintf(param, sizeof param, "%llu", (unsigned long long)seq);
    if (PQstatus(db) == CONNECTION_OK) {
        r = PQexecParams(db,
                         "SELECT (SELECT count(*) FROM dead_letters WHERE seq = $1::bigint), "
                         "(SELECT string_agg(format('attempt %s owner %s due %s blocked %s', "
                         "attempt, owner, due_at, blocked), '; ') FROM sub_pending "
                         "WHERE seq = $1::bigint)",
                         1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK)
            snprintf(out, size, "dead letters: %s; outstanding: %s", PQgetvalue(r, 0, 0),
                     PQgetisnull(r, 0, 1) ? "none" : PQgetvalue(r, 0, 1));
        PQclear(r);
    }
    PQfinish(db);
}

/* After h_load_stop(): runs the consumers until every sequence that
 * PutEvents acknowledged or a consumer received has been acked, then fails the test unless each
 * was delivered with its own event and every delivery was of an event the
 * load sent. Prints the duplicates. */
static void check_all_acked(struct h_load *load, struct consumer *cs, int n,
                            unsigned allowed_codes, const char *what)
{
    struct ledger *l = cs[0].ledger;
    struct all_acked a = {load, l, 0};
    long published = 0, failed = 0;
    int64_t deadline;

    for (int i = 0; i < load->npubs; i++) {
        if (load->pubs[i].bad_code)
            fail_msg("%s: publisher %d: %s", what, i, load->pubs[i].bad_msg);
        published += (long)load->pubs[i].nacks;
        failed += load->pubs[i].failed_calls;
    }
    deadline = h_now_ms() + PHASE_DEADLINE_MS;
    while (!every_published_acked(&a)) {
        for (int i = 0; i < n; i++)
            consumer_step(&cs[i], 5, allowed_codes);
        ledger_assert_clean(l, what);
        if (h_now_ms() > deadline) {
            const struct seq_state *s = ledger_find(l, a.missing);
            char db[300];
            describe_in_db(l->conninfo, a.missing, db, sizeof db);
            if (!s)
                fail_msg("%s: sequence %llu was never delivered (%s)", what,
                         (unsigned long long)a.missing, db);
            fail_msg("%s: sequence %llu was never acked (%d deliveries, the last of attempt "
                     "%u to consumer %d; %s)",
                     what, (unsigned long long)a.missing, s->deliveries, s->attempt, s->holder,
                     db);
        }
    }
    for (int i = 0; i < load->npubs; i++)
        for (size_t k = 0; k < load->pubs[i].nacks; k++) {
            const struct h_load_ack *p = &load->pubs[i].acks[k];
            struct seq_state *s = ledger_find(l, p->seq);
            if (s->publisher != p->publisher || s->index != p->index)
                fail_msg("%s: sequence %llu delivered event p%d-%d, published as p%d-%d", what,
                         (unsigned long long)p->seq, s->publisher, s->index, p->publisher,
                         p->index);
        }
    for (size_t i = 0; i < l->cap; i++) {
        const struct seq_state *s = &l->slots[i];
        if (s->seq && s->dropped_at >= 0 && s->deliveries <= s->dropped_at)
            fail_msg("%s: sequence %llu, dropped unacked by its consumer, was not delivered "
                     "again", what, (unsigned long long)s->seq);
        if (s->seq && (s->publisher < 0 || s->publisher >= load->npubs || s->index < 0 ||
                       s->index >= load->pubs[s->publisher].sent))
            fail_msg("%s: sequence %llu delivers an event that was never sent (p%d-%d)", what,
                     (unsigned long long)s->seq, s->publisher, s->index);
    }
    print_message("%s: %ld events published, %ld failed publish calls retried; %ld deliveries, "
                  "%ld duplicates (%ld read after their Ack), %ld acks applied, %ld not "
                  "applied, %ld Ack calls failed (%ld events maybe acked by one), %ld "
                  "deliveries dropped unacked\n",
                  what, published, failed, l->deliveries, l->duplicates, l->stale, l->acks_ok,
                  l->not_applied, l->ack_failures, l->maybe_acked, l->dropped);
}

/* ---- Fixtures ------------------------------------------------------------------- */

struct fd_env {
    struct h_env *env; /* first: h_env's helpers take it as their state */
    struct h_cluster cluster;
};

static int setup(void **state)
{
    struct fd_env *fe = calloc(1, sizeof *fe);
    void *env_state = NULL;

    if (!fe)
        abort();
    if (h_cluster_start(&fe->cluster) != 0)
        goto fail;
    /* h_env_setup creates its database on the cluster of this variable. */
    setenv("CEBUS_TEST_DATABASE_URL", fe->cluster.url, 1);
    if (h_env_setup(&env_state) != 0)
        goto fail;
    fe->env = env_state;
    *state = fe;
    return 0;
fail:
    h_cluster_destroy(&fe->cluster);
    free(fe);
    return -1;
}

static int teardown(void **state)
{
    struct fd_env *fe = *state;
    void *env_state;
    int rc = 0;

    if (!fe) /* setup failed and said why */
        return -1;
    env_state = fe->env;

    /* The database must be up for the servers to drain and the drop. */
    if (!fe->cluster.running && h_cluster_resume(&fe->cluster) != 0)
        rc = -1;
    if (h_env_teardown(&env_state) != 0)
        rc = -1;
    h_cluster_destroy(&fe->cluster);
    free(fe);
    return rc;
}

/* Creates a rule on bus matching the load's events, with one subscription
 * target sub (ack deadline ack_deadline_s, 0: the default). Its events
 * never become dead letters here: with short deadlines, and consumers that
 * pause while a server restarts (long under valgrind), an event may be
 * leased more often than the default max_attempts allows, and these tests
 * are about what happens short of that. */
static void rule_ok(const char *addr, const struct h_tenant *t, const char *sub,
                    uint32_t ack_deadline_s)
{
    Cebus__V1__CreateRuleRequest req = CEBUS__V1__CREATE_RULE_REQUEST__INIT;
    Cebus__V1__Target target = CEBUS__V1__TARGET__INIT;
    Cebus__V1__SubscriptionTarget st = CEBUS__V1__SUBSCRIPTION_TARGET__INIT;
    Cebus__V1__Target *targets[1] = {&target};
    cebus_client *admin = cebus_client_new(addr, t->admin_key);
    Cebus__V1__Rule *r = NULL;
    cebus_error err;
    int rc;

    st.name = (char *)sub;
    st.ack_deadline_seconds = ack_deadline_s;
    st.max_attempts = 100;
    target.kind_case = CEBUS__V1__TARGET__KIND_SUBSCRIPTION;
    target.subscription = &st;
    req.bus = (char *)t->bus;
    req.name = (char *)"durable";
    req.pattern = (char *)"{\"type\":[\"faults.test\"]}";
    req.n_targets = 1;
    req.targets = targets;
    rc = cebus_create_rule(admin, &req, &r, &err);
    h_assert_status("CreateRule", rc, &err, 0, NULL);
    cebus__v1__rule__free_unpacked(r, NULL);
    cebus_client_free(admin);
}

static void three_servers(struct h_env *env, const char *addrs[3])
{
    while (env->nservers < 3)
        h_env_add_server_ok(env, NULL);
    for (int i = 0; i < 3; i++)
        addrs[i] = env->srv[i].addr;
}

/* ---- Tests ---------------------------------------------------------------------- */

static bool holds_five(void *arg)
{
    return ((struct consumer *)arg)->npending >= 5;
}

/* kill -9 of one replica, then another, while three consumers (one per
 * replica) ack and six publishers spread over the replicas are mid-batch.
 * A consumer whose stream breaks moves to the next replica; the first
 * victim's drops what it held unacked, the second's sends its acks there.
 * Every event whose PutEvents succeeded is delivered and acked, every
 * dropped delivery comes again, and nothing comes back after an Ack
 * answered OK. The ack deadline is short, so that what the dead replica
 * leased comes due within the test. */
static void test_replica_kill_9_with_durable_consumers(void **state)
{
    struct h_env *env = ((struct fd_env *)*state)->env;
    bool vg = h_under_valgrind();
    const char *addrs[3];
    const char *rotations[3][3];
    struct consumer cs[3];
    struct ledger ledger;
    struct h_load *load;
    struct progress p = {.ledger = &ledger};
    struct h_tenant t;
    const unsigned allowed = ALLOW(GRPC_STATUS_UNAVAILABLE);

    three_servers(env, addrs);
    h_tenant_create_ok(env->admin, "du-kill", "orders", &t);
    rule_ok(addrs[0], &t, "work", 3);
    ledger_init(&ledger);
    ledger.conninfo = env->db.conninfo;
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 3; k++)
            rotations[i][k] = addrs[(i + k) % 3];
        consumer_init(&cs[i], i, &ledger, rotations[i], 3, t.subscriber_key, t.bus, "work");
        /* Few enough in flight to ack them all within the deadline. */
        cs[i].max_in_flight = 100;
    }
    /* The first victim's consumer loses what it did not ack with the
     * server (those events must come again); the second's sends its acks
     * to the next replica (they apply). */
    cs[1].forget_on_end = true;
    p.load = load = h_load_start(addrs, 3, t.publisher_key, t.bus, 6, vg ? 20 : 50, 8086u,
                                 allowed);

    for (int victim = 1; victim <= 2; victim++) {
        int ends = cs[victim].ends;

        expect_more(&p, vg ? 100 : 600, vg ? 50 : 300);
        run_until(cs, 3, allowed, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                  "load before the kill");
        /* The victim's consumer holds a few deliveries unacked when its
         * server dies. */
        cs[victim].no_acks = true;
        run_until(cs, 3, allowed, holds_five, &cs[victim], h_now_ms() + PHASE_DEADLINE_MS,
                  "deliveries held for the kill");
        assert_int_equal(h_server_kill(&env->srv[victim]), 0);
        cs[victim].no_acks = false;
        /* The victim's consumer moves on; its acks of what it read there
         * go to the next replica. */
        expect_more(&p, 0, vg ? 20 : 100);
        p.failed += 1;
        run_until(cs, 3, allowed, acked_and_failed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                  "acks applied with a replica dead");
        assert_true(cs[victim].ends > ends);
        assert_int_equal(h_server_restart(&env->srv[victim], env->db.conninfo, NULL), 0);
        expect_more(&p, 1, 1);
        run_until(cs, 3, allowed, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                  "recovery after the restart");
    }
    h_load_stop(load);
    check_all_acked(load, cs, 3, allowed, "kill -9 with durable consumers");
    assert_true(ledger.dropped >= 5);
    for (int i = 0; i < 3; i++)
        consumer_free(&cs[i]);
    ledger_free(&ledger);
    h_load_free(load);
}

/* Sends Ack (nack false) or Nack of ids[0..n) through c and returns the
 * call's status. */
static int ack_or_nack(struct consumer *c, bool nack, char **ids, size_t n, cebus_error *err)
{
    if (nack) {
        Cebus__V1__NackRequest req = CEBUS__V1__NACK_REQUEST__INIT;
        Cebus__V1__NackResponse *resp = NULL;
        int rc;

        req.bus = c->bus;
        req.subscription = c->sub;
        req.n_ack_ids = n;
        req.ack_ids = ids;
        req.error = (char *)"outage";
        rc = cebus_nack(c->client, &req, &resp, err);
        if (rc == 0)
            cebus__v1__nack_response__free_unpacked(resp, NULL);
        return rc;
    } else {
        Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;
        Cebus__V1__AckResponse *resp = NULL;
        int rc;

        req.bus = c->bus;
        req.subscription = c->sub;
        req.n_ack_ids = n;
        req.ack_ids = ids;
        rc = cebus_ack(c->client, &req, &resp, err);
        if (rc == 0)
            cebus__v1__ack_response__free_unpacked(resp, NULL);
        return rc;
    }
}

static bool holds_some(void *arg)
{
    return ((struct consumer *)arg)->npending >= 2;
}

/* PostgreSQL stopped (fast, then immediate) under four publishers and two
 * durable consumers on two servers. While it is down, Acks and Nacks answer
 * UNAVAILABLE, never OK (checked on the consumers' own acks and on
 * explicit calls with deliveries held back for it); after it is back the
 * streams resume, the unanswered acks are sent again, every acknowledged
 * publish is delivered and acked, and nothing acked OK comes back. */
static void test_postgresql_stopped_under_durable_load(void **state)
{
    struct fd_env *fe = *state;
    struct h_env *env = fe->env;
    bool vg = h_under_valgrind();
    static const char *const modes[] = {"fast", "immediate"};
    const char *addrs[3];
    const char *one[2][1];
    struct consumer cs[2];
    struct ledger ledger;
    struct h_load *load;
    struct progress p = {.ledger = &ledger};
    struct h_tenant t;
    const unsigned allowed = ALLOW(GRPC_STATUS_UNAVAILABLE);

    three_servers(env, addrs);
    h_tenant_create_ok(env->admin, "du-outage", "orders", &t);
    rule_ok(addrs[0], &t, "work", 0);
    ledger_init(&ledger);
    ledger.conninfo = env->db.conninfo;
    for (int i = 0; i < 2; i++) {
        one[i][0] = addrs[i];
        consumer_init(&cs[i], i, &ledger, one[i], 1, t.subscriber_key, t.bus, "work");
        cs[i].max_in_flight = 100;
    }
    p.load = load = h_load_start(addrs, 1, t.publisher_key, t.bus, 4, vg ? 20 : 50, 6502u,
                                 allowed);

    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        char *ids[2];
        cebus_error err;
        int rc;

        expect_more(&p, vg ? 100 : 500, vg ? 50 : 300);
        run_until(cs, 2, allowed, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                  "load before the outage");
        /* Consumer 0 keeps two deliveries unacked for the explicit calls. */
        cs[0].no_acks = true;
        run_until(cs, 2, allowed, holds_some, &cs[0], h_now_ms() + PHASE_DEADLINE_MS,
                  "deliveries held for the outage");
        assert_int_equal(h_cluster_stop(&fe->cluster, modes[m]), 0);
        ledger.db_down = true;
        ids[0] = cs[0].pending[0].id;
        ids[1] = cs[0].pending[1].id;
        rc = ack_or_nack(&cs[0], false, &ids[0], 1, &err);
        h_assert_status("Ack while PostgreSQL is stopped", rc, &err, GRPC_STATUS_UNAVAILABLE,
                        NULL);
        rc = ack_or_nack(&cs[0], true, &ids[1], 1, &err);
        h_assert_status("Nack while PostgreSQL is stopped", rc, &err, GRPC_STATUS_UNAVAILABLE,
                        NULL);
        cs[0].no_acks = false;
        /* The consumers go on reading and acking (every Ack failing)
         * while the publishers see their calls fail. */
        h_load_totals(load, NULL, NULL, &p.failed);
        p.failed += 4 * load->npubs;
        run_until(cs, 2, allowed, failed_enough, &p, h_now_ms() + PHASE_DEADLINE_MS,
                  "publish calls failing during the outage");
        ledger_assert_clean(&ledger, "during the outage");
        assert_int_equal(h_cluster_resume(&fe->cluster), 0);
        ledger.db_down = false;
        expect_more(&p, 1, 1);
        run_until(cs, 2, allowed, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS,
                  "publishing and acking again after the restart");
        print_message("%s stop: %ld Ack calls failed so far; streams ended %d and %d times\n",
                      modes[m], ledger.ack_failures, cs[0].ends, cs[1].ends);
    }
    h_load_stop(load);
    check_all_acked(load, cs, 2, allowed, "PostgreSQL stopped under durable load");
    assert_true(ledger.ack_failures >= 2);
    for (int i = 0; i < 2; i++)
        consumer_free(&cs[i]);
    ledger_free(&ledger);
    h_load_free(load);
}

/* A consumer reads ten deliveries on replica A and disconnects; through
 * replica B it acks five of them (their ids still apply: nothing re-leased
 * them), then opens its stream on B: the other five come again as attempt
 * 2, then the new events; nothing acked comes back. */
static void test_consumer_moves_to_another_replica_without_gap(void **state)
{
    struct h_env *env = ((struct fd_env *)*state)->env;
    const char *addrs[3];
    struct consumer a, b;
    struct ledger ledger;
    struct h_tenant t;
    cebus_client *pub;
    uint64_t seqs[20];
    char *ids[5];
    int64_t deadline;

    three_servers(env, addrs);
    h_tenant_create_ok(env->admin, "du-move", "orders", &t);
    rule_ok(addrs[0], &t, "work", 0);
    ledger_init(&ledger);
    ledger.conninfo = env->db.conninfo;
    pub = cebus_client_new(addrs[2], t.publisher_key);
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof id, "p0-%d", i);
        seqs[i] = h_put_one_ok(pub, t.bus, id, "faults.test", NULL);
    }
    consumer_init(&a, 0, &ledger, &addrs[0], 1, t.subscriber_key, t.bus, "work");
    consumer_init(&b, 1, &ledger, &addrs[1], 1, t.subscriber_key, t.bus, "work");
    a.max_in_flight = 10;
    a.no_acks = true;
    deadline = h_now_ms() + PHASE_DEADLINE_MS;
    while (a.npending < 10) {
        consumer_step(&a, 50, 0);
        if (h_now_ms() > deadline)
            fail_msg("%zu of 10 deliveries on replica A", a.npending);
    }
    assert_null(h_next(a.stream, 300)); /* its limit: ten in flight */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(a.pending[i].seq, seqs[i]);
        assert_int_equal(a.pending[i].attempt, 1);
    }
    cebus_stream_close(a.stream);
    a.stream = NULL;

    /* Acks of ids read on A, sent through B, apply. */
    for (int i = 0; i < 5; i++)
        ids[i] = a.pending[2 * i].id;
    {
        Cebus__V1__AckRequest req = CEBUS__V1__ACK_REQUEST__INIT;
        Cebus__V1__AckResponse *resp = NULL;
        cebus_error err;
        int rc;

        req.bus = t.bus;
        req.subscription = (char *)"work";
        req.n_ack_ids = 5;
        req.ack_ids = ids;
        rc = cebus_ack(b.client, &req, &resp, &err);
        h_assert_status("Ack through replica B", rc, &err, 0, NULL);
        assert_int_equal(resp->n_not_applied, 0);
        cebus__v1__ack_response__free_unpacked(resp, NULL);
        for (int i = 0; i < 5; i++)
            ledger_acked(&ledger, a.pending[2 * i].seq, 1);
    }

    /* On B: the five unacked ones again (attempt 2), then the ten new. */
    b.no_acks = true;
    deadline = h_now_ms() + PHASE_DEADLINE_MS;
    while (b.npending < 15) {
        consumer_step(&b, 50, 0);
        ledger_assert_clean(&ledger, "moving to replica B");
        if (h_now_ms() > deadline)
            fail_msg("%zu of 15 deliveries on replica B", b.npending);
    }
    /* A's leases are released by A's server when its stream ends, which
     * may come after B's first claim: sets, not order. */
    for (size_t i = 0; i < b.npending; i++) {
        int k = 0;
        while (k < 20 && seqs[k] != b.pending[i].seq)
            k++;
        if (k == 20 || (k < 10 && k % 2 == 0))
            fail_msg("replica B delivered sequence %llu", (unsigned long long)b.pending[i].seq);
        assert_int_equal(b.pending[i].attempt, k < 10 ? 2 : 1);
        for (size_t j = 0; j < i; j++)
            assert_true(b.pending[j].seq != b.pending[i].seq);
    }
    b.no_acks = false;
    while (b.npending)
        assert_int_equal(consumer_ack(&b, 0), 0);
    ledger_assert_clean(&ledger, "acking on replica B");
    assert_int_equal(ledger.acks_ok, 20);
    assert_int_equal(ledger.not_applied, 0);
    assert_null(h_next(b.stream, 500)); /* nothing twice */
    consumer_free(&a);
    consumer_free(&b);
    ledger_free(&ledger);
    cebus_client_free(pub);
}

static bool nothing_pending(void *arg)
{
    const struct consumer *cs = arg;

    for (int i = 0; i < 6; i++)
        if (cs[i].npending)
            return false;
    return true;
}

/* Six consumers, two on each of three replicas, share one subscription
 * whose ack deadline is 2 s, while 16 publishers spread over the replicas.
 * One consumer holds each delivery 3 s before acking it, so its leases
 * run out and its events go to others. The union of the applied acks is
 * the set of published sequences; no Ack applies twice; and no event is
 * leased to a second consumer before the first lease's deadline. */
static void test_shared_subscription_on_three_replicas(void **state)
{
    struct h_env *env = ((struct fd_env *)*state)->env;
    bool vg = h_under_valgrind();
    const char *addrs[3];
    const char *one[6][1];
    struct consumer cs[6];
    struct ledger ledger;
    struct h_load *load;
    struct progress p = {.ledger = &ledger};
    struct h_tenant t;
    int busy = 0;

    three_servers(env, addrs);
    h_tenant_create_ok(env->admin, "du-share", "orders", &t);
    rule_ok(addrs[0], &t, "work", 2);
    ledger_init(&ledger);
    ledger.conninfo = env->db.conninfo;
    ledger.check_leases = true;
    for (int i = 0; i < 6; i++) {
        one[i][0] = addrs[i % 3];
        consumer_init(&cs[i], i, &ledger, one[i], 1, t.subscriber_key, t.bus, "work");
        cs[i].max_in_flight = 50;
    }
    cs[0].hold_ms = 3000;
    cs[0].max_in_flight = 10;
    p.load = load = h_load_start(addrs, 3, t.publisher_key, t.bus, 16, vg ? 10 : 20, 1234u, 0);
    expect_more(&p, vg ? 200 : 2000, vg ? 100 : 1000);
    run_until(cs, 6, 0, progressed, &p, h_now_ms() + PHASE_DEADLINE_MS, "shared load");
    h_load_stop(load);
    check_all_acked(load, cs, 6, 0, "one subscription on three replicas");
    /* The slow consumer's last acks too: an event another consumer acked
     * since must not apply again. */
    run_until(cs, 6, 0, nothing_pending, cs, h_now_ms() + PHASE_DEADLINE_MS,
              "the slow consumer's last acks");
    for (int i = 0; i < 6; i++) {
        if (cs[i].opens != 1 || cs[i].ends != 0)
            fail_msg("consumer %d: %d streams opened, %d ended (last %s)", i, cs[i].opens,
                     cs[i].ends, cebus_status_name(cs[i].last_end_code));
        busy += cs[i].got > 0;
    }
    assert_true(busy >= 2);
    print_message("slow consumer done: %ld acks did not apply (the event was leased again)\n",
                  ledger.not_applied);
    for (int i = 0; i < 6; i++)
        consumer_free(&cs[i]);
    ledger_free(&ledger);
    h_load_free(load);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consumer_moves_to_another_replica_without_gap),
        cmocka_unit_test_teardown(test_replica_kill_9_with_durable_consumers, h_load_teardown),
        cmocka_unit_test_teardown(test_shared_subscription_on_three_replicas, h_load_teardown),
        cmocka_unit_test_teardown(test_postgresql_stopped_under_durable_load, h_load_teardown),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
