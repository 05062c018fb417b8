/* The multi-pattern matcher: an index over the anchors of many compiled
 * patterns (pattern_anchor.h), so that an event is evaluated in full only
 * against the patterns it could match. Design and costs:
 * docs/decisions/0007-matcher-index.md.
 *
 * Pure, like pattern.c: no I/O, no globals.
 */
#include "pattern.h"
#include "flatten.h"
#include "pattern_anchor.h"
#include "pattern_flat.h"
#include "pattern_internal.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Affix kinds, in the order of struct pnode's lens[]. */
enum { AFFIX_PREFIX, AFFIX_PREFIX_CI, AFFIX_SUFFIX, AFFIX_SUFFIX_CI, AFFIXES };

/* Out of memory aborts: see STYLE.md. */
static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n != 0 ? n : 1);
    if (p == NULL) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);

    if (p == NULL) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Grows *arr (of *cap elements of size bytes) to hold at least need. */
static void grow(void **arr, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 8;

    if (need <= *cap)
        return;
    while (n < need)
        n *= 2;
    *arr = xrealloc(*arr, n * size);
    *cap = n;
}

/* A posting names an entry and the anchor group of it that is hit:
 * entry << GROUP_BITS | group. */
#define GROUP_BITS 5
#define MAX_ENTRIES (UINT32_MAX >> GROUP_BITS)

/* One distinct pattern (eb_pattern_same()) and every id it was added
 * under: patterns written alike are indexed and decided once. */
struct entry {
    uint32_t id;
    uint32_t more, nmore;  /* further ids: m->more[more .. more + nmore) once built */
    bool exact;            /* the index decides p (eb_pattern_exact()) ... */
    uint32_t tests, ntests; /* ... with the leaf tests m->test_of[tests .. tests + ntests), */
    uint32_t *guards;      /* ... unless the event has an array at one of these nodes */
    size_t nguards;
    const eb_pattern *p;
    uint32_t *field_nodes; /* the trie node of each field of p */
    uint32_t check;        /* until built: the leaves that need a test */
    uint64_t hash;         /* eb_pattern_hash(p) */
    uint8_t *leaf_of_group; /* until built: which leaf each anchor group is */
    const struct field **leaves; /* until built: p's leaf fields, by number */
};

/* What deciding a candidate entry reads, copied from it when the matcher is
 * built: 32 bytes, aligned, so that a candidate costs one cache miss in
 * most cases instead of one per array of the entry. The first HOT_GUARDS
 * guards and HOT_TESTS tests are here; the rest only in the entry. */
#define HOT_GUARDS 2
#define PREFETCH 4 /* candidates ahead */
#define HOT_TESTS 2
#define NO_MORE UINT32_MAX

struct hot {
    uint32_t id;
    uint32_t more; /* m->more[more] further ids follow it there; or NO_MORE */
    uint8_t exact;
    uint8_t pad;
    uint16_t nguards, ntests;
    uint16_t pad2;
    uint32_t guard[HOT_GUARDS];
    uint32_t test[HOT_TESTS];
};

/* A leaf test: one leaf field with its conditions, at one path, as many
 * exact patterns need it checked apart from the index (their leaves with
 * anything-but, exists, cidr or a wildcard with '*', and those whose group
 * was left out of the index as too common). Patterns with the same leaf
 * share one test, evaluated at most once per event and only when a
 * candidate asks for it; a candidate then costs a few lookups in the
 * per-event results instead of a walk of its compiled tree. */
struct ltest {
    const struct field *leaf; /* borrowed from the first pattern that has it */
    uint32_t path;            /* m->test_paths[path .. path + depth): root to leaf */
    uint32_t depth;
    uint64_t hash;
};

struct range {
    double lo, hi;
    uint32_t posting;
    uint32_t also; /* a second posting the hit takes (a nested range), or NO_POSTING */
    bool lo_open, hi_open;
    bool alone; /* posting and also are all the entry needs: a hit makes a candidate */
};
#define NO_POSTING UINT32_MAX

/* Numeric ranges at one path, sorted by lower bound. When their widths are
 * alike (at most SCAN_WIDTHS times the median), a number d is stabbed by
 * scanning back from the last range with lo <= d while lo + maxw >= d: the
 * ranges passed over are about the ranges hit. Otherwise a segment tree of
 * the highest upper bound per span finds them in O((k + 1) log n). */
struct rtree {
    struct range *ranges;
    size_t n, cap;
    double *maxhi; /* the tree, or NULL when scanned */
    double maxw;   /* when scanned: lo + maxw >= hi for every range */
};
#define SCAN_WIDTHS 4

/* The ranges of patterns that also need one key (see nest_ranges()): they
 * are stabbed with the event's numbers at node only when the key is hit. A
 * key's subs form a list through next. */
struct sub {
    uint32_t node;
    uint32_t next; /* NO_SUB: the last */
    struct rtree t;
};
#define NO_SUB UINT32_MAX

/* The index at one node of the path trie (eb_matcher.trie, same ids): only
 * paths some pattern uses exist, so an event is looked at only where a
 * pattern looks. */
struct pnode {
    unsigned kinds;            /* bit per enum eb_anchor_kind anchored here */
    size_t *lens[AFFIXES];     /* distinct affix lengths, ascending */
    size_t nlens[AFFIXES], caplens[AFFIXES];
    struct rtree ranges;       /* ranges not nested under a key */
    bool keep_numbers;         /* some nested range is at this node */
};

/* An anchor as recorded by eb_matcher_add(), indexed by eb_matcher_build(). */
struct rec {
    uint32_t node, posting;
    enum eb_anchor_kind kind;
    const char *s;
    size_t len;
    double num;
    double lo, hi; /* EB_ANCHOR_RANGE */
    bool lo_open, hi_open;
};

/* A key of the hash index: (path, kind, value) -> postings[off..off+n),
 * and the nested ranges reached through it (sub, or NO_SUB). */
struct key {
    uint64_t hash;
    const char *s;
    size_t len;
    double num;
    uint32_t node;
    uint32_t off, n;
    uint32_t sub;
    unsigned char kind;
    unsigned char used;
};

struct eb_matcher {
    bool built;
    eb_ftrie *trie; /* every path of every pattern; node ids index nodes */
    struct entry *entries;
    size_t nentries, capentries;
    size_t nadded;  /* eb_matcher_add() calls */
    uint32_t *seen; /* until built: entries by hash, entry + 1 (0: empty) */
    size_t seenmask;
    struct { uint32_t entry, id; } *dups; /* until built: ids added to an existing entry */
    size_t ndups, capdups;
    uint32_t *more; /* per entry with further ids: their number, then the ids */
    struct hot *hot; /* per entry */
    uint32_t *need; /* per entry, a bit per indexed anchor group: all must be hit */
    uint32_t *attr_need; /* per entry, the groups of need that attributes alone decide */
    bool always_data; /* some entry has no such group: the data always matters */
    size_t capneed;
    struct ltest *tests;
    size_t ntests, captests;
    uint32_t *test_paths; /* the trie nodes of the tests' paths */
    size_t npaths, cappaths;
    uint32_t *test_of; /* per exact entry, the tests of its checked leaves */
    size_t ntest_of, captest_of;
    struct pnode *nodes; /* per trie node; nodes[0] is the root */
    size_t nnodes, capnodes;
    struct rec *recs;
    size_t nrecs, caprecs;
    uint32_t *residual; /* entries without anchors: always evaluated */
    size_t nresidual, capresidual;
    struct key *keys; /* open addressing, capacity a power of two */
    size_t keymask;
    uint32_t *postings;
    struct sub *subs;
    size_t nsubs, capsubs;
};

/* The hits of one entry in the event being matched. */
struct hits {
    uint32_t stamp; /* gen when mask holds this event's hits */
    uint32_t mask;  /* anchor groups hit by this event */
};

struct eb_matcher_scratch {
    const eb_matcher *m;
    uint32_t gen;
    struct hits *hits; /* per entry */
    uint32_t *test_stamp; /* per leaf test: gen when test_val holds its result */
    signed char *test_val;
    uint32_t *cand;
    uint32_t *out;
    uint32_t *sub_stamp; /* per sub: gen when it is in active */
    uint32_t *active;    /* the subs whose key this event hits */
    size_t nactive;
    struct num_at { uint32_t node; double d; } *nums; /* numbers at keep_numbers nodes */
    size_t nnums, capnums;
    eb_flat *flat;     /* the event being matched, flattened along m->trie */
    uint32_t *crossed; /* per trie node: gen when this event has an array there */
};

/* ---- Hashing ------------------------------------------------------------- */

static unsigned char fold(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

static bool kind_ci(enum eb_anchor_kind k)
{
    return k == EB_ANCHOR_CI || k == EB_ANCHOR_PREFIX_CI || k == EB_ANCHOR_SUFFIX_CI;
}

static bool kind_suffix(enum eb_anchor_kind k)
{
    return k == EB_ANCHOR_SUFFIX || k == EB_ANCHOR_SUFFIX_CI;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_step(uint64_t h, unsigned char ch)
{
    return (h ^ ch) * FNV_PRIME;
}

/* Mixes the running byte hash with the path and the kind. */
static uint64_t hash_final(uint64_t h, uint32_t node, enum eb_anchor_kind kind)
{
    h ^= ((uint64_t)node << 8 | (uint64_t)kind) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

/* Hashes s[0..len) as the kind reads it: folded for the -ignore-case
 * kinds, backwards for suffixes (so that a suffix can be hashed while
 * walking an event string from its end). */
static uint64_t hash_text(const char *s, size_t len, enum eb_anchor_kind kind)
{
    uint64_t h = FNV_OFFSET;
    bool ci = kind_ci(kind);

    if (kind_suffix(kind)) {
        for (size_t i = len; i-- > 0;)
            h = fnv_step(h, ci ? fold((unsigned char)s[i]) : (unsigned char)s[i]);
    } else {
        for (size_t i = 0; i < len; i++)
            h = fnv_step(h, ci ? fold((unsigned char)s[i]) : (unsigned char)s[i]);
    }
    return h;
}

static uint64_t hash_number(double d)
{
    uint64_t bits;

    /* Compared by value: -0 and 0 are one key. */
    if (d == 0)
        d = 0;
    memcpy(&bits, &d, sizeof bits);
    return FNV_OFFSET ^ bits;
}

static bool kind_text(enum eb_anchor_kind k)
{
    return k == EB_ANCHOR_STRING || k == EB_ANCHOR_CI || k == EB_ANCHOR_PREFIX ||
           k == EB_ANCHOR_PREFIX_CI || k == EB_ANCHOR_SUFFIX || k == EB_ANCHOR_SUFFIX_CI;
}

static bool text_equal(const char *a, const char *b, size_t len, bool ci)
{
    if (!ci)
        return memcmp(a, b, len) == 0;
    for (size_t i = 0; i < len; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return false;
    return true;
}

/* Finds the key (node, kind, s/len or num) with hash h; NULL when absent. */
static const struct key *key_find(const eb_matcher *m, uint64_t h, uint32_t node,
                                  enum eb_anchor_kind kind, const char *s, size_t len,
                                  double num)
{
    for (size_t i = h & m->keymask;; i = (i + 1) & m->keymask) {
        const struct key *k = &m->keys[i];

        if (!k->used)
            return NULL;
        if (k->hash != h || k->node != node || k->kind != kind)
            continue;
        if (kind_text(kind)) {
            if (k->len == len && text_equal(k->s, s, len, kind_ci(kind)))
                return k;
        } else if (kind != EB_ANCHOR_NUMBER || k->num == num) {
            return k;
        }
    }
}

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

static int affix_of(enum eb_anchor_kind k)
{
    switch (k) {
    case EB_ANCHOR_PREFIX:
        return AFFIX_PREFIX;
    case EB_ANCHOR_PREFIX_CI:
        return AFFIX_PREFIX_CI;
    case EB_ANCHOR_SUFFIX:
        return AFFIX_SUFFIX;
    case EB_ANCHOR_SUFFIX_CI:
        return AFFIX_SUFFIX_CI;
    default:
        return -1;
    }
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

/* Finds, per entry, the groups of its need that the event's attributes
 * alone hit (attr_need): neither under "data" or "data_base64" nor a
 * nested range, which is only stabbed once the data is read. An event
 * whose attributes leave every entry short of its attr_need matches
 * nothing, whatever its data (see eb_matcher_match_stored()). nested marks
 * the records of nested ranges and of the keys they hang under. */
static void find_attr_needs(eb_matcher *m, const bool *nested)
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
        if (top == dnode || top == bnode || (r->kind == EB_ANCHOR_RANGE && nested[i]))
            m->attr_need[r->posting >> GROUP_BITS] &=
                ~(1u << (r->posting & ((1u << GROUP_BITS) - 1)));
    }
    m->always_data = m->nresidual > 0;
    for (size_t e = 0; e < m->nentries; e++)
        if (m->attr_need[e] == 0)
            m->always_data = true;
}

/* Nests ranges under keys: an entry that needs both a group made of one
 * key (an exact value, affix, ...) and a group made of one numeric range
 * has its range stabbed only in events that hit the key, and the key's
 * posting is not visited at all: a range hit there counts for both groups.
 * With 1,250 patterns of "type X and amount in a range" over 6 types, an
 * event stabs the ~200 ranges of its type and visits no type posting,
 * instead of visiting ~200 postings and stabbing all 1,250 ranges. Of the
 * keys an entry could nest under, the one with the most postings is chosen
 * (the visits saved). Marks the nested keys' records in nested[]; puts every
 * range record in its node's tree or its key's sub. */
static void nest_ranges(eb_matcher *m, const uint32_t *slot_of, bool *nested)
{
    for (size_t i = 0; i < m->nrecs;) {
        uint32_t e = m->recs[i].posting >> GROUP_BITS;
        unsigned nrec[EB_ANCHOR_MAX_GROUPS] = { 0 };
        size_t key = SIZE_MAX, range = SIZE_MAX, j;

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
        for (size_t k = i; k < j; k++) {
            const struct rec *r = &m->recs[k];

            if (r->kind != EB_ANCHOR_RANGE)
                continue;
            if (k == range && key != SIZE_MAX) {
                struct key *kk = &m->keys[slot_of[key]];
                uint32_t sb = kk->sub;

                while (sb != NO_SUB && m->subs[sb].node != r->node)
                    sb = m->subs[sb].next;
                if (sb == NO_SUB) {
                    grow((void **)&m->subs, &m->capsubs, m->nsubs + 1, sizeof *m->subs);
                    sb = (uint32_t)m->nsubs++;
                    m->subs[sb] = (struct sub){ .node = r->node, .next = kk->sub };
                    kk->sub = sb;
                }
                nested[k] = true;
                rtree_add(&m->subs[sb].t, r, m->recs[key].posting,
                          m->need[e] == (1u << (r->posting & ((1u << GROUP_BITS) - 1)) |
                                         1u << (m->recs[key].posting & ((1u << GROUP_BITS) - 1))));
                m->nodes[r->node].keep_numbers = true;
                nested[key] = true;
            } else {
                rtree_add(&m->nodes[r->node].ranges, r, NO_POSTING, false);
            }
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
    uint32_t *slot_of;
    bool *nested;
    uint32_t total = 0;

    assert(m != NULL && !m->built);
    m->built = true;
    while (cap < m->nrecs * 2)
        cap *= 2;
    m->keys = xcalloc(cap, sizeof *m->keys);
    m->keymask = cap - 1;
    slot_of = xcalloc(m->nrecs, sizeof *slot_of);
    nested = xcalloc(m->nrecs, sizeof *nested);

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
    assert(nkeys <= cap / 2 + 1);
    drop_common_groups(m, slot_of);
    nest_ranges(m, slot_of, nested);
    find_attr_needs(m, nested);
    for (size_t k = 0; k < cap; k++) {
        m->keys[k].off = total;
        total += m->keys[k].n;
        m->keys[k].n = 0;
    }
    m->postings = xcalloc(total, sizeof *m->postings);
    for (size_t i = 0; i < m->nrecs; i++) {
        struct key *k;

        if (slot_of[i] == UINT32_MAX || slot_of[i] == DROPPED || nested[i])
            continue;
        k = &m->keys[slot_of[i]];
        m->postings[k->off + k->n++] = m->recs[i].posting;
    }
    free(slot_of);
    free(nested);
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
    eb_flat_free(sc->flat);
    free(sc->crossed);
    free(sc);
}

/* ---- Matching -------------------------------------------------------------- */

struct match_ctx {
    const eb_matcher *m;
    eb_matcher_scratch *sc;
    size_t ncand;
    bool probe; /* looking at the attributes alone (attrs_matter()) ... */
    bool alive; /* ... and some entry could still match */
};

/* Records that the event hits one anchor group of an entry; the entry
 * becomes a candidate when its last group is hit, once per event. */
static void take_posting(struct match_ctx *c, uint32_t posting)
{
    eb_matcher_scratch *sc = c->sc;
    uint32_t e = posting >> GROUP_BITS, need = c->m->need[e], old;
    struct hits *h = &sc->hits[e];

    if (h->stamp != sc->gen) {
        h->stamp = sc->gen;
        h->mask = 0;
    }
    old = h->mask;
    h->mask = old | 1u << (posting & ((1u << GROUP_BITS) - 1));
    if (h->mask == need && old != need)
        sc->cand[c->ncand++] = e;
    if (c->probe && (h->mask & c->m->attr_need[e]) == c->m->attr_need[e])
        c->alive = true;
}

static void take(struct match_ctx *c, const struct key *k)
{
    eb_matcher_scratch *sc = c->sc;

    if (k == NULL)
        return;
    for (uint32_t i = 0; i < k->n; i++)
        take_posting(c, c->m->postings[k->off + i]);
    /* A key with nested ranges may complete its entries once the data's
     * numbers are in. */
    if (k->sub != NO_SUB && c->probe)
        c->alive = true;
    for (uint32_t sb = k->sub; sb != NO_SUB; sb = c->m->subs[sb].next) {
        if (sc->sub_stamp[sb] != sc->gen) {
            sc->sub_stamp[sb] = sc->gen;
            sc->active[sc->nactive++] = sb;
        }
    }
}

static void lookup(struct match_ctx *c, uint32_t node, enum eb_anchor_kind kind, uint64_t h,
                   const char *s, size_t len, double num)
{
    take(c, key_find(c->m, hash_final(h, node, kind), node, kind, s, len, num));
}

/* Every affix length of the node's affix kind that fits in the string is
 * looked up, hashing the string once from its start (prefixes) or its end
 * (suffixes): the cost grows with the number of distinct lengths, never
 * with the number of patterns. */
static void lookup_affixes(struct match_ctx *c, uint32_t node, enum eb_anchor_kind kind,
                           const char *s, size_t len)
{
    const struct pnode *p = &c->m->nodes[node];
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
        lookup(c, node, kind, h, suffix ? s + len - lens[j] : s, lens[j], 0);
    }
}

/* Reports rg, which a search that treats bounds as closed found to hold d.
 * once: each range can be hit only once in this event (see
 * stab_nested()). */
static void hit_range(struct match_ctx *c, const struct range *rg, double d, bool once)
{
    /* The searches treat bounds as closed; open ones are decided here, so
     * that a range hit is exact. */
    if ((rg->lo_open && !(d > rg->lo)) || (rg->hi_open && !(d < rg->hi)))
        return;
    if (once && rg->alone) {
        /* Its only hit decides the entry: no stamps to keep. */
        c->sc->cand[c->ncand++] = rg->posting >> GROUP_BITS;
        return;
    }
    take_posting(c, rg->posting);
    if (rg->also != NO_POSTING)
        take_posting(c, rg->also);
}

/* Reports every range of rt holding d among ranges[l, r) below tree node
 * t, visiting only spans whose highest upper bound reaches d. */
static void stab_span(struct match_ctx *c, const struct rtree *rt, size_t t, size_t l, size_t r,
                      size_t upto, double d, bool once)
{
    if (l >= upto || rt->maxhi[t] < d)
        return;
    if (r - l == 1) {
        hit_range(c, &rt->ranges[l], d, once);
        return;
    }
    stab_span(c, rt, 2 * t, l, (l + r) / 2, upto, d, once);
    stab_span(c, rt, 2 * t + 1, (l + r) / 2, r, upto, d, once);
}

/* Reports every range of rt that holds d. */
static void stab(struct match_ctx *c, const struct rtree *rt, double d, bool once)
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
        stab_span(c, rt, 1, 0, rt->n, lo, d, once);
        return;
    }
    while (lo-- > 0 && rt->ranges[lo].lo + rt->maxw >= d)
        if (rt->ranges[lo].hi >= d)
            hit_range(c, &rt->ranges[lo], d, once);
}

static void lookup_number(struct match_ctx *c, uint32_t node, double d)
{
    const struct pnode *p = &c->m->nodes[node];
    eb_matcher_scratch *sc = c->sc;

    if (p->kinds & (1u << EB_ANCHOR_NUMBER))
        lookup(c, node, EB_ANCHOR_NUMBER, hash_number(d), NULL, 0, d == 0 ? 0 : d);
    stab(c, &p->ranges, d, false);
    if (p->keep_numbers) {
        grow((void **)&sc->nums, &sc->capnums, sc->nnums + 1, sizeof *sc->nums);
        sc->nums[sc->nnums++] = (struct num_at){ node, d };
    }
}

/* Once the event's values are all looked up: stabs the nested ranges of
 * the keys it hit with its numbers at their paths. A sub is active once per
 * event, and its ranges are in no other tree, so with one number at its
 * path each of its ranges is hit at most once. */
static void stab_nested(struct match_ctx *c)
{
    const eb_matcher_scratch *sc = c->sc;

    for (size_t i = 0; i < sc->nactive; i++) {
        const struct sub *sb = &c->m->subs[sc->active[i]];
        size_t n = 0;

        for (size_t k = 0; k < sc->nnums; k++)
            n += sc->nums[k].node == sb->node;
        for (size_t k = 0; k < sc->nnums; k++)
            if (sc->nums[k].node == sb->node)
                stab(c, &sb->t, sc->nums[k].d, n == 1);
    }
}

static void lookup_scalar(struct match_ctx *c, uint32_t node, const struct eb_scalar *v)
{
    unsigned kinds = c->m->nodes[node].kinds;

    /* Every leaf value, null included, satisfies "exists": true. */
    if (kinds & (1u << EB_ANCHOR_EXISTS))
        lookup(c, node, EB_ANCHOR_EXISTS, FNV_OFFSET, NULL, 0, 0);
    switch (v->kind) {
    case EB_SCALAR_STRING:
        if (kinds & (1u << EB_ANCHOR_STRING))
            lookup(c, node, EB_ANCHOR_STRING, hash_text(v->s, v->len, EB_ANCHOR_STRING), v->s,
                   v->len, 0);
        if (kinds & (1u << EB_ANCHOR_CI))
            lookup(c, node, EB_ANCHOR_CI, hash_text(v->s, v->len, EB_ANCHOR_CI), v->s, v->len,
                   0);
        for (enum eb_anchor_kind k = EB_ANCHOR_PREFIX; k <= EB_ANCHOR_SUFFIX_CI; k++)
            if (kinds & (1u << k))
                lookup_affixes(c, node, k, v->s, v->len);
        break;
    case EB_SCALAR_NUMBER:
        lookup_number(c, node, v->num);
        break;
    case EB_SCALAR_TRUE:
        if (kinds & (1u << EB_ANCHOR_TRUE))
            lookup(c, node, EB_ANCHOR_TRUE, FNV_OFFSET, NULL, 0, 0);
        break;
    case EB_SCALAR_FALSE:
        if (kinds & (1u << EB_ANCHOR_FALSE))
            lookup(c, node, EB_ANCHOR_FALSE, FNV_OFFSET, NULL, 0, 0);
        break;
    case EB_SCALAR_NULL:
        if (kinds & (1u << EB_ANCHOR_NULL))
            lookup(c, node, EB_ANCHOR_NULL, FNV_OFFSET, NULL, 0, 0);
        break;
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
    if (p->kinds != 0)
        visit_leaves(c, node, v, 0);
    if (nchildren > 0)
        descend(c, node, v);
}

/* Writes the ids of the entry whose hot part is h, which matched, at
 * out[n..]; returns the new number of ids in out. */
static size_t put_ids(const eb_matcher *m, const struct hot *h, uint32_t *out, size_t n)
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
    sc->nnums = 0;
    if (++sc->gen == 0) {
        /* The stamps wrapped: forget them all, once in 2^32 events. */
        memset(sc->hits, 0, m->nentries * sizeof *sc->hits);
        memset(sc->test_stamp, 0, m->ntests * sizeof *sc->test_stamp);
        memset(sc->crossed, 0, m->nnodes * sizeof *sc->crossed);
        memset(sc->sub_stamp, 0, m->nsubs * sizeof *sc->sub_stamp);
        sc->gen = 1;
    }
}

size_t eb_matcher_match(const eb_matcher *m, const json_t *event, eb_matcher_scratch *sc,
                        const uint32_t **ids)
{
    struct match_ctx c = { m, sc, 0, false, false };
    size_t nout = 0;

    assert(m != NULL && m->built && sc != NULL && sc->m == m && ids != NULL);
    begin(m, sc);
    if (json_is_object(event))
        descend(&c, 0, event);
    stab_nested(&c);
    for (size_t i = 0; i < m->nresidual; i++)
        sc->cand[c.ncand++] = m->residual[i];
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
    if (c->m->nodes[v->node].kinds != 0)
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
    struct match_ctx c = { m, sc, 0, false, false };
    const eb_flat *f = sc->flat;
    size_t nout = 0;

    if (f->vals[0].kind == EB_FV_OBJECT)
        flat_descend(&c, f, &f->vals[0]);
    stab_nested(&c);
    for (size_t i = 0; i < m->nresidual; i++)
        sc->cand[c.ncand++] = m->residual[i];
    for (size_t i = 0; i < c.ncand; i++) {
        const struct hot *h = &m->hot[sc->cand[i]];
        const struct entry *e;

        /* Candidates are scattered over the entries: ask for the next
         * ones' records while this one is decided. */
        if (i + PREFETCH < c.ncand)
            __builtin_prefetch(&m->hot[sc->cand[i + PREFETCH]]);

        if (h->exact) {
            size_t g = 0;

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
    struct match_ctx c = { m, sc, 0, true, false };
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
