/* What moves a durable subscription's events by hand: EventBus.Seek, and
 * the Admin service's dead letters (ListDeadLetters, RedriveDeadLetters,
 * PurgeDeadLetters). See docs/decisions/0014-durable-subscriptions.md and
 * docs/dead-letters.md.
 *
 * Seek takes the role of Subscribe on the subscription (a subscriber or
 * an admin of the bus's tenant, or a grantee holding SUBSCRIBE); the dead
 * letters are managed like rules (an admin of the bus's tenant, or of a
 * tenant holding MANAGE_RULES on it, or the platform admin). */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cebus/v1/admin.pb-c.h"
#include "cebus/v1/eventbus.pb-c.h"
#include "cloudevents.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "log.h"
#include "rpc.h"
#include "store_durable.h"
#include "util.h"

/* Sequences a Redrive or Purge request may name. */
#define MAX_SEQUENCES 1000

static const char *const reason_names[] = {"", "max_attempts", "max_age"};

/* Resolves the bus and the subscription of a request: the caller's role
 * must be in roles and, for another tenant's bus, its tenant must hold one
 * of perms on it. A subscription that does not exist is NOT_FOUND naming
 * the bus as the caller wrote it. Fails the call and returns false on
 * error. */
static bool sub_of_request(struct eb_rpc *rpc, unsigned roles, unsigned perms, const char *what,
                           const char *busref, const char *name, struct eb_bus_rec *bus,
                           struct eb_sub_rec *sub)
{
    eb_status st = eb_auth_require(&rpc->who, roles, what, rpc->err, sizeof rpc->err);

    if (!st)
        st = eb_auth_resolve_bus_granted(rpc->app->auth, rpc->db, &rpc->who, busref, perms, bus,
                                         NULL, rpc->err, sizeof rpc->err);
    if (st) {
        eb_rpc_fail(rpc, st, "%s", rpc->err);
        return false;
    }
    if (!name[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "subscription: required");
        return false;
    }
    if (!eb_name_valid(name)) {
        eb_rpc_fail(rpc, EB_EINVAL, "subscription: not a valid name");
        return false;
    }
    st = eb_store_sub_get(rpc->db, bus->id, name, sub);
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "subscription: no subscription \"%s\" on bus \"%s\"", name, busref);
        return false;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "subscription");
        return false;
    }
    return true;
}

/* --- Seek --------------------------------------------------------------- */

/* Reads the target of a Seek request into *to, *seq and *time_us. Fails
 * the call and returns false when it is missing or out of range. */
static bool seek_target(struct eb_rpc *rpc, const Cebus__V1__SeekRequest *req,
                        enum eb_seek_to *to, int64_t *seq, int64_t *time_us)
{
    switch (req->position) {
    case CEBUS__V1__START_POSITION__START_POSITION_LATEST:
        *to = EB_SEEK_LATEST;
        return true;
    case CEBUS__V1__START_POSITION__START_POSITION_EARLIEST:
        *to = EB_SEEK_EARLIEST;
        return true;
    case CEBUS__V1__START_POSITION__START_POSITION_SEQUENCE:
        if (req->sequence == 0 || req->sequence > INT64_MAX) {
            eb_rpc_fail(rpc, EB_EINVAL,
                        "sequence: required with START_POSITION_SEQUENCE; sequences start at 1");
            return false;
        }
        *to = EB_SEEK_SEQUENCE;
        *seq = (int64_t)req->sequence;
        return true;
    case CEBUS__V1__START_POSITION__START_POSITION_TIME:
        if (!req->time || req->time->seconds < 0 || req->time->nanos < 0 ||
            req->time->nanos > 999999999) {
            eb_rpc_fail(rpc, EB_EINVAL, "time: required with START_POSITION_TIME, after 1970");
            return false;
        }
        if (req->time->seconds > 253402300799) { /* 9999-12-31 */
            eb_rpc_fail(rpc, EB_EINVAL, "time: out of range");
            return false;
        }
        *to = EB_SEEK_TIME;
        *time_us = req->time->seconds * 1000000 + req->time->nanos / 1000;
        return true;
    case CEBUS__V1__START_POSITION__START_POSITION_UNSPECIFIED:
        eb_rpc_fail(rpc, EB_EINVAL,
                    "position: required; one of START_POSITION_LATEST, START_POSITION_EARLIEST, "
                    "START_POSITION_SEQUENCE, START_POSITION_TIME");
        return false;
    default:
        eb_rpc_fail(rpc, EB_EINVAL, "position: unknown start position %d", (int)req->position);
        return false;
    }
}

void eb_rpc_seek(struct eb_rpc *rpc)
{
    Cebus__V1__SeekRequest *req;
    Cebus__V1__SeekResponse resp = CEBUS__V1__SEEK_RESPONSE__INIT;
    struct eb_bus_rec bus;
    struct eb_sub_rec sub;
    enum eb_seek_to to = EB_SEEK_LATEST;
    int64_t seq = 0, time_us = 0, next = 0, oldest = 0;
    eb_status st;

    req = cebus__v1__seek_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid SeekRequest message");
        return;
    }
    if (!sub_of_request(rpc, EB_ADMINS | EB_ROLES(EB_ROLE_SUBSCRIBER),
                        EB_PERMS(EB_PERMISSION_SUBSCRIBE), "seek subscriptions", req->bus,
                        req->subscription, &bus, &sub))
        goto out;
    if (!seek_target(rpc, req, &to, &seq, &time_us))
        goto out;
    st = eb_store_sub_seek(rpc->db, sub.id, to, seq, time_us, 0, &next, &oldest);
    if (st == EB_ERANGE) {
        eb_rpc_fail(rpc, st,
                    "sequence: %" PRId64 " is past the bus's retention; the oldest retained "
                    "sequence is %" PRId64,
                    seq, oldest);
        goto out;
    }
    if (st == EB_ENOTFOUND) {
        eb_rpc_fail(rpc, st, "subscription: no subscription \"%s\" on bus \"%s\"",
                    req->subscription, req->bus);
        goto out;
    }
    if (st) {
        eb_rpc_fail_store(rpc, st, "subscription");
        goto out;
    }
    eb_log_info("msg=\"subscription seek\" tenant=%s bus=%s subscription=%s next=%" PRId64
                " by=%s",
                bus.tenant, bus.name, req->subscription, next, rpc->who.key_prefix);
    resp.next_sequence = (uint64_t)next;
    eb_rpc_reply(rpc, &resp.base);
out:
    cebus__v1__seek_request__free_unpacked(req, NULL);
}

/* --- Dead letters --------------------------------------------------------- */

/* Dead letters are managed like the rules that made them. */
static bool dead_sub(struct eb_rpc *rpc, const char *what, const char *busref, const char *name,
                     struct eb_bus_rec *bus, struct eb_sub_rec *sub)
{
    return sub_of_request(rpc, EB_ADMINS, EB_PERMS(EB_PERMISSION_MANAGE_RULES), what, busref,
                          name, bus, sub);
}

/* Page tokens of ListDeadLetters: the hex of the last sequence answered,
 * in decimal. Returns false when token is not one. */
static bool dead_token_decode(const char *token, int64_t *after)
{
    size_t n = strlen(token);
    char digits[24];
    int64_t v = 0;

    *after = 0;
    if (n == 0)
        return true;
    if (n % 2 || n / 2 >= sizeof digits)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned c;
        if (sscanf(token + 2 * i, "%2x", &c) != 1 || c < '0' || c > '9')
            return false;
        digits[i] = (char)c;
    }
    digits[n / 2] = '\0';
    for (size_t i = 0; digits[i]; i++) {
        if (v > (INT64_MAX - (digits[i] - '0')) / 10)
            return false;
        v = v * 10 + (digits[i] - '0');
    }
    if (v < 1)
        return false;
    *after = v;
    return true;
}

static void dead_token_encode(int64_t seq, char *token, size_t size)
{
    char digits[24];
    size_t n = 0;

    snprintf(digits, sizeof digits, "%" PRId64, seq);
    for (const char *p = digits; *p && n + 3 <= size; p++)
        n += (size_t)snprintf(token + n, size - n, "%02x", (unsigned char)*p);
    token[n] = '\0';
}

void eb_rpc_list_dead_letters(struct eb_rpc *rpc)
{
    Cebus__V1__ListDeadLettersRequest *req;
    Cebus__V1__ListDeadLettersResponse resp = CEBUS__V1__LIST_DEAD_LETTERS_RESPONSE__INIT;
    Cebus__V1__DeadLetter *msgs = NULL, **ptrs = NULL;
    Google__Protobuf__Timestamp *times = NULL;
    struct eb_dead_rec *recs = NULL;
    struct eb_bus_rec bus;
    struct eb_sub_rec sub;
    size_t n = 0, shown, bytes = 0;
    int64_t after;
    int limit;
    char token[48] = "";
    eb_status st;

    req = cebus__v1__list_dead_letters_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid ListDeadLettersRequest message");
        return;
    }
    if (!dead_sub(rpc, "list dead letters", req->bus, req->subscription, &bus, &sub))
        goto out;
    if (!dead_token_decode(req->page_token, &after)) {
        eb_rpc_fail(rpc, EB_EINVAL, "page_token: not a token from a previous ListDeadLetters");
        goto out;
    }
    limit = req->page_size == 0            ? EB_PAGE_DEFAULT
            : req->page_size > EB_PAGE_MAX ? EB_PAGE_MAX
                                           : (int)req->page_size;
    st = eb_store_dead_list(rpc->db, sub.id, after, limit + 1, &recs, &n);
    if (st) {
        eb_rpc_fail_store(rpc, st, "dead letters");
        goto out;
    }
    shown = n > (size_t)limit ? (size_t)limit : n;
    msgs = eb_calloc(shown ? shown : 1, sizeof *msgs);
    ptrs = eb_calloc(shown ? shown : 1, sizeof *ptrs);
    times = eb_calloc(shown ? shown : 1, sizeof *times);
    for (size_t i = 0; i < shown; i++) {
        Cebus__V1__DeadLetter *m = &msgs[i];
        cebus__v1__dead_letter__init(m);
        m->bus = req->bus;
        m->subscription = req->subscription;
        m->sequence = (uint64_t)recs[i].seq;
        m->reason = (char *)reason_names[recs[i].reason == EB_DEAD_MAX_AGE ? 2 : 1];
        m->last_error = recs[i].last_error ? recs[i].last_error : "";
        m->attempts = (uint32_t)recs[i].attempts;
        eb_rpc_timestamp(&times[i], recs[i].created_us);
        m->create_time = &times[i];
        /* The stored event as delivered; none once it expired. */
        if (recs[i].body)
            m->event = io__cloudevents__v1__cloud_event__unpack(NULL, recs[i].body_len,
                                                                recs[i].body);
        bytes += recs[i].body_len;
        ptrs[i] = m;
    }
    /* More remain when the store had one past the page, or stopped at its
     * byte limit. */
    if (shown > 0 && (n > shown || bytes >= EB_DEAD_PAGE_BYTES))
        dead_token_encode(recs[shown - 1].seq, token, sizeof token);
    resp.n_dead_letters = shown;
    resp.dead_letters = ptrs;
    resp.next_page_token = token;
    eb_rpc_reply(rpc, &resp.base);
    for (size_t i = 0; i < shown; i++)
        if (msgs[i].event)
            io__cloudevents__v1__cloud_event__free_unpacked(msgs[i].event, NULL);
    free(msgs);
    free(ptrs);
    free(times);
    eb_dead_recs_free(recs, n);
out:
    cebus__v1__list_dead_letters_request__free_unpacked(req, NULL);
}

/* Reads the selection of a Redrive or Purge request into *f (f->seqs is a
 * new array: free() it). Fails the call and returns false when it is bad. */
static bool dead_filter(struct eb_rpc *rpc, const uint64_t *seqs, size_t nseqs,
                        const char *reason, struct eb_dead_filter *f)
{
    int64_t *v;

    memset(f, 0, sizeof *f);
    if (nseqs > MAX_SEQUENCES) {
        eb_rpc_fail(rpc, EB_EINVAL, "sequences: at most %d", MAX_SEQUENCES);
        return false;
    }
    for (size_t i = 0; i < nseqs; i++)
        if (seqs[i] == 0 || seqs[i] > INT64_MAX) {
            eb_rpc_fail(rpc, EB_EINVAL, "sequences[%zu]: not a sequence (they start at 1)", i);
            return false;
        }
    if (strcmp(reason, "max_attempts") == 0) {
        f->reason = EB_DEAD_MAX_ATTEMPTS;
    } else if (strcmp(reason, "max_age") == 0) {
        f->reason = EB_DEAD_MAX_AGE;
    } else if (reason[0]) {
        eb_rpc_fail(rpc, EB_EINVAL, "reason: \"max_attempts\", \"max_age\" or empty (any)");
        return false;
    }
    v = eb_calloc(nseqs ? nseqs : 1, sizeof *v);
    for (size_t i = 0; i < nseqs; i++)
        v[i] = (int64_t)seqs[i];
    f->seqs = v;
    f->nseqs = nseqs;
    return true;
}

/* What Redrive and Purge do to the selected dead letters of a subscription. */
struct dead_op {
    const char *what;   /* for the permission message */
    const char *logged; /* the log line's msg */
    eb_status (*apply)(eb_db *db, int64_t sub_id, const struct eb_dead_filter *f,
                       int64_t *count);
};

static const struct dead_op redrive_op = {"redrive dead letters", "dead letters redriven",
                                          eb_store_dead_redrive};
static const struct dead_op purge_op = {"purge dead letters", "dead letters purged",
                                        eb_store_dead_purge};

/* Applies op to the dead letters the request fields select. Returns true
 * with *count set, or false after answering the call with the error. */
static bool dead_apply(struct eb_rpc *rpc, const struct dead_op *op, const char *bus_ref,
                       const char *subscription, const uint64_t *seqs, size_t nseqs,
                       const char *reason, int64_t *count)
{
    struct eb_dead_filter f = {0};
    struct eb_bus_rec bus;
    struct eb_sub_rec sub;
    bool ok = false;
    eb_status st;

    if (!dead_sub(rpc, op->what, bus_ref, subscription, &bus, &sub) ||
        !dead_filter(rpc, seqs, nseqs, reason, &f))
        goto out;
    st = op->apply(rpc->db, sub.id, &f, count);
    if (st) {
        eb_rpc_fail_store(rpc, st, "dead letters");
        goto out;
    }
    eb_log_info("msg=\"%s\" tenant=%s bus=%s subscription=%s count=%" PRId64 " by=%s",
                op->logged, bus.tenant, bus.name, subscription, *count, rpc->who.key_prefix);
    ok = true;
out:
    free((void *)f.seqs);
    return ok;
}

void eb_rpc_redrive_dead_letters(struct eb_rpc *rpc)
{
    Cebus__V1__RedriveDeadLettersRequest *req;
    Cebus__V1__RedriveDeadLettersResponse resp = CEBUS__V1__REDRIVE_DEAD_LETTERS_RESPONSE__INIT;
    int64_t count = 0;

    req = cebus__v1__redrive_dead_letters_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid RedriveDeadLettersRequest message");
        return;
    }
    if (dead_apply(rpc, &redrive_op, req->bus, req->subscription, req->sequences,
                   req->n_sequences, req->reason, &count)) {
        resp.count = (uint64_t)count;
        eb_rpc_reply(rpc, &resp.base);
    }
    cebus__v1__redrive_dead_letters_request__free_unpacked(req, NULL);
}

void eb_rpc_purge_dead_letters(struct eb_rpc *rpc)
{
    Cebus__V1__PurgeDeadLettersRequest *req;
    Cebus__V1__PurgeDeadLettersResponse resp = CEBUS__V1__PURGE_DEAD_LETTERS_RESPONSE__INIT;
    int64_t count = 0;

    req = cebus__v1__purge_dead_letters_request__unpack(NULL, rpc->req_len, rpc->req);
    if (!req) {
        eb_rpc_fail(rpc, EB_EINVAL, "request: not a valid PurgeDeadLettersRequest message");
        return;
    }
    if (dead_apply(rpc, &purge_op, req->bus, req->subscription, req->sequences,
                   req->n_sequences, req->reason, &count)) {
        resp.count = (uint64_t)count;
        eb_rpc_reply(rpc, &resp.base);
    }
    cebus__v1__purge_dead_letters_request__free_unpacked(req, NULL);
}
