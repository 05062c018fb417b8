/* Building the multi-pattern matcher (pattern.h, eb_matcher): patterns are
 * added as entries with their anchors, then eb_matcher_build() freezes them
 * into the index that matcher.c reads. Design and costs:
 * docs/decisions/0007-matcher-index.md, 0015-shared-index-state.md.
 *
 * Pure, like pattern.c: no I/O, no globals.
 */
#include "matcher_internal.h"

#include <assert.h>
#include <math.h>

#include "pattern_flat.h"
#include "pattern_internal.h"

/* ---- Building -------------------------------------------------------------- */

eb_matcher *eb_matcher_new(void)
{
    eb_matcher *m = xcalloc(1, sizeof *m);

    m->trie = eb_ftrie_new();
    grow((void **)&m->nodes, &m->capnodes, 1, sizeof *m->nodes);
    memset(&m->nodes[0], 0, sizeof m->nodes[0]);
    m->nnodes = 1;
    return m;
}

/* Gives every trie node its index slot. */
static void sync_nodes(eb_matcher *m)
{
    size_t n = eb_ftrie_size(m->trie);

    if (n <= m->nnodes)
        return;
    grow((void **)&m->nodes, &m->capnodes, n, sizeof *m->nodes);
    memset(&m->nodes[m->nnodes], 0, (n - m->nnodes) * sizeof *m->nodes);
    m->nnodes = n;
}

/* Returns the child of node parent named s[0..len), adding it if needed. */
static uint32_t child_of(eb_matcher *m, uint32_t parent, const char *s, size_t len)
{
    uint32_t idx = eb_ftrie_add(m->trie, parent, s, len);

    sync_nodes(m);
    return idx;
}

struct add_ctx {
    eb_matcher *m;
    uint32_t entry;
};

static void add_anchor(const struct eb_anchor *a, void *arg)
{
    struct add_ctx *ctx = arg;
    eb_matcher *m = ctx->m;
    uint32_t node = 0;
    struct rec *r;

    for (size_t i = 0; i < a->depth; i++)
        node = child_of(m, node, a->path[i].s, a->path[i].len);
    grow((void **)&m->recs, &m->caprecs, m->nrecs + 1, sizeof *m->recs);
    r = &m->recs[m->nrecs++];
    *r = (struct rec){ .node = node,
                       .posting = ctx->entry << GROUP_BITS | a->group,
                       .kind = a->kind,
                       .s = a->s,
                       .len = a->len,
                       .num = a->num,
                       .lo = a->lo,
                       .hi = a->hi,
                       .lo_open = a->lo_open,
                       .hi_open = a->hi_open };
    m->nodes[node].kinds |= 1u << a->kind;
}

/* Puts entry e into the table of entries by hash, growing it to at most
 * half full. */
static void seen_insert(eb_matcher *m, uint32_t e)
{
    size_t i;

    if (2 * (m->nentries + 1) > m->seenmask + 1 || m->seen == NULL) {
        size_t cap = m->seen == NULL ? 64 : 2 * (m->seenmask + 1);

        free(m->seen);
        m->seen = xcalloc(cap, sizeof *m->seen);
        m->seenmask = cap - 1;
        for (uint32_t k = 0; k < e; k++) {
            for (i = m->entries[k].hash & m->seenmask; m->seen[i] != 0; i = (i + 1) & m->seenmask)
                ;
            m->seen[i] = k + 1;
        }
    }
    for (i = m->entries[e].hash & m->seenmask; m->seen[i] != 0; i = (i + 1) & m->seenmask)
        ;
    m->seen[i] = e + 1;
}

/* Returns the entry of a pattern the same as p (hash h), or UINT32_MAX. */
static uint32_t seen_find(const eb_matcher *m, const eb_pattern *p, uint64_t h)
{
    if (m->seen == NULL)
        return UINT32_MAX;
    for (size_t i = h & m->seenmask; m->seen[i] != 0; i = (i + 1) & m->seenmask) {
        const struct entry *e = &m->entries[m->seen[i] - 1];

        if (e->hash == h && eb_pattern_same(e->p, p))
            return m->seen[i] - 1;
    }
    return UINT32_MAX;
}

void eb_matcher_add(eb_matcher *m, const eb_pattern *p, uint32_t id)
{
    struct add_ctx ctx = { m, (uint32_t)m->nentries };
    unsigned groups;
    uint64_t h;
    uint32_t same;

    assert(m != NULL && p != NULL && !m->built);
    if (m->nadded >= MAX_ENTRIES) {
        fputs("cebusd: too many patterns in one matcher\n", stderr);
        abort();
    }
    m->nadded++;
    h = eb_pattern_hash(p);
    same = seen_find(m, p, h);
    if (same != UINT32_MAX) {
        grow((void **)&m->dups, &m->capdups, m->ndups + 1, sizeof *m->dups);
        m->dups[m->ndups].entry = same;
        m->dups[m->ndups++].id = id;
        return;
    }
    grow((void **)&m->entries, &m->capentries, m->nentries + 1, sizeof *m->entries);
    grow((void **)&m->need, &m->capneed, m->nentries + 1, sizeof *m->need);
    m->entries[m->nentries++] = (struct entry){ .p = p, .id = id, .hash = h,
                                                .field_nodes = eb_pattern_paths(p, m->trie) };
    seen_insert(m, ctx.entry);
    sync_nodes(m);
    groups = eb_pattern_anchors(p, add_anchor, &ctx);
    assert(groups <= EB_ANCHOR_MAX_GROUPS && EB_ANCHOR_MAX_GROUPS <= 1u << GROUP_BITS);
    m->need[ctx.entry] = groups >= 32 ? UINT32_MAX : (1u << groups) - 1;
    {
        struct entry *e = &m->entries[ctx.entry];
        struct eb_pattern_plan plan;

        if (eb_pattern_exact(p, e->field_nodes, &plan)) {
            /* The plan's groups must be the ones just indexed. */
            e->exact = plan.ngroups == groups;
            e->check = plan.check;
            e->guards = plan.guards;
            e->nguards = plan.nguards;
            if (e->exact && groups > 0) {
                e->leaf_of_group = xcalloc(groups, 1);
                memcpy(e->leaf_of_group, plan.leaf_of_group, groups);
            }
            if (e->exact && plan.nleaves > 0) {
                e->leaves = xcalloc(plan.nleaves, sizeof *e->leaves);
                memcpy(e->leaves, plan.leaves, plan.nleaves * sizeof *e->leaves);
            }
        }
    }
    if (groups == 0) {
        grow((void **)&m->residual, &m->capresidual, m->nresidual + 1, sizeof *m->residual);
        m->residual[m->nresidual++] = ctx.entry;
    }
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;

    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->posting < y->posting ? -1 : x->posting > y->posting;
}

/* Fills maxhi[t] for the span [l, r) of ranges. */
static double build_tree(struct rtree *rt, size_t t, size_t l, size_t r)
{
    double a, b;

    if (r - l == 1)
        return rt->maxhi[t] = rt->ranges[l].hi;
    a = build_tree(rt, 2 * t, l, (l + r) / 2);
    b = build_tree(rt, 2 * t + 1, (l + r) / 2, r);
    return rt->maxhi[t] = a > b ? a : b;
}

static void rtree_add(struct rtree *rt, const struct rec *r, uint32_t also, bool alone)
{
    grow((void **)&rt->ranges, &rt->cap, rt->n + 1, sizeof *rt->ranges);
    rt->ranges[rt->n++] =
        (struct range){ r->lo, r->hi, r->posting, also, r->lo_open, r->hi_open, alone };
}

/* Sorts rt's ranges and builds its tree. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Whether rt's ranges are alike enough in width to be scanned (struct
 * rtree); sets rt->maxw when they are. */
static bool rtree_scannable(struct rtree *rt)
{
    double *w = xcalloc(rt->n, sizeof *w), median, maxw = 0;

    for (size_t i = 0; i < rt->n; i++) {
        w[i] = rt->ranges[i].hi - rt->ranges[i].lo;
        if (!isfinite(w[i])) {
            free(w);
            return false;
        }
        if (w[i] > maxw)
            maxw = w[i];
    }
    qsort(w, rt->n, sizeof *w, cmp_double);
    median = w[rt->n / 2];
    free(w);
    if (maxw > SCAN_WIDTHS * median)
        return false;
    /* lo + maxw must reach hi in floating point too, so that the scan
     * never stops before a range that holds d. */
    for (size_t i = 0; i < rt->n; i++)
        while (rt->ranges[i].lo + maxw < rt->ranges[i].hi)
            maxw = nextafter(maxw, INFINITY);
    rt->maxw = maxw;
    return true;
}

static void rtree_build(struct rtree *rt)
{
    if (rt->n == 0)
        return;
    qsort(rt->ranges, rt->n, sizeof *rt->ranges, cmp_range);
    if (rtree_scannable(rt))
        return;
    rt->maxhi = xcalloc(4 * rt->n, sizeof *rt->maxhi);
    build_tree(rt, 1, 0, rt->n);
}

static void rtree_free(struct rtree *rt)
{
    free(rt->ranges);
    free(rt->maxhi);
}

/* A group whose keys are shared by this many patterns or more is not
 * indexed when its pattern has a more selective group: visiting its
 * postings on every event would cost more than it filters (say 1,250
 * patterns that all require "datacontenttype": "application/json"). */
#define COMMON_POSTINGS 1024

/* Nor is a group with more than COMMON_RATIO times the postings of its
 * pattern's most selective group, plus COMMON_SLACK: the candidates it
 * would save are at most the few that group lets through, each a few
 * cached leaf tests, while its postings are visited in every event that
 * has its value. With the bench's patterns "id suffix X and
 * datacontenttype application/json and flags.gift true", this drops the
 * last two (512 postings each against ~1) and took 10,000 patterns from
 * ~195k to ~280k events per CPU-second; ratios of 4 and 128 were slower. */
#define COMMON_RATIO 16
#define COMMON_SLACK 16
#define DROPPED (UINT32_MAX - 1)

/* Drops the common groups of each entry (see COMMON_POSTINGS and
 * COMMON_RATIO), keeping at least its most selective one: marks their
 * records DROPPED in slot_of and clears their bits in the entry's need.
 * Groups holding a numeric range are kept: their selectivity is not known
 * here. Records of one entry are adjacent, in the order eb_matcher_add()
 * saw them. */
static void drop_common_groups(eb_matcher *m, uint32_t *slot_of)
{
    for (size_t i = 0; i < m->nrecs;) {
        uint32_t e = m->recs[i].posting >> GROUP_BITS;
        uint64_t cost[EB_ANCHOR_MAX_GROUPS] = { 0 };
        uint32_t keep = 0, best = 0;
        size_t j;

        for (j = i; j < m->nrecs && m->recs[j].posting >> GROUP_BITS == e; j++) {
            uint32_t g = m->recs[j].posting & ((1u << GROUP_BITS) - 1);

            if (slot_of[j] == UINT32_MAX)
                cost[g] = UINT64_MAX / 2; /* a range: keep */
            else if (cost[g] < UINT64_MAX / 2)
                cost[g] += m->keys[slot_of[j]].n;
        }
        for (uint32_t g = 0; g < EB_ANCHOR_MAX_GROUPS; g++) {
            if (!(m->need[e] & 1u << g))
                continue;
            if (cost[g] < cost[best] || !(m->need[e] & 1u << best))
                best = g;
        }
        for (uint32_t g = 0; g < EB_ANCHOR_MAX_GROUPS; g++) {
            if (!(m->need[e] & 1u << g))
                continue;
            if (cost[g] >= UINT64_MAX / 2 ||
                (cost[g] < COMMON_POSTINGS &&
                 cost[g] <= COMMON_RATIO * cost[best] + COMMON_SLACK))
                keep |= 1u << g;
        }
        if (keep == 0)
            keep = 1u << best;
        /* An exact pattern checks the leaves of its dropped groups alone. */
        if (m->entries[e].exact)
            for (uint32_t g = 0; g < EB_ANCHOR_MAX_GROUPS; g++)
                if ((m->need[e] & ~keep) & 1u << g)
                    m->entries[e].check |= 1u << m->entries[e].leaf_of_group[g];
        m->need[e] = keep;
        for (size_t k = i; k < j; k++)
            if (!(keep & 1u << (m->recs[k].posting & ((1u << GROUP_BITS) - 1))))
                slot_of[k] = DROPPED;
        i = j;
    }
}

/* How nest() marks records: a key a range or an inner key hangs under
 * (its posting is not kept), and the range or inner key itself. */
enum { NESTED_NO, NESTED_OUTER, NESTED_INNER };

/* Finds, per entry, the groups of its need that the event's attributes
 * alone hit (attr_need): neither under "data" or "data_base64" nor nested
 * under a key, which is only looked up once the data is read. An event
 * whose attributes leave every entry short of its attr_need matches
 * nothing, whatever its data (see eb_matcher_match_stored()). nested is
 * from nest(). */
static void find_attr_needs(eb_matcher *m, const unsigned char *nested)
{
    uint32_t dnode = eb_ftrie_find(m->trie, EB_FTRIE_ROOT, "data", 4);
    uint32_t bnode = eb_ftrie_find(m->trie, EB_FTRIE_ROOT, "data_base64", 11);

    m->attr_need = xcalloc(m->nentries, sizeof *m->attr_need);
    if (m->nentries > 0)
        memcpy(m->attr_need, m->need, m->nentries * sizeof *m->need);
    for (size_t i = 0; i < m->nrecs; i++) {
        const struct rec *r = &m->recs[i];
        uint32_t top = r->node;

        while (eb_ftrie_parent(m->trie, top) != EB_FTRIE_ROOT)
            top = eb_ftrie_parent(m->trie, top);
        if (top == dnode || top == bnode || nested[i] == NESTED_INNER)
            m->attr_need[r->posting >> GROUP_BITS] &=
                ~(1u << (r->posting & ((1u << GROUP_BITS) - 1)));
    }
    m->always_data = m->nresidual > 0;
    for (size_t e = 0; e < m->nentries; e++)
        if (m->attr_need[e] == 0)
            m->always_data = true;
}

/* Returns the sub of key kk at node, adding it. */
static uint32_t sub_at(eb_matcher *m, struct key *kk, uint32_t node)
{
    uint32_t sb = kk->sub;

    while (sb != NO_SUB && m->subs[sb].node != node)
        sb = m->subs[sb].next;
    if (sb == NO_SUB) {
        grow((void **)&m->subs, &m->capsubs, m->nsubs + 1, sizeof *m->subs);
        sb = (uint32_t)m->nsubs++;
        m->subs[sb] = (struct sub){ .node = node, .next = kk->sub };
        kk->sub = sb;
    }
    return sb;
}

/* Returns the slot of the inner key of sub sb for the exact string of r,
 * adding it (one more in *nkeys). Counts r's pair in it. */
static uint32_t inner_key(eb_matcher *m, uint32_t sb, const struct rec *r, size_t *nkeys)
{
    uint32_t node = sub_node(m, sb);
    uint64_t h = hash_final(hash_text(r->s, r->len, EB_ANCHOR_STRING), node, EB_ANCHOR_STRING);
    const struct key *found = key_find(m, h, node, EB_ANCHOR_STRING, r->s, r->len, 0);
    size_t k;

    if (found != NULL) {
        k = (size_t)(found - m->keys);
    } else {
        for (k = h & m->keymask; m->keys[k].used; k = (k + 1) & m->keymask)
            ;
        m->keys[k] = (struct key){ .hash = h, .s = r->s, .len = r->len, .node = node,
                                   .sub = NO_SUB, .pairs = 1,
                                   .kind = (unsigned char)EB_ANCHOR_STRING, .used = 1 };
        (*nkeys)++;
    }
    m->keys[k].n++;
    return (uint32_t)k;
}

/* Nests one group of an entry under another, so that the event's values
 * are looked up there only when it hits the outer key, and the outer key's
 * posting for the entry is not visited at all: a hit inside counts for
 * both groups. The outer key is the entry's one-key group with the most
 * postings (the visits saved). Inside go
 * - a group made of one numeric range: with 1,250 patterns of "type X and
 *   amount in a range" over 6 types, an event stabs the ~200 ranges of its
 *   type and visits no type posting, instead of visiting ~200 postings and
 *   stabbing all 1,250 ranges;
 * - else a group made of one exact string, the one with the most postings
 *   after the outer key ("source prefix X and country Y": the event visits
 *   the pairs of its own source and country only).
 * Marks records in nested[]; puts every range record in its node's tree
 * or its key's sub; points the slot of an inner string at its inner key,
 * with the outer posting in also_of[]. */
static void nest(eb_matcher *m, uint32_t *slot_of, unsigned char *nested, uint32_t *also_of,
                 size_t *nkeys)
{
    for (size_t i = 0; i < m->nrecs;) {
        uint32_t e = m->recs[i].posting >> GROUP_BITS;
        unsigned nrec[EB_ANCHOR_MAX_GROUPS] = { 0 };
        size_t key = SIZE_MAX, range = SIZE_MAX, inner = SIZE_MAX, j;

        for (j = i; j < m->nrecs && m->recs[j].posting >> GROUP_BITS == e; j++)
            nrec[m->recs[j].posting & ((1u << GROUP_BITS) - 1)]++;
        for (size_t k = i; k < j; k++) {
            const struct rec *r = &m->recs[k];
            uint32_t g = r->posting & ((1u << GROUP_BITS) - 1);

            if (nrec[g] != 1 || !(m->need[e] & 1u << g))
                continue;
            if (r->kind == EB_ANCHOR_RANGE) {
                if (range == SIZE_MAX)
                    range = k;
            } else if (slot_of[k] < DROPPED &&
                       (key == SIZE_MAX || m->keys[slot_of[k]].n > m->keys[slot_of[key]].n)) {
                key = k;
            }
        }
        for (size_t k = i; k < j && range == SIZE_MAX && key != SIZE_MAX; k++) {
            const struct rec *r = &m->recs[k];
            uint32_t g = r->posting & ((1u << GROUP_BITS) - 1);

            if (k == key || nrec[g] != 1 || !(m->need[e] & 1u << g) ||
                r->kind != EB_ANCHOR_STRING || slot_of[k] >= DROPPED)
                continue;
            if (inner == SIZE_MAX || m->keys[slot_of[k]].n > m->keys[slot_of[inner]].n)
                inner = k;
        }
        for (size_t k = i; k < j; k++) {
            const struct rec *r = &m->recs[k];

            if (r->kind != EB_ANCHOR_RANGE)
                continue;
            if (k == range && key != SIZE_MAX) {
                uint32_t sb = sub_at(m, &m->keys[slot_of[key]], r->node);

                nested[k] = NESTED_INNER;
                rtree_add(&m->subs[sb].t, r, m->recs[key].posting,
                          m->need[e] == (1u << (r->posting & ((1u << GROUP_BITS) - 1)) |
                                         1u << (m->recs[key].posting & ((1u << GROUP_BITS) - 1))));
                m->nodes[r->node].keep_numbers = true;
                nested[key] = NESTED_OUTER;
            } else {
                rtree_add(&m->nodes[r->node].ranges, r, NO_POSTING, false);
            }
        }
        if (inner != SIZE_MAX) {
            const struct rec *r = &m->recs[inner];
            uint32_t sb = sub_at(m, &m->keys[slot_of[key]], r->node);

            m->subs[sb].keys = true;
            slot_of[inner] = inner_key(m, sb, r, nkeys);
            also_of[inner] = m->recs[key].posting;
            m->nodes[r->node].keep_strings = true;
            nested[inner] = NESTED_INNER;
            nested[key] = NESTED_OUTER;
        }
        i = j;
    }
}

/* Returns the test of leaf at trie node node, adding it when no pattern
 * added so far has the same one. table maps hashes to tests + 1 (0: empty);
 * tmask + 1, its capacity, is at least twice the number of tests. */
static uint32_t test_of_leaf(eb_matcher *m, uint32_t *table, size_t tmask,
                             const struct field *leaf, uint32_t node)
{
    uint64_t h = eb_pattern_leaf_hash(leaf) ^ ((uint64_t)node * 0x9e3779b97f4a7c15ULL);
    size_t i = h & tmask, depth = 0;
    struct ltest *t;

    for (; table[i] != 0; i = (i + 1) & tmask) {
        t = &m->tests[table[i] - 1];
        if (t->hash == h && m->test_paths[t->path + t->depth - 1] == node &&
            eb_pattern_leaf_same(t->leaf, leaf))
            return table[i] - 1;
    }
    for (uint32_t n = node; n != EB_FTRIE_ROOT; n = eb_ftrie_parent(m->trie, n))
        depth++;
    grow((void **)&m->test_paths, &m->cappaths, m->npaths + depth, sizeof *m->test_paths);
    for (uint32_t n = node, k = 0; n != EB_FTRIE_ROOT; n = eb_ftrie_parent(m->trie, n), k++)
        m->test_paths[m->npaths + depth - 1 - k] = n;
    grow((void **)&m->tests, &m->captests, m->ntests + 1, sizeof *m->tests);
    m->tests[m->ntests] = (struct ltest){ leaf, (uint32_t)m->npaths, (uint32_t)depth, h };
    m->npaths += depth;
    table[i] = (uint32_t)++m->ntests;
    return (uint32_t)(m->ntests - 1);
}

/* Gives every entry its further ids, from m->dups. */
static void add_more_ids(eb_matcher *m)
{
    uint32_t off = 0;

    for (size_t i = 0; i < m->ndups; i++)
        m->entries[m->dups[i].entry].nmore++;
    for (size_t i = 0; i < m->nentries; i++) {
        if (m->entries[i].nmore == 0) {
            m->entries[i].more = NO_MORE;
            continue;
        }
        m->entries[i].more = off;
        off += 1 + m->entries[i].nmore;
        m->entries[i].nmore = 0;
    }
    m->more = xcalloc(off, sizeof *m->more);
    for (size_t i = 0; i < m->ndups; i++) {
        struct entry *e = &m->entries[m->dups[i].entry];

        m->more[e->more + 1 + e->nmore++] = m->dups[i].id;
        m->more[e->more] = e->nmore;
    }
    free(m->dups);
    m->dups = NULL;
    free(m->seen);
    m->seen = NULL;
}

/* Gives every exact entry the tests of the leaves it checks. */
static void add_tests(eb_matcher *m)
{
    size_t cap = 16, nchecks = 0;
    uint32_t *table;

    for (size_t i = 0; i < m->nentries; i++)
        if (m->entries[i].exact)
            nchecks += (size_t)__builtin_popcount(m->entries[i].check);
    while (cap < 2 * nchecks)
        cap *= 2;
    table = xcalloc(cap, sizeof *table);
    for (size_t i = 0; i < m->nentries; i++) {
        struct entry *e = &m->entries[i];

        if (!e->exact)
            continue;
        e->tests = (uint32_t)m->ntest_of;
        for (uint32_t l = 0; l < 32; l++) {
            if (!(e->check & 1u << l))
                continue;
            grow((void **)&m->test_of, &m->captest_of, m->ntest_of + 1, sizeof *m->test_of);
            m->test_of[m->ntest_of++] =
                test_of_leaf(m, table, cap - 1, e->leaves[l], e->field_nodes[e->leaves[l]->index]);
            e->ntests++;
        }
    }
    free(table);
}

/* Moves the keys that lead anywhere into a table sized for them: the one
 * built was sized for every record, and most records share keys or were
 * left out of the index, so probes would miss the cache for nothing. */
static void compact_keys(eb_matcher *m, size_t nkeys)
{
    size_t cap = 16;
    struct key *keys;

    while (cap < 2 * nkeys)
        cap *= 2;
    keys = xcalloc(cap, sizeof *keys);
    for (size_t i = 0; i <= m->keymask; i++) {
        const struct key *k = &m->keys[i];
        size_t j;

        if (!k->used || (k->n == 0 && k->sub == NO_SUB))
            continue;
        for (j = k->hash & (cap - 1); keys[j].used; j = (j + 1) & (cap - 1))
            ;
        keys[j] = *k;
    }
    free(m->keys);
    m->keys = keys;
    m->keymask = cap - 1;
}

/* Fills m->hot from the entries. */
static void make_hot(eb_matcher *m)
{
    size_t bytes = (m->nentries * sizeof *m->hot + 63) / 64 * 64;

    m->hot = aligned_alloc(64, bytes != 0 ? bytes : 64);
    if (m->hot == NULL) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    memset(m->hot, 0, bytes);
    for (size_t i = 0; i < m->nentries; i++) {
        const struct entry *e = &m->entries[i];
        struct hot *h = &m->hot[i];

        h->id = e->id;
        h->more = e->more;
        h->exact = e->exact;
        assert(e->nguards <= UINT16_MAX && e->ntests <= UINT16_MAX);
        h->nguards = (uint16_t)e->nguards;
        h->ntests = (uint16_t)e->ntests;
        for (size_t g = 0; g < e->nguards && g < HOT_GUARDS; g++)
            h->guard[g] = e->guards[g];
        for (size_t t = 0; t < e->ntests && t < HOT_TESTS; t++)
            h->test[t] = m->test_of[e->tests + t];
    }
}

void eb_matcher_build(eb_matcher *m)
{
    size_t cap = 16, nkeys = 0;
    uint32_t *slot_of, *also_of;
    unsigned char *nested;
    uint32_t total = 0;

    assert(m != NULL && !m->built);
    m->built = true;
    /* Room for every record's key, and as many inner keys (nest()). */
    while (cap < m->nrecs * 4)
        cap *= 2;
    m->keys = xcalloc(cap, sizeof *m->keys);
    m->keymask = cap - 1;
    slot_of = xcalloc(m->nrecs, sizeof *slot_of);
    nested = xcalloc(m->nrecs, sizeof *nested);
    also_of = xcalloc(m->nrecs, sizeof *also_of);

    /* Keys first, counting postings; then offsets; then the postings. */
    for (size_t i = 0; i < m->nrecs; i++) {
        const struct rec *r = &m->recs[i];
        uint64_t h;
        size_t k;
        int affix;

        if (r->kind == EB_ANCHOR_RANGE) {
            slot_of[i] = UINT32_MAX;
            continue;
        }
        affix = affix_of(r->kind);
        if (affix >= 0) {
            struct pnode *p = &m->nodes[r->node];
            grow((void **)&p->lens[affix], &p->caplens[affix], p->nlens[affix] + 1,
                 sizeof(size_t));
            p->lens[affix][p->nlens[affix]++] = r->len;
        }
        h = kind_text(r->kind) ? hash_text(r->s, r->len, r->kind)
            : r->kind == EB_ANCHOR_NUMBER ? hash_number(r->num)
                                          : FNV_OFFSET;
        h = hash_final(h, r->node, r->kind);
        const struct key *found = key_find(m, h, r->node, r->kind, r->s, r->len, r->num);
        if (found != NULL) {
            k = (size_t)(found - m->keys);
        } else {
            for (k = h & m->keymask; m->keys[k].used; k = (k + 1) & m->keymask)
                ;
            m->keys[k] = (struct key){ .hash = h, .s = r->s, .len = r->len,
                                       .num = r->num == 0 ? 0 : r->num, .node = r->node,
                                       .sub = NO_SUB,
                                       .kind = (unsigned char)r->kind, .used = 1 };
            nkeys++;
        }
        m->keys[k].n++;
        slot_of[i] = (uint32_t)k;
    }
    assert(nkeys <= cap / 4 + 1);
    drop_common_groups(m, slot_of);
    nest(m, slot_of, nested, also_of, &nkeys);
    find_attr_needs(m, nested);
    for (size_t k = 0; k < cap; k++) {
        m->keys[k].off = total;
        total += m->keys[k].pairs ? 2 * m->keys[k].n : m->keys[k].n;
        m->keys[k].n = 0;
    }
    m->postings = xcalloc(total, sizeof *m->postings);
    for (size_t i = 0; i < m->nrecs; i++) {
        struct key *k;

        if (slot_of[i] == UINT32_MAX || slot_of[i] == DROPPED || nested[i] == NESTED_OUTER)
            continue;
        k = &m->keys[slot_of[i]];
        if (k->pairs) {
            m->postings[k->off + 2 * k->n] = m->recs[i].posting;
            m->postings[k->off + 2 * k->n + 1] = also_of[i];
            k->n++;
        } else {
            m->postings[k->off + k->n++] = m->recs[i].posting;
        }
    }
    free(slot_of);
    free(nested);
    free(also_of);
    add_tests(m);
    add_more_ids(m);
    for (size_t i = 0; i < m->nentries; i++) {
        free(m->entries[i].leaf_of_group);
        m->entries[i].leaf_of_group = NULL;
        free(m->entries[i].leaves);
        m->entries[i].leaves = NULL;
    }
    free(m->recs);
    m->recs = NULL;
    compact_keys(m, nkeys);
    make_hot(m);
    m->nrecs = m->caprecs = 0;

    for (size_t i = 0; i < m->nnodes; i++) {
        struct pnode *p = &m->nodes[i];

        for (int a = 0; a < AFFIXES; a++) {
            size_t n = 0;

            if (p->nlens[a] == 0)
                continue;
            qsort(p->lens[a], p->nlens[a], sizeof(size_t), cmp_size);
            for (size_t j = 0; j < p->nlens[a]; j++)
                if (n == 0 || p->lens[a][n - 1] != p->lens[a][j])
                    p->lens[a][n++] = p->lens[a][j];
            p->nlens[a] = n;
        }
        rtree_build(&p->ranges);
    }
    for (size_t i = 0; i < m->nsubs; i++)
        rtree_build(&m->subs[i].t);
}

size_t eb_matcher_size(const eb_matcher *m)
{
    return m->nadded;
}

void eb_matcher_free(eb_matcher *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nnodes; i++) {
        struct pnode *p = &m->nodes[i];

        for (int a = 0; a < AFFIXES; a++)
            free(p->lens[a]);
        rtree_free(&p->ranges);
    }
    free(m->nodes);
    for (size_t i = 0; i < m->nsubs; i++)
        rtree_free(&m->subs[i].t);
    free(m->subs);
    for (size_t i = 0; i < m->nentries; i++) {
        free(m->entries[i].field_nodes);
        free(m->entries[i].guards);
        free(m->entries[i].leaf_of_group);
        free(m->entries[i].leaves);
    }
    free(m->entries);
    free(m->need);
    free(m->attr_need);
    free(m->seen);
    free(m->dups);
    free(m->more);
    free(m->hot);
    free(m->tests);
    free(m->test_paths);
    free(m->test_of);
    free(m->recs);
    free(m->residual);
    free(m->keys);
    free(m->postings);
    eb_ftrie_free(m->trie);
    free(m);
}

eb_matcher_scratch *eb_matcher_scratch_new(const eb_matcher *m)
{
    eb_matcher_scratch *sc = xcalloc(1, sizeof *sc);

    assert(m != NULL && m->built);
    sc->m = m;
    sc->hits = xcalloc(m->nentries, sizeof *sc->hits);
    sc->test_stamp = xcalloc(m->ntests, sizeof *sc->test_stamp);
    sc->test_val = xcalloc(m->ntests, sizeof *sc->test_val);
    sc->cand = xcalloc(m->nentries, sizeof *sc->cand);
    sc->out = xcalloc(m->nadded, sizeof *sc->out);
    sc->sub_stamp = xcalloc(m->nsubs, sizeof *sc->sub_stamp);
    sc->active = xcalloc(m->nsubs, sizeof *sc->active);
    sc->flat = eb_flat_new();
    sc->crossed = xcalloc(m->nnodes, sizeof *sc->crossed);
    return sc;
}

void eb_matcher_scratch_free(eb_matcher_scratch *sc)
{
    if (sc == NULL)
        return;
    free(sc->hits);
    free(sc->test_stamp);
    free(sc->test_val);
    free(sc->cand);
    free(sc->out);
    free(sc->sub_stamp);
    free(sc->active);
    free(sc->nums);
    free(sc->strs);
    eb_flat_free(sc->flat);
    free(sc->crossed);
    free(sc);
}
