/* Building the multi-pattern matcher (pattern.h, eb_matcher): patterns are
 * added as entries with their anchors, then eb_matcher_build() freezes them
 * into the index that matcher.c reads. Design and costs:
 * docs/decisions/0007-matcher-index.md, 0015-shared-index-state.md,
 * 0016-key-chains.md.
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
                       .hi_open = a->hi_open,
                       .verify = a->verify };
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

static void rtree_add(struct rtree *rt, const struct rec *r, uint32_t posting)
{
    grow((void **)&rt->ranges, &rt->cap, rt->n + 1, sizeof *rt->ranges);
    rt->ranges[rt->n++] = (struct range){ r->lo, r->hi, posting, r->lo_open, r->hi_open };
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

/* What a record becomes in the index: a key or range of its trie node
 * with the entry's posting (unless its group is dropped), the first key of
 * a chain (a key of its trie node, with no posting of the entry), or a
 * later step of a chain (under subs). See chain(). */
enum { ROLE_POSTING, ROLE_HEAD, ROLE_INNER };

/* A group whose keys are shared by this many patterns or more is not
 * indexed when its pattern has a more selective group: visiting its
 * postings on every event would cost more than it filters (say 1,250
 * patterns that all require "datacontenttype": "application/json"). */
#define COMMON_POSTINGS 1024

/* Nor is a group with more than COMMON_RATIO times the postings of its
 * pattern's most selective group, plus COMMON_SLACK: the candidates it
 * would save are at most the few that group lets through, each a few
 * cached leaf tests, while its postings are visited in every event that
 * has its value. Ratios of 4 and 128 were slower with the bench's
 * patterns. Groups in a chain are not postings and are kept. */
#define COMMON_RATIO 16
#define COMMON_SLACK 16
#define DROPPED (UINT32_MAX - 1)

/* Drops the common groups of each entry (see COMMON_POSTINGS and
 * COMMON_RATIO), keeping at least its most selective one: marks their
 * records DROPPED in slot_of and clears their bits in the entry's need.
 * Groups holding a numeric range are kept: their selectivity is not known
 * here; so is a chain. Records of one entry are adjacent, in the order
 * eb_matcher_add() saw them. */
static void drop_common_groups(eb_matcher *m, uint32_t *slot_of, const unsigned char *role)
{
    for (size_t i = 0; i < m->nrecs;) {
        uint32_t e = m->recs[i].posting >> GROUP_BITS;
        uint64_t cost[EB_ANCHOR_MAX_GROUPS] = { 0 };
        uint32_t keep = 0, best = 0;
        size_t j;

        for (j = i; j < m->nrecs && m->recs[j].posting >> GROUP_BITS == e; j++) {
            uint32_t g = posting_group(m->recs[j].posting);

            if (slot_of[j] == UINT32_MAX || role[j] != ROLE_POSTING)
                cost[g] = UINT64_MAX / 2; /* a range or a chain: keep */
            else if (cost[g] < UINT64_MAX / 2)
                cost[g] += m->bkeys[slot_of[j]].k.n;
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
            if (!(keep & 1u << posting_group(m->recs[k].posting)))
                slot_of[k] = DROPPED;
        i = j;
    }
}

/* Finds, per entry, the groups of its need that the event's attributes
 * alone hit (attr_need): not under "data" or "data_base64". A chain counts
 * by its first key: when the event hits a key that something hangs under,
 * the probe gives up (see take() in matcher.c). An event whose attributes
 * leave every entry short of its attr_need matches nothing, whatever its
 * data (see eb_matcher_match_stored()). */
static void find_attr_needs(eb_matcher *m, const unsigned char *role)
{
    uint32_t dnode = eb_ftrie_find(m->trie, EB_FTRIE_ROOT, "data", 4);
    uint32_t bnode = eb_ftrie_find(m->trie, EB_FTRIE_ROOT, "data_base64", 11);

    m->attr_need = xcalloc(m->nentries, sizeof *m->attr_need);
    if (m->nentries > 0)
        memcpy(m->attr_need, m->need, m->nentries * sizeof *m->need);
    for (size_t i = 0; i < m->nrecs; i++) {
        const struct rec *r = &m->recs[i];
        uint32_t top = r->node;

        if (role[i] == ROLE_INNER)
            continue;
        while (eb_ftrie_parent(m->trie, top) != EB_FTRIE_ROOT)
            top = eb_ftrie_parent(m->trie, top);
        if (top == dnode || top == bnode)
            m->attr_need[r->posting >> GROUP_BITS] &=
                ~(1u << posting_group(r->posting));
    }
    m->always_data = m->nresidual > 0;
    for (size_t e = 0; e < m->nentries; e++)
        if (m->attr_need[e] == 0)
            m->always_data = true;
}

/* ---- Keys while building ----------------------------------------------------- */

/* Builds m->kidx for the first m->nkeys keys, at most half full. */
static void kidx_rebuild(eb_matcher *m)
{
    size_t cap = 64;

    while (cap < 2 * (m->nkeys + 1))
        cap *= 2;
    free(m->kidx);
    m->kidx = xcalloc(cap, sizeof *m->kidx);
    m->kidxmask = cap - 1;
    for (size_t k = 0; k < m->nkeys; k++) {
        size_t i = m->bkeys[k].hash & m->kidxmask;

        while (m->kidx[i] != 0)
            i = (i + 1) & m->kidxmask;
        m->kidx[i] = (uint32_t)k + 1;
    }
}

/* Returns the index in m->bkeys of the key of r's kind and value at at (a
 * trie node, or sub_node() of a sub), adding it when add; else
 * UINT32_MAX when there is none. key_get() adds. */
static uint32_t key_lookup(eb_matcher *m, uint32_t at, const struct rec *r, bool add)
{
    double num = r->kind == EB_ANCHOR_NUMBER && r->num != 0 ? r->num : 0;
    enum eb_anchor_kind kind = r->kind;
    uint64_t h = hash_final(kind_text(kind)              ? hash_text(r->s, r->len, kind)
                            : kind == EB_ANCHOR_NUMBER ? hash_number(num)
                            : (int)kind == KEY_CHECKED ? FNV_OFFSET ^ r->len * FNV_PRIME
                                                       : FNV_OFFSET,
                            at, kind);
    size_t i;

    for (i = h & m->kidxmask; m->kidx[i] != 0; i = (i + 1) & m->kidxmask) {
        const struct bkey *b = &m->bkeys[m->kidx[i] - 1];

        if (b->hash == h && key_is(&b->k, at, kind, r->s, r->len, num))
            return m->kidx[i] - 1;
    }
    if (!add)
        return UINT32_MAX;
    /* Pattern texts are far shorter than 4 GiB; trie nodes and subs far
     * fewer than 2^28 (both are bounded by the patterns' sizes). */
    assert(r->len <= UINT32_MAX && at < 1u << (32 - KEY_KIND_BITS));
    grow((void **)&m->bkeys, &m->capkeys, m->nkeys + 1, sizeof *m->bkeys);
    m->bkeys[m->nkeys] = (struct bkey){ .hash = h };
    if (kind == EB_ANCHOR_NUMBER)
        m->bkeys[m->nkeys].k.v.num = num;
    else
        m->bkeys[m->nkeys].k.v.s = r->s;
    m->bkeys[m->nkeys].k.len = (uint32_t)r->len;
    m->bkeys[m->nkeys].k.at = at << KEY_KIND_BITS | (uint32_t)kind;
    m->bkeys[m->nkeys].k.sub = NO_SUB;
    m->kidx[i] = (uint32_t)++m->nkeys;
    if (2 * (m->nkeys + 1) > m->kidxmask + 1)
        kidx_rebuild(m);
    return (uint32_t)m->nkeys - 1;
}

static uint32_t key_get(eb_matcher *m, uint32_t at, const struct rec *r)
{
    return key_lookup(m, at, r, true);
}

/* The index (trie node, or sub_node() of a sub) at at. */
static struct pnode *index_at(eb_matcher *m, uint32_t at)
{
    return at < m->nnodes ? &m->nodes[at] : &m->subs[at - m->nnodes].ix;
}

/* Returns the index in m->bkeys of the checked key of check at at,
 * adding it; UINT32_MAX when it is new and its index already has
 * CHECKED_KEYS of them. */
static uint32_t checked_key(eb_matcher *m, uint32_t at, uint32_t check)
{
    struct rec r = { .kind = (enum eb_anchor_kind)KEY_CHECKED, .len = check };
    struct pnode *ix = index_at(m, at);
    uint32_t key = key_lookup(m, at, &r, false);

    if (key != UINT32_MAX || ix->nchecked >= CHECKED_KEYS)
        return key;
    ix->nchecked++;
    return key_get(m, at, &r);
}

/* Records that index ix has a key of r's kind (and, for affixes, length). */
static void index_key(struct pnode *ix, const struct rec *r)
{
    int a = affix_of(r->kind);

    ix->kinds |= 1u << r->kind;
    if (a >= 0) {
        grow((void **)&ix->lens[a], &ix->caplens[a], ix->nlens[a] + 1, sizeof(size_t));
        ix->lens[a][ix->nlens[a]++] = r->len;
    }
}

/* Returns the sub of key at trie node node, adding it. */
static uint32_t sub_at(eb_matcher *m, uint32_t key, uint32_t node)
{
    uint32_t sb = m->bkeys[key].k.sub;

    while (sb != NO_SUB && m->subs[sb].node != node)
        sb = m->subs[sb].next;
    if (sb == NO_SUB) {
        grow((void **)&m->subs, &m->capsubs, m->nsubs + 1, sizeof *m->subs);
        sb = (uint32_t)m->nsubs++;
        m->subs[sb] = (struct sub){ .node = node, .next = m->bkeys[key].k.sub };
        m->bkeys[key].k.sub = sb;
        m->bkeys[key].nsubs++;
        m->nodes[node].keep = true;
    }
    return sb;
}

/* The postings of the keys, as (key, posting, check) with NO_CHECK for a
 * posting that a hit decides. */
struct plist {
    struct { uint32_t key, posting, check; } *v;
    size_t n, cap;
};
#define NO_CHECK UINT32_MAX

static void plist_add(struct plist *pl, uint32_t key, uint32_t posting, uint32_t check)
{
    grow((void **)&pl->v, &pl->cap, pl->n + 1, sizeof *pl->v);
    pl->v[pl->n].key = key;
    pl->v[pl->n].posting = posting;
    pl->v[pl->n++].check = check;
}

/* Returns the check of condition c, adding it unless a condition the same
 * is there. m->ctable maps hashes to checks + 1 (0: empty); its capacity is
 * more than twice the number of records. */
static uint32_t check_of(eb_matcher *m, const struct cond *c)
{
    uint64_t h = eb_pattern_cond_hash(c);
    size_t i = h & m->ctmask;

    for (; m->ctable[i] != 0; i = (i + 1) & m->ctmask)
        if (eb_pattern_cond_same(m->checks[m->ctable[i] - 1], c))
            return m->ctable[i] - 1;
    grow((void **)&m->checks, &m->capchecks, m->nchecks + 1, sizeof *m->checks);
    m->checks[m->nchecks] = c;
    m->ctable[i] = (uint32_t)++m->nchecks;
    return (uint32_t)m->nchecks - 1;
}

/* ---- Chains ---------------------------------------------------------------- */

/* A chain's alternatives, multiplied over its steps, stay under this: a
 * step with k values copies what follows it under each (an IN-list of 3
 * then an IN-list of 4 is 12 paths). */
#define CHAIN_PATHS 16

/* A key has at most this many subs (paths hanging under it), so that an
 * event hitting it activates a bounded number of them. */
#define KEY_SUBS 32

/* One required group of an entry, as a candidate step of its chain. */
struct step {
    uint32_t g;
    unsigned nrec;
    uint64_t cost; /* postings its keys would have at their nodes */
    uint32_t node; /* of its first record */
    bool range;    /* has a numeric range: only the last step */
    bool verified; /* has a record with a check: not a step, unless checked */
    bool checked;  /* one "exists" record with a check: a step of checked keys */
};

/* Single values first (they copy nothing that follows), then fewer values;
 * among those the most shared first, so that the patterns of one shape
 * share their first keys; then by path and group, for a stable order. */
static int cmp_step(const void *a, const void *b)
{
    const struct step *x = a, *y = b;

    if (x->nrec != y->nrec)
        return x->nrec < y->nrec ? -1 : 1;
    if (x->cost != y->cost)
        return x->cost > y->cost ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

/* Whether every key of front can take subs at the nodes of the records of
 * group g among recs[i, j) without passing KEY_SUBS. */
static bool subs_fit(const eb_matcher *m, const uint32_t *front, size_t nf, size_t i, size_t j,
                     uint32_t g)
{
    for (size_t f = 0; f < nf; f++) {
        unsigned more = 0;

        for (size_t k = i; k < j; k++) {
            const struct rec *r = &m->recs[k];
            uint32_t sb = m->bkeys[front[f]].k.sub;
            bool counted = false;

            if (posting_group(r->posting) != g)
                continue;
            while (sb != NO_SUB && m->subs[sb].node != r->node)
                sb = m->subs[sb].next;
            for (size_t q = i; q < k && !counted; q++)
                counted = posting_group(m->recs[q].posting) == g &&
                          m->recs[q].node == r->node;
            if (sb == NO_SUB && !counted)
                more++;
        }
        if (m->bkeys[front[f]].nsubs + more > KEY_SUBS)
            return false;
    }
    return true;
}

/* Whether under every key of front, the sub at the path of group g's
 * record (its only one, a checked step) can take its checked key. */
static bool checked_fit(eb_matcher *m, const uint32_t *front, size_t nf, size_t i, size_t j,
                        uint32_t g)
{
    for (size_t k = i; k < j; k++) {
        const struct rec *r = &m->recs[k];
        struct rec c = { .kind = (enum eb_anchor_kind)KEY_CHECKED };

        if (posting_group(r->posting) != g)
            continue;
        c.len = check_of(m, r->verify);
        for (size_t f = 0; f < nf; f++) {
            uint32_t sb = m->bkeys[front[f]].k.sub;

            while (sb != NO_SUB && m->subs[sb].node != r->node)
                sb = m->subs[sb].next;
            if (sb != NO_SUB && m->subs[sb].ix.nchecked >= CHECKED_KEYS &&
                key_lookup(m, sub_node(m, sb), &c, false) == UINT32_MAX)
                return false;
        }
    }
    return true;
}

/* Chains the required groups of the entry whose records are recs[i, j):
 * its first group's keys stay keys of their trie nodes, without the
 * entry's posting; under each, a sub at the path of the next group holds
 * that group's keys, and so on; the last group's keys (or ranges) carry
 * the entry's posting, for the first group's bit, which now stands for all
 * of them. The event then visits the postings of the patterns that have
 * its values in every chained field, instead of those of every field
 * apart: patterns that share their first values share their first keys
 * and subs (one state per field and value, as in event-ruler's and
 * quamina's automata), and a field's IN-list, a value of its own included,
 * is a key per value under the previous step. Steps are groups of keys
 * (a lone anything-but or cidr as a checked key), plus one group with
 * numeric ranges, last. Marks role[] and pl. */
static void chain(eb_matcher *m, size_t i, size_t j, const uint32_t *slot_of,
                  unsigned char *role, struct plist *pl)
{
    uint32_t e = m->recs[i].posting >> GROUP_BITS;
    struct step cand[EB_ANCHOR_MAX_GROUPS], steps[EB_ANCHOR_MAX_GROUPS], last = { 0 };
    uint32_t front[CHAIN_PATHS], next[CHAIN_PATHS], cg;
    size_t ncand = 0, nsteps = 0, nf = 0, built;
    unsigned paths = 1;
    bool have_last = false;

    for (uint32_t g = 0; g < EB_ANCHOR_MAX_GROUPS; g++) {
        struct step st = { .g = g, .node = UINT32_MAX };

        if (!(m->need[e] & 1u << g))
            continue;
        for (size_t k = i; k < j; k++) {
            const struct rec *r = &m->recs[k];

            if (posting_group(r->posting) != g)
                continue;
            if (st.nrec++ == 0)
                st.node = r->node;
            if (r->verify != NULL)
                st.verified = true;
            if (r->verify != NULL && r->kind == EB_ANCHOR_EXISTS)
                st.checked = true;
            if (r->kind == EB_ANCHOR_RANGE)
                st.range = true;
            else
                st.cost += m->bkeys[slot_of[k]].k.n;
        }
        st.checked = st.checked && st.nrec == 1;
        if (st.verified && !st.checked)
            continue; /* a hit of its keys alone does not make a step */
        if (!st.range)
            cand[ncand++] = st;
        else if (!have_last || st.nrec < last.nrec)
            last = st, have_last = true;
    }
    qsort(cand, ncand, sizeof *cand, cmp_step);
    for (size_t k = 0; k < ncand; k++)
        if (paths * cand[k].nrec <= CHAIN_PATHS) {
            paths *= cand[k].nrec;
            steps[nsteps++] = cand[k];
        }
    if (have_last && nsteps > 0 && paths * last.nrec <= CHAIN_PATHS)
        steps[nsteps++] = last;
    if (nsteps < 2)
        return;

    cg = steps[0].g;
    for (size_t k = i; k < j; k++) {
        const struct rec *r = &m->recs[k];

        if (posting_group(r->posting) != cg)
            continue;
        if (steps[0].checked) {
            /* The only record of its group. */
            uint32_t key = checked_key(m, r->node, check_of(m, r->verify));

            if (key == UINT32_MAX)
                return; /* its node has all the checked keys it takes */
            front[nf++] = key;
        } else {
            front[nf++] = slot_of[k];
        }
        role[k] = ROLE_HEAD;
    }
    for (built = 1; built < nsteps; built++) {
        uint32_t g = steps[built].g;
        size_t nn = 0;

        if (!subs_fit(m, front, nf, i, j, g) ||
            (steps[built].checked && !checked_fit(m, front, nf, i, j, g)))
            break;
        for (size_t f = 0; f < nf; f++) {
            for (size_t k = i; k < j; k++) {
                const struct rec *r = &m->recs[k];
                uint32_t sb;

                if (posting_group(r->posting) != g)
                    continue;
                role[k] = ROLE_INNER;
                sb = sub_at(m, front[f], r->node);
                if (r->kind == EB_ANCHOR_RANGE) {
                    m->subs[sb].ix.kinds |= 1u << EB_ANCHOR_RANGE;
                    rtree_add(&m->subs[sb].ix.ranges, r, e << GROUP_BITS | cg);
                } else if (steps[built].checked) {
                    uint32_t key = checked_key(m, sub_node(m, sb), check_of(m, r->verify));

                    assert(key != UINT32_MAX && nn < CHAIN_PATHS); /* checked_fit() */
                    next[nn++] = key;
                } else {
                    uint32_t key = key_get(m, sub_node(m, sb), r);

                    index_key(&m->subs[sb].ix, r);
                    assert(nn < CHAIN_PATHS);
                    next[nn++] = key;
                }
            }
        }
        memcpy(front, next, nn * sizeof *next);
        nf = nn;
        m->need[e] &= ~(1u << g);
    }
    if (built < 2) {
        /* Not even the second step fit: no chain. */
        for (size_t k = i; k < j; k++)
            if (role[k] == ROLE_HEAD)
                role[k] = ROLE_POSTING;
        return;
    }
    for (size_t f = 0; f < nf; f++)
        plist_add(pl, front[f], e << GROUP_BITS | cg, NO_CHECK);
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
    m->ndups = m->capdups = 0;
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

/* Moves the keys that lead anywhere (postings, or subs) from the dense
 * array of the build into the open-addressing table that matching probes,
 * at most half full: most records share keys or were left out of the
 * index, so a table sized for every record would miss the cache for
 * nothing. */
/* The index (trie node or sub) of key b. */
static struct pnode *index_of(eb_matcher *m, const struct bkey *b)
{
    return index_at(m, b->k.at >> KEY_KIND_BITS);
}

static bool key_live(const struct bkey *b)
{
    return b->k.n != 0 || b->k.nv != 0 || b->k.sub != NO_SUB;
}

static void compact_keys(eb_matcher *m)
{
    size_t cap = 16, live = 0, listed = 0, nchecked = 0;
    struct key *keys;

    /* Checked keys are listed apart; indexes with few other keys list them
     * (LIST_KEYS); the rest go into the table. */
    for (size_t i = 0; i < m->nnodes + m->nsubs; i++)
        index_at(m, (uint32_t)i)->nchecked = 0;
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct bkey *b = &m->bkeys[i];

        if (!key_live(b))
            continue;
        if ((b->k.at & ((1u << KEY_KIND_BITS) - 1)) == KEY_CHECKED)
            index_of(m, b)->nchecked++;
        else
            index_of(m, b)->nlist++;
    }
    for (size_t i = 0; i < m->nnodes + m->nsubs; i++) {
        struct pnode *ix = i < m->nnodes ? &m->nodes[i] : &m->subs[i - m->nnodes].ix;

        ix->cfirst = (uint32_t)nchecked;
        nchecked += ix->nchecked;
        ix->nchecked = 0;
        ix->listed = ix->nlist <= LIST_KEYS;
        if (ix->listed) {
            ix->lfirst = (uint32_t)listed;
            listed += ix->nlist;
        } else {
            live += ix->nlist;
        }
        ix->nlist = 0;
    }
    m->lkeys = xcalloc(listed, sizeof *m->lkeys);
    m->ckeys = xcalloc(nchecked, sizeof *m->ckeys);
    while (cap < 2 * live)
        cap *= 2;
    keys = xcalloc(cap, sizeof *keys);
    m->ktags = xcalloc(cap, sizeof *m->ktags);
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct bkey *b = &m->bkeys[i];
        struct pnode *ix = index_of(m, b);
        size_t j;

        if (!key_live(b))
            continue;
        if ((b->k.at & ((1u << KEY_KIND_BITS) - 1)) == KEY_CHECKED) {
            m->ckeys[ix->cfirst + ix->nchecked++] = b->k;
            continue;
        }
        if (ix->listed) {
            m->lkeys[ix->lfirst + ix->nlist++] = b->k;
            continue;
        }
        for (j = b->hash & (cap - 1); m->ktags[j] != 0; j = (j + 1) & (cap - 1))
            ;
        keys[j] = b->k;
        m->ktags[j] = key_tag(b->hash);
        ix->filter |= key_bit(b->hash);
    }
    free(m->bkeys);
    m->bkeys = NULL;
    free(m->kidx);
    m->kidx = NULL;
    m->keys = keys;
    m->keymask = cap - 1;
    m->nkeys = m->capkeys = 0;
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
        for (size_t g = 0; g < e->nguards; g++)
            m->nodes[e->guards[g]].guard = true;
        for (size_t t = 0; t < e->ntests && t < HOT_TESTS; t++)
            h->test[t] = m->test_of[e->tests + t];
    }
}

/* Renumbers a posting along perm (old entry -> new entry). */
static uint32_t renumber(const uint32_t *perm, uint32_t posting)
{
    return perm[posting >> GROUP_BITS] << GROUP_BITS | posting_group(posting);
}

static void renumber_ranges(struct rtree *rt, const uint32_t *perm)
{
    for (size_t i = 0; i < rt->n; i++)
        rt->ranges[i].posting = renumber(perm, rt->ranges[i].posting);
}

/* What decides an entry once all its groups are hit: nothing (an exact
 * entry with no guards, leaf tests or further ids: it matches), the absence
 * of arrays at its guards (the same with guards), or its candidate record
 * (the rest). In that order, entries are numbered by class. */
enum { DECIDED, DECIDED_UNGUARDED, DECIDED_BY_CANDIDATE };

static int entry_class(const struct entry *e)
{
    if (!e->exact || e->ntests != 0 || e->more != NO_MORE)
        return DECIDED_BY_CANDIDATE;
    return e->nguards == 0 ? DECIDED : DECIDED_UNGUARDED;
}

/* Numbers the entries by class (entry_class(): m->ndecided, then up to
 * m->nunguarded, then the rest), and within a class in the order of the
 * range sets and posting lists that name them (the ranges sorted by lower
 * bound), so that the entries one stab or one key hits are neighbours in
 * every array indexed by entry (hits, need, records): a run of candidates
 * then reads a few cache lines instead of a line per entry, as it did
 * when entries came in the order their patterns were added. After the
 * entries' tests and further ids are known, before their records are
 * made; every range tree must be built. */
static void renumber_entries(eb_matcher *m)
{
    uint32_t *perm = xcalloc(m->nentries, sizeof *perm); /* first seen + 1; 0: not yet */
    uint32_t *order = xcalloc(m->nentries, sizeof *order);
    uint32_t next = 0, counts[3] = { 0 }, start[3];
    struct entry *entries;
    uint32_t *need, *attr_need;

#define SEE(e)                                                                                    \
    do {                                                                                          \
        if (perm[e] == 0)                                                                         \
            perm[e] = ++next;                                                                     \
    } while (0)
    for (size_t sb = 0; sb < m->nsubs; sb++)
        for (size_t i = 0; i < m->subs[sb].ix.ranges.n; i++)
            SEE(m->subs[sb].ix.ranges.ranges[i].posting >> GROUP_BITS);
    for (size_t nd = 0; nd < m->nnodes; nd++)
        for (size_t i = 0; i < m->nodes[nd].ranges.n; i++)
            SEE(m->nodes[nd].ranges.ranges[i].posting >> GROUP_BITS);
    for (size_t k = 0; k < m->nkeys; k++) {
        const struct key *kk = &m->bkeys[k].k;

        for (uint32_t i = 0; i < kk->n; i++)
            SEE(m->postings[kk->off + i] >> GROUP_BITS);
        for (uint32_t i = 0; i < kk->nv; i++)
            SEE(m->postings[kk->off + kk->n + 2 * i] >> GROUP_BITS);
    }
    for (size_t e = 0; e < m->nentries; e++)
        SEE(e);
#undef SEE
    /* By class, then in the order first seen. */
    for (size_t e = 0; e < m->nentries; e++) {
        order[perm[e] - 1] = (uint32_t)e;
        counts[entry_class(&m->entries[e])]++;
    }
    start[DECIDED] = 0;
    start[DECIDED_UNGUARDED] = counts[DECIDED];
    start[DECIDED_BY_CANDIDATE] = counts[DECIDED] + counts[DECIDED_UNGUARDED];
    m->ndecided = start[DECIDED_UNGUARDED];
    m->nunguarded = start[DECIDED_BY_CANDIDATE];
    for (size_t k = 0; k < m->nentries; k++)
        perm[order[k]] = start[entry_class(&m->entries[order[k]])]++;
    free(order);

    for (size_t sb = 0; sb < m->nsubs; sb++)
        renumber_ranges(&m->subs[sb].ix.ranges, perm);
    for (size_t nd = 0; nd < m->nnodes; nd++)
        renumber_ranges(&m->nodes[nd].ranges, perm);
    for (size_t k = 0; k < m->nkeys; k++) {
        const struct key *kk = &m->bkeys[k].k;

        for (uint32_t i = 0; i < kk->n; i++)
            m->postings[kk->off + i] = renumber(perm, m->postings[kk->off + i]);
        for (uint32_t i = 0; i < kk->nv; i++)
            m->postings[kk->off + kk->n + 2 * i] =
                renumber(perm, m->postings[kk->off + kk->n + 2 * i]);
    }
    for (size_t i = 0; i < m->nresidual; i++)
        m->residual[i] = perm[m->residual[i]];

    entries = xcalloc(m->nentries, sizeof *entries);
    need = xcalloc(m->nentries, sizeof *need);
    attr_need = xcalloc(m->nentries, sizeof *attr_need);
    m->ids = xcalloc(m->nentries, sizeof *m->ids);
    for (size_t e = 0; e < m->nentries; e++) {
        entries[perm[e]] = m->entries[e];
        need[perm[e]] = m->need[e];
        attr_need[perm[e]] = m->attr_need[e];
        m->ids[perm[e]] = m->entries[e].id;
    }
    free(m->entries);
    free(m->need);
    free(m->attr_need);
    m->entries = entries;
    m->capentries = m->capneed = m->nentries;
    m->need = need;
    m->attr_need = attr_need;
    free(perm);
}

/* Sorts and dedupes an index's affix lengths and builds its range tree. */
static void finish_index(struct pnode *ix)
{
    for (int a = 0; a < AFFIXES; a++) {
        size_t n = 0;

        if (ix->nlens[a] == 0)
            continue;
        qsort(ix->lens[a], ix->nlens[a], sizeof(size_t), cmp_size);
        for (size_t j = 0; j < ix->nlens[a]; j++)
            if (n == 0 || ix->lens[a][n - 1] != ix->lens[a][j])
                ix->lens[a][n++] = ix->lens[a][j];
        ix->nlens[a] = n;
    }
    rtree_build(&ix->ranges);
}

static void free_index(struct pnode *ix)
{
    for (int a = 0; a < AFFIXES; a++)
        free(ix->lens[a]);
    rtree_free(&ix->ranges);
}

void eb_matcher_build(eb_matcher *m)
{
    struct plist pl = { 0 };
    uint32_t *slot_of;
    unsigned char *role;
    uint32_t total = 0;
    size_t ccap = 16;

    assert(m != NULL && !m->built);
    m->built = true;
    slot_of = xcalloc(m->nrecs, sizeof *slot_of);
    role = xcalloc(m->nrecs, sizeof *role);
    kidx_rebuild(m);
    while (ccap < 2 * m->nrecs + 2)
        ccap *= 2;
    m->ctable = xcalloc(ccap, sizeof *m->ctable);
    m->ctmask = ccap - 1;

    /* The key of every record at its node, counting the patterns that
     * share it: chain() and drop_common_groups() go by these counts. */
    for (size_t i = 0; i < m->nrecs; i++) {
        const struct rec *r = &m->recs[i];

        if (r->kind == EB_ANCHOR_RANGE) {
            slot_of[i] = UINT32_MAX;
            continue;
        }
        slot_of[i] = key_get(m, r->node, r);
        m->bkeys[slot_of[i]].k.n++;
    }
    for (size_t i = 0; i < m->nrecs;) {
        uint32_t e = m->recs[i].posting >> GROUP_BITS;
        size_t j = i;

        while (j < m->nrecs && m->recs[j].posting >> GROUP_BITS == e)
            j++;
        chain(m, i, j, slot_of, role, &pl);
        i = j;
    }
    drop_common_groups(m, slot_of, role);
    find_attr_needs(m, role);

    /* What stays at the trie nodes: the keys of postings and of the first
     * steps of chains, and the ranges not chained. */
    for (size_t i = 0; i < m->nnodes; i++)
        m->nodes[i].kinds = 0;
    for (size_t i = 0; i < m->nrecs; i++) {
        const struct rec *r = &m->recs[i];

        if (role[i] == ROLE_INNER)
            continue;
        if (r->kind == EB_ANCHOR_RANGE) {
            m->nodes[r->node].kinds |= 1u << EB_ANCHOR_RANGE;
            rtree_add(&m->nodes[r->node].ranges, r, r->posting);
            continue;
        }
        if (slot_of[i] == DROPPED || (role[i] == ROLE_HEAD && r->verify != NULL))
            continue; /* dropped, or a checked key (listed apart) */
        index_key(&m->nodes[r->node], r);
        if (role[i] == ROLE_POSTING)
            plist_add(&pl, slot_of[i], r->posting,
                      r->verify != NULL ? check_of(m, r->verify) : NO_CHECK);
    }
    free(m->ctable);
    m->ctable = NULL;

    /* The postings, key by key: those a hit decides, then (posting, check)
     * pairs. */
    for (size_t k = 0; k < m->nkeys; k++)
        m->bkeys[k].k.n = m->bkeys[k].k.nv = 0;
    for (size_t i = 0; i < pl.n; i++) {
        if (pl.v[i].check == NO_CHECK)
            m->bkeys[pl.v[i].key].k.n++;
        else
            m->bkeys[pl.v[i].key].k.nv++;
    }
    for (size_t k = 0; k < m->nkeys; k++) {
        m->bkeys[k].k.off = total;
        total += m->bkeys[k].k.n + 2 * m->bkeys[k].k.nv;
    }
    m->postings = xcalloc(total, sizeof *m->postings);
    for (size_t k = 0; k < m->nkeys; k++)
        m->bkeys[k].k.nv = m->bkeys[k].k.n, m->bkeys[k].k.n = 0; /* nv: where the pairs start */
    for (size_t i = 0; i < pl.n; i++) {
        struct key *k = &m->bkeys[pl.v[i].key].k;

        if (pl.v[i].check == NO_CHECK) {
            m->postings[k->off + k->n++] = pl.v[i].posting;
        } else {
            m->postings[k->off + k->nv++] = pl.v[i].posting;
            m->postings[k->off + k->nv++] = pl.v[i].check;
        }
    }
    for (size_t k = 0; k < m->nkeys; k++)
        m->bkeys[k].k.nv = (m->bkeys[k].k.nv - m->bkeys[k].k.n) / 2;
    free(pl.v);
    free(slot_of);
    free(role);
    for (size_t i = 0; i < m->nnodes; i++)
        finish_index(&m->nodes[i]);
    for (size_t i = 0; i < m->nsubs; i++)
        finish_index(&m->subs[i].ix);
    free(m->seen); /* entries by their old numbers; adding is over */
    m->seen = NULL;
    add_tests(m);
    add_more_ids(m);
    renumber_entries(m);
    for (size_t i = 0; i < m->nentries; i++) {
        free(m->entries[i].leaf_of_group);
        m->entries[i].leaf_of_group = NULL;
        free(m->entries[i].leaves);
        m->entries[i].leaves = NULL;
    }
    free(m->recs);
    m->recs = NULL;
    compact_keys(m);
    make_hot(m);
    m->nrecs = m->caprecs = 0;
}

size_t eb_matcher_size(const eb_matcher *m)
{
    return m->nadded;
}

void eb_matcher_free(eb_matcher *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nnodes; i++)
        free_index(&m->nodes[i]);
    free(m->nodes);
    for (size_t i = 0; i < m->nsubs; i++)
        free_index(&m->subs[i].ix);
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
    free(m->ids);
    free(m->tests);
    free(m->test_paths);
    free(m->test_of);
    free(m->recs);
    free(m->residual);
    free(m->keys);
    free(m->lkeys);
    free(m->ckeys);
    free(m->ctable);
    free(m->bkeys);
    free(m->kidx);
    free(m->ktags);
    free(m->checks);
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
    sc->later = xcalloc(m->nentries, sizeof *sc->later);
    sc->out = xcalloc(m->nadded, sizeof *sc->out);
    sc->sub_stamp = xcalloc(m->nsubs, sizeof *sc->sub_stamp);
    sc->active = xcalloc(m->nsubs, sizeof *sc->active);
    sc->flat = eb_flat_new();
    sc->crossed = xcalloc(m->nnodes, sizeof *sc->crossed);
    sc->val_stamp = xcalloc(m->nnodes, sizeof *sc->val_stamp);
    sc->check_stamp = xcalloc(m->nchecks, sizeof *sc->check_stamp);
    sc->check_val = xcalloc(m->nchecks, sizeof *sc->check_val);
    sc->val_head = xcalloc(m->nnodes, sizeof *sc->val_head);
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
    free(sc->later);
    free(sc->out);
    free(sc->sub_stamp);
    free(sc->active);
    free(sc->vals);
    free(sc->val_stamp);
    free(sc->check_stamp);
    free(sc->check_val);
    free(sc->val_head);
    eb_flat_free(sc->flat);
    free(sc->crossed);
    free(sc);
}
