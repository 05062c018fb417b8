/* The multi-pattern matcher: an index over the anchors of many compiled
 * patterns (pattern_anchor.h), so that an event is evaluated in full only
 * against the patterns it could match. This file matches events against a
 * built index (matcher_build.c builds it). Design and costs:
 * docs/decisions/0007-matcher-index.md, 0012-flattened-matching.md,
 * 0015-shared-index-state.md and 0016-key-chains.md.
 *
 * Pure, like pattern.c: no I/O, no globals.
 */
#include "matcher_internal.h"

#include <assert.h>

#include "pattern_flat.h"
#include "pattern_internal.h"

/* ---- Matching -------------------------------------------------------------- */

/* Candidates whose records are prefetched ahead of the one being decided. */
#define PREFETCH 4

struct match_ctx {
    const eb_matcher *m;
    eb_matcher_scratch *sc;
    size_t ncand;
    size_t nout;   /* ids in sc->out */
    size_t nlater; /* entries in sc->later */
    bool probe; /* looking at the attributes alone (attrs_matter()) ... */
    bool alive; /* ... and some entry could still match */
    bool guarded; /* the event has an array at some entry's guard */
};

/* Records that the event hits one anchor group of an entry; the entry
 * becomes a candidate when its last group is hit, once per event. */
static inline void take_posting(struct match_ctx *c, uint32_t posting)
{
    eb_matcher_scratch *sc = c->sc;
    uint32_t e = posting >> GROUP_BITS, need = c->m->need[e], old;
    struct hits *h = &sc->hits[e];

    if (h->stamp != sc->gen) {
        h->stamp = sc->gen;
        h->mask = 0;
    }
    old = h->mask;
    h->mask = old | 1u << posting_group(posting);
    if (h->mask == need && old != need) {
        if (e < c->m->ndecided)
            sc->out[c->nout++] = c->m->ids[e];
        else if (e < c->m->nunguarded)
            sc->later[c->nlater++] = e;
        else
            sc->cand[c->ncand++] = e;
    }
    if (c->probe && (h->mask & c->m->attr_need[e]) == c->m->attr_need[e])
        c->alive = true;
}

/* Whether the value v being looked up satisfies check t, evaluated once
 * per value. */
static bool check(struct match_ctx *c, uint32_t t, const struct eb_scalar *v)
{
    eb_matcher_scratch *sc = c->sc;

    if (sc->check_stamp[t] != sc->value) {
        sc->check_stamp[t] = sc->value;
        sc->check_val[t] = eb_pattern_cond_match(c->m->checks[t], v);
    }
    return sc->check_val[t];
}

/* Takes the postings of key k (NULL: not in the index), which the value v
 * hit, and marks what hangs under it for run_subs(). */
static void take(struct match_ctx *c, const struct key *k, const struct eb_scalar *v)
{
    eb_matcher_scratch *sc = c->sc;
    const uint32_t *pv;

    if (k == NULL)
        return;
    pv = &c->m->postings[k->off];
    for (uint32_t i = 0; i < k->n; i++)
        take_posting(c, pv[i]);
    pv += k->n;
    for (uint32_t i = 0; i < k->nv; i++)
        if (check(c, pv[2 * i + 1], v))
            take_posting(c, pv[2 * i]);
    /* What hangs under a key may complete its entries once the data's
     * values are in. */
    if (k->sub != NO_SUB && c->probe)
        c->alive = true;
    for (uint32_t sb = k->sub; sb != NO_SUB; sb = c->m->subs[sb].next) {
        if (sc->sub_stamp[sb] != sc->gen) {
            sc->sub_stamp[sb] = sc->gen;
            sc->active[sc->nactive++] = sb;
        }
    }
}

/* Looks up the key (at, kind, s/len or num), whose running hash is h, in
 * index p, and takes it when it is there. */
static void lookup(struct match_ctx *c, const struct pnode *p, uint32_t at,
                   enum eb_anchor_kind kind, uint64_t h, const char *s, size_t len, double num,
                   const struct eb_scalar *v)
{
    h = hash_final(h, at, kind);
    if (p->filter & key_bit(h))
        take(c, key_find(c->m, h, at, kind, s, len, num), v);
}

/* Every affix length of the index's affix kind that fits in the string is
 * looked up, hashing the string once from its start (prefixes) or its end
 * (suffixes): the cost grows with the number of distinct lengths, never
 * with the number of patterns. at: the index's place in the key table. */
static void lookup_affixes(struct match_ctx *c, const struct pnode *p, uint32_t at,
                           enum eb_anchor_kind kind, const struct eb_scalar *v)
{
    const char *s = v->s;
    size_t len = v->len;
    int a = affix_of(kind);
    const size_t *lens = p->lens[a];
    size_t n = p->nlens[a], j = 0, done = 0;
    bool ci = kind_ci(kind), suffix = kind_suffix(kind);
    uint64_t h = FNV_OFFSET;

    for (; j < n && lens[j] <= len; j++) {
        for (; done < lens[j]; done++) {
            unsigned char ch = (unsigned char)s[suffix ? len - 1 - done : done];
            h = fnv_step(h, ci ? fold(ch) : ch);
        }
        lookup(c, p, at, kind, h, suffix ? s + len - lens[j] : s, lens[j], 0, v);
    }
}

/* Reports rg, which a search that treats bounds as closed found to hold d. */
static void hit_range(struct match_ctx *c, const struct range *rg, double d)
{
    /* The searches treat bounds as closed; open ones are decided here, so
     * that a range hit is exact. */
    if ((rg->lo_open && !(d > rg->lo)) || (rg->hi_open && !(d < rg->hi)))
        return;
    take_posting(c, rg->posting);
}

/* Reports every range of rt holding d among ranges[l, r) below tree node
 * t, visiting only spans whose highest upper bound reaches d. */
static void stab_span(struct match_ctx *c, const struct rtree *rt, size_t t, size_t l, size_t r,
                      size_t upto, double d)
{
    if (l >= upto || rt->maxhi[t] < d)
        return;
    if (r - l == 1) {
        hit_range(c, &rt->ranges[l], d);
        return;
    }
    stab_span(c, rt, 2 * t, l, (l + r) / 2, upto, d);
    stab_span(c, rt, 2 * t + 1, (l + r) / 2, r, upto, d);
}

/* Reports every range of rt that holds d. */
static void stab(struct match_ctx *c, const struct rtree *rt, double d)
{
    size_t lo = 0, hi = rt->n;

    if (rt->n == 0)
        return;
    /* upto: the number of ranges whose lower bound is <= d. */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rt->ranges[mid].lo <= d)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (rt->maxhi != NULL) {
        stab_span(c, rt, 1, 0, rt->n, lo, d);
        return;
    }
    while (lo-- > 0 && rt->ranges[lo].lo + rt->maxw >= d)
        if (rt->ranges[lo].hi >= d)
            hit_range(c, &rt->ranges[lo], d);
}

/* Whether the value v satisfies the anchor of listed key k (the key a
 * hashed lookup of v would find). */
static bool key_holds(const struct key *k, const struct eb_scalar *v)
{
    enum eb_anchor_kind kind = (enum eb_anchor_kind)(k->at & ((1u << KEY_KIND_BITS) - 1));
    bool str = v->kind == EB_SCALAR_STRING;

    switch (kind) {
    case EB_ANCHOR_EXISTS:
        return true;
    case EB_ANCHOR_STRING:
    case EB_ANCHOR_CI:
        return str && v->len == k->len && text_equal(v->s, k->v.s, k->len, kind_ci(kind));
    case EB_ANCHOR_PREFIX:
    case EB_ANCHOR_PREFIX_CI:
        return str && v->len >= k->len && text_equal(v->s, k->v.s, k->len, kind_ci(kind));
    case EB_ANCHOR_SUFFIX:
    case EB_ANCHOR_SUFFIX_CI:
        return str && v->len >= k->len &&
               text_equal(v->s + v->len - k->len, k->v.s, k->len, kind_ci(kind));
    case EB_ANCHOR_NUMBER:
        return v->kind == EB_SCALAR_NUMBER && v->num == k->v.num;
    case EB_ANCHOR_TRUE:
        return v->kind == EB_SCALAR_TRUE;
    case EB_ANCHOR_FALSE:
        return v->kind == EB_SCALAR_FALSE;
    case EB_ANCHOR_NULL:
        return v->kind == EB_SCALAR_NULL;
    case EB_ANCHOR_RANGE:
        break;
    }
    return false;
}

/* Looks the leaf value v up in the index p, whose keys are under at in the
 * key table (a trie node, or sub_node() of a sub), or in its list. */
static void lookup_in(struct match_ctx *c, const struct pnode *p, uint32_t at,
                      const struct eb_scalar *v)
{
    unsigned kinds = p->kinds;

    if (++c->sc->value == 0) {
        /* The count wrapped: forget the checks' results. */
        memset(c->sc->check_stamp, 0, c->m->nchecks * sizeof *c->sc->check_stamp);
        c->sc->value = 1;
    }
    for (uint32_t i = 0; i < p->nchecked; i++) {
        const struct key *k = &c->m->ckeys[p->cfirst + i];

        if (check(c, k->len, v))
            take(c, k, v);
    }
    if (p->listed) {
        const struct key *k = &c->m->lkeys[p->lfirst];

        for (uint32_t i = 0; i < p->nlist; i++)
            if (key_holds(&k[i], v))
                take(c, &k[i], v);
        if (v->kind == EB_SCALAR_NUMBER)
            stab(c, &p->ranges, v->num);
        return;
    }
    /* Every leaf value, null included, satisfies "exists": true. */
    if (kinds & (1u << EB_ANCHOR_EXISTS))
        lookup(c, p, at, EB_ANCHOR_EXISTS, FNV_OFFSET, NULL, 0, 0, v);
    switch (v->kind) {
    case EB_SCALAR_STRING:
        if (kinds & (1u << EB_ANCHOR_STRING))
            lookup(c, p, at, EB_ANCHOR_STRING, hash_text(v->s, v->len, EB_ANCHOR_STRING), v->s,
                   v->len, 0, v);
        if (kinds & (1u << EB_ANCHOR_CI))
            lookup(c, p, at, EB_ANCHOR_CI, hash_text(v->s, v->len, EB_ANCHOR_CI), v->s, v->len, 0,
                   v);
        for (enum eb_anchor_kind k = EB_ANCHOR_PREFIX; k <= EB_ANCHOR_SUFFIX_CI; k++)
            if (kinds & (1u << k))
                lookup_affixes(c, p, at, k, v);
        break;
    case EB_SCALAR_NUMBER:
        if (kinds & (1u << EB_ANCHOR_NUMBER))
            lookup(c, p, at, EB_ANCHOR_NUMBER, hash_number(v->num), NULL, 0,
                   v->num == 0 ? 0 : v->num, v);
        stab(c, &p->ranges, v->num);
        break;
    case EB_SCALAR_TRUE:
        if (kinds & (1u << EB_ANCHOR_TRUE))
            lookup(c, p, at, EB_ANCHOR_TRUE, FNV_OFFSET, NULL, 0, 0, v);
        break;
    case EB_SCALAR_FALSE:
        if (kinds & (1u << EB_ANCHOR_FALSE))
            lookup(c, p, at, EB_ANCHOR_FALSE, FNV_OFFSET, NULL, 0, 0, v);
        break;
    case EB_SCALAR_NULL:
        if (kinds & (1u << EB_ANCHOR_NULL))
            lookup(c, p, at, EB_ANCHOR_NULL, FNV_OFFSET, NULL, 0, 0, v);
        break;
    }
}

/* A leaf value of the event at trie node node: looked up in the node's
 * index, and kept for the subs at that node. */
static void lookup_scalar(struct match_ctx *c, uint32_t node, const struct eb_scalar *v)
{
    const struct pnode *p = &c->m->nodes[node];

    if (p->keep) {
        eb_matcher_scratch *sc = c->sc;

        grow((void **)&sc->vals, &sc->capvals, sc->nvals + 1, sizeof *sc->vals);
        sc->vals[sc->nvals] = (struct val_at){ *v, sc->val_stamp[node] == sc->gen
                                                       ? sc->val_head[node]
                                                       : UINT32_MAX };
        sc->val_stamp[node] = sc->gen;
        sc->val_head[node] = (uint32_t)sc->nvals++;
    }
    lookup_in(c, p, node, v);
}

/* Once the event's values are all looked up: looks the values at each
 * active sub's node up in its index, which may activate further subs (the
 * next field of a chain), until none is left. A sub is active once per
 * event. */
static void run_subs(struct match_ctx *c)
{
    const eb_matcher_scratch *sc = c->sc;

    for (size_t i = 0; i < sc->nactive; i++) {
        uint32_t sb = sc->active[i];
        const struct sub *sub = &c->m->subs[sb];

        if (sc->val_stamp[sub->node] != sc->gen)
            continue;
        for (uint32_t v = sc->val_head[sub->node]; v != UINT32_MAX; v = sc->vals[v].next)
            lookup_in(c, &sub->ix, sub_node(c->m, sb), &sc->vals[v].v);
    }
}

/* The leaf values of v: v itself or, for arrays, their elements flattened,
 * as eb_pattern_match() sees them. */
static void visit_leaves(struct match_ctx *c, uint32_t node, const json_t *v, int depth)
{
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;

        if (depth >= ARRAY_FLATTEN_DEPTH)
            return;
        json_array_foreach(v, i, e)
            visit_leaves(c, node, e, depth + 1);
    } else if (!json_is_object(v)) {
        struct eb_scalar s = eb_scalar_of_json(v);
        lookup_scalar(c, node, &s);
    }
}

static void visit(struct match_ctx *c, uint32_t node, const json_t *v);

/* Walks into v below node: an object's members that some path names, or
 * each object element of an array (as nested patterns match them). */
static void descend(struct match_ctx *c, uint32_t node, const json_t *v)
{
    size_t nchildren;
    const uint32_t *children = eb_ftrie_children(c->m->trie, node, &nchildren);

    if (json_is_object(v)) {
        for (size_t i = 0; i < nchildren; i++) {
            size_t len;
            const char *name = eb_ftrie_name(c->m->trie, children[i], &len);
            const json_t *cv = json_object_getn(v, name, len);

            if (cv != NULL)
                visit(c, children[i], cv);
        }
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *e;

        json_array_foreach(v, i, e)
            if (json_is_object(e))
                descend(c, node, e);
    }
}

static void visit(struct match_ctx *c, uint32_t node, const json_t *v)
{
    const struct pnode *p = &c->m->nodes[node];
    size_t nchildren;

    eb_ftrie_children(c->m->trie, node, &nchildren);
    if (p->kinds != 0 || p->keep || p->nchecked != 0)
        visit_leaves(c, node, v, 0);
    if (nchildren > 0)
        descend(c, node, v);
}

/* Writes the ids of the entry whose hot part is h, which matched, at
 * out[n..]; returns the new number of ids in out. */
static inline size_t put_ids(const eb_matcher *m, const struct hot *h, uint32_t *out, size_t n)
{
    out[n++] = h->id;
    if (h->more != NO_MORE) {
        uint32_t k = m->more[h->more];

        memcpy(&out[n], &m->more[h->more + 1], k * sizeof *out);
        n += k;
    }
    return n;
}

/* Starts matching one event: a new generation of stamps. */
static void begin(const eb_matcher *m, eb_matcher_scratch *sc)
{
    sc->nactive = 0;
    sc->nvals = 0;
    if (++sc->gen == 0) {
        /* The stamps wrapped: forget them all, once in 2^32 events. */
        memset(sc->hits, 0, m->nentries * sizeof *sc->hits);
        memset(sc->test_stamp, 0, m->ntests * sizeof *sc->test_stamp);
        memset(sc->crossed, 0, m->nnodes * sizeof *sc->crossed);
        memset(sc->sub_stamp, 0, m->nsubs * sizeof *sc->sub_stamp);
        memset(sc->val_stamp, 0, m->nnodes * sizeof *sc->val_stamp);
        sc->gen = 1;
    }
}

size_t eb_matcher_match(const eb_matcher *m, const json_t *event, eb_matcher_scratch *sc,
                        const uint32_t **ids)
{
    struct match_ctx c = { .m = m, .sc = sc };
    size_t nout;

    assert(m != NULL && m->built && sc != NULL && sc->m == m && ids != NULL);
    begin(m, sc);
    if (json_is_object(event))
        descend(&c, 0, event);
    run_subs(&c);
    /* This walk does not note arrays at guards: those entries are decided
     * in full. */
    for (size_t i = 0; i < c.nlater; i++)
        sc->cand[c.ncand++] = sc->later[i];
    for (size_t i = 0; i < m->nresidual; i++)
        sc->cand[c.ncand++] = m->residual[i];
    nout = c.nout;
    for (size_t i = 0; i < c.ncand; i++) {
        const struct entry *e = &m->entries[sc->cand[i]];

        if (eb_pattern_match(e->p, event))
            nout = put_ids(m, &m->hot[sc->cand[i]], sc->out, nout);
    }
    *ids = sc->out;
    return nout;
}

/* ---- Matching a flattened event ------------------------------------------------ */

static const struct eb_fval *fkid(const eb_flat *f, const struct eb_fval *v, size_t i)
{
    return &f->vals[f->kids[v->first + i]];
}

/* As visit_leaves(), over the flattened event. */
static void flat_leaves(struct match_ctx *c, const eb_flat *f, uint32_t node,
                        const struct eb_fval *v, int depth)
{
    struct eb_scalar s;

    if (v->kind == EB_FV_ARRAY) {
        if (depth >= ARRAY_FLATTEN_DEPTH)
            return;
        for (size_t i = 0; i < v->n; i++)
            flat_leaves(c, f, node, fkid(f, v, i), depth + 1);
        return;
    }
    if (v->kind == EB_FV_OBJECT)
        return;
    s = eb_scalar_of_flat(v);
    lookup_scalar(c, node, &s);
}

static void flat_visit(struct match_ctx *c, const eb_flat *f, const struct eb_fval *v);

/* As descend(): an object's members (the flattened event keeps only those on
 * the trie), or each object element of an array. */
static void flat_descend(struct match_ctx *c, const eb_flat *f, const struct eb_fval *v)
{
    if (v->kind == EB_FV_OBJECT) {
        for (size_t i = 0; i < v->n; i++)
            flat_visit(c, f, fkid(f, v, i));
    } else if (v->kind == EB_FV_ARRAY) {
        c->sc->crossed[v->node] = c->sc->gen;
        c->guarded |= c->m->nodes[v->node].guard;
        for (size_t i = 0; i < v->n; i++) {
            const struct eb_fval *e = fkid(f, v, i);

            if (e->kind == EB_FV_OBJECT)
                flat_descend(c, f, e);
        }
    }
}

/* As visit(): v is the value of a member, at its trie node. */
static void flat_visit(struct match_ctx *c, const eb_flat *f, const struct eb_fval *v)
{
    const struct pnode *p = &c->m->nodes[v->node];

    if (p->kinds != 0 || p->keep || p->nchecked != 0)
        flat_leaves(c, f, v->node, v, 0);
    flat_descend(c, f, v);
}

/* Returns the result of leaf test t on the event in sc->flat, as
 * eb_pattern_test_leaf() gives it, computing it once per event. */
static int test_leaf(const eb_matcher *m, eb_matcher_scratch *sc, uint32_t t)
{
    if (sc->test_stamp[t] != sc->gen) {
        const struct ltest *lt = &m->tests[t];

        sc->test_val[t] = (signed char)eb_pattern_test_leaf(lt->leaf, &m->test_paths[lt->path],
                                                            lt->depth, sc->flat);
        sc->test_stamp[t] = sc->gen;
    }
    return sc->test_val[t];
}

/* Matches the event just flattened into sc->flat. */
static size_t match_flattened(const eb_matcher *m, eb_matcher_scratch *sc, const uint32_t **ids)
{
    struct match_ctx c = { .m = m, .sc = sc };
    const eb_flat *f = sc->flat;
    size_t nout;

    if (f->vals[0].kind == EB_FV_OBJECT)
        flat_descend(&c, f, &f->vals[0]);
    run_subs(&c);
    /* With no array at any guard, the entries that wait for that are
     * matches; otherwise they are candidates like the rest. */
    for (size_t i = 0; i < c.nlater; i++) {
        if (c.guarded)
            sc->cand[c.ncand++] = sc->later[i];
        else
            sc->out[c.nout++] = m->ids[sc->later[i]];
    }
    for (size_t i = 0; i < m->nresidual; i++)
        sc->cand[c.ncand++] = m->residual[i];
    nout = c.nout;
    for (size_t i = 0; i < c.ncand; i++) {
        const struct hot *h = &m->hot[sc->cand[i]];
        const struct entry *e;

        /* Candidates are scattered over the entries: ask for the next
         * ones' records while this one is decided. */
        if (i + PREFETCH < c.ncand)
            __builtin_prefetch(&m->hot[sc->cand[i + PREFETCH]]);

        if (h->exact) {
            /* Without an array at any guard, every entry's guards pass. */
            size_t g = c.guarded ? 0 : h->nguards;

            e = h->nguards > HOT_GUARDS || h->ntests > HOT_TESTS ? &m->entries[sc->cand[i]]
                                                                  : NULL;
            while (g < h->nguards &&
                   sc->crossed[g < HOT_GUARDS ? h->guard[g] : e->guards[g]] != sc->gen)
                g++;
            if (g == h->nguards) {
                /* Every indexed leaf was hit and no array can split the
                 * fields of a nested object: the index has decided, once
                 * the leaves left out of it are checked. */
                int r = 1;

                for (uint32_t t = 0; t < h->ntests && r == 1; t++)
                    r = test_leaf(m, sc,
                                  t < HOT_TESTS ? h->test[t] : m->test_of[e->tests + t]);
                if (r == 1)
                    nout = put_ids(m, h, sc->out, nout);
                if (r >= 0)
                    continue;
            }
        }
        e = &m->entries[sc->cand[i]];
        if (eb_pattern_match_flat(e->p, e->field_nodes, f))
            nout = put_ids(m, h, sc->out, nout);
    }
    *ids = sc->out;
    return nout;
}

size_t eb_matcher_match_event(const eb_matcher *m, const Io__Cloudevents__V1__CloudEvent *ev,
                              eb_matcher_scratch *sc, const uint32_t **ids)
{
    assert(m != NULL && m->built && sc != NULL && sc->m == m && ev != NULL && ids != NULL);
    begin(m, sc);
    eb_flatten_event(sc->flat, m->trie, ev);
    return match_flattened(m, sc, ids);
}

bool eb_matcher_match_view(const eb_matcher *m, const char *json, size_t len,
                           eb_matcher_scratch *sc, const uint32_t **ids, size_t *n)
{
    assert(m != NULL && m->built && sc != NULL && sc->m == m && ids != NULL && n != NULL);
    begin(m, sc);
    if (!eb_flatten_json(sc->flat, m->trie, json, len))
        return false;
    *n = match_flattened(m, sc, ids);
    return true;
}

/* Looks at the attributes of the event in sc->flat, flattened without its
 * data: returns whether some entry gets every group of its attr_need, so
 * that the data can change the result. */
static bool attrs_matter(const eb_matcher *m, eb_matcher_scratch *sc)
{
    struct match_ctx c = { .m = m, .sc = sc, .probe = true };
    const eb_flat *f = sc->flat;

    if (f->vals[0].kind == EB_FV_OBJECT)
        flat_descend(&c, f, &f->vals[0]);
    return c.alive;
}

bool eb_matcher_match_stored(const eb_matcher *m, const uint8_t *body, size_t len,
                             eb_matcher_scratch *sc, const uint32_t **ids, size_t *n)
{
    assert(m != NULL && m->built && sc != NULL && sc->m == m && ids != NULL && n != NULL);
    if (!m->always_data) {
        /* Every pattern needs something of the attributes: when the
         * attributes alone rule them all out, the data (most of the
         * event, and all of its JSON scan) is never read. */
        begin(m, sc);
        if (eb_flatten_stored_attrs(sc->flat, m->trie, body, len) == EB_FLAT_OK &&
            !attrs_matter(m, sc)) {
            *ids = sc->out;
            *n = 0;
            return true;
        }
    }
    begin(m, sc);
    if (eb_flatten_stored(sc->flat, m->trie, body, len) != EB_FLAT_OK) {
        /* Encodings the direct reader leaves to protobuf-c. */
        Io__Cloudevents__V1__CloudEvent *ev =
            io__cloudevents__v1__cloud_event__unpack(NULL, len, body);

        if (ev == NULL)
            return false;
        eb_flatten_event(sc->flat, m->trie, ev);
        *n = match_flattened(m, sc, ids);
        io__cloudevents__v1__cloud_event__free_unpacked(ev, NULL);
        return true;
    }
    *n = match_flattened(m, sc, ids);
    return true;
}
