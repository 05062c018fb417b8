/* Internal to matcher.c and matcher_build.c: the multi-pattern matcher's
 * index (see pattern.h, eb_matcher) as built by matcher_build.c and read by
 * matcher.c, and the hashing both sides of it share. Design and costs:
 * docs/decisions/0007-matcher-index.md, 0012-flattened-matching.md,
 * 0015-shared-index-state.md and 0016-key-chains.md.
 */
#ifndef EB_MATCHER_INTERNAL_H
#define EB_MATCHER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flatten.h"
#include "pattern.h"
#include "pattern_anchor.h"
#include "pattern_internal.h"

struct field;

/* Affix kinds, in the order of struct pnode's lens[]. */
enum { AFFIX_PREFIX, AFFIX_PREFIX_CI, AFFIX_SUFFIX, AFFIX_SUFFIX_CI, AFFIXES };

/* Out of memory aborts: see STYLE.md. */
static inline void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n != 0 ? n : 1);
    if (p == NULL) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    return p;
}

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);

    if (p == NULL) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* Grows *arr (of *cap elements of size bytes) to hold at least need. */
static inline void grow(void **arr, size_t *cap, size_t need, size_t size)
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

/* The anchor group a posting names. */
static inline uint32_t posting_group(uint32_t posting)
{
    return posting & ((1u << GROUP_BITS) - 1);
}

/* One distinct pattern (eb_pattern_same()) and every id it was added
 * under: patterns written alike are indexed and decided once. */
struct entry {
    uint32_t id;
    uint32_t more, nmore;  /* further ids, counted while adding; then see struct hot */
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
    bool lo_open, hi_open;
};

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

/* The index at one place: a node of the path trie (the event's values at
 * that path) or a sub (the same values, reached through a key): the anchor
 * kinds its keys have, the distinct affix lengths among them, and its
 * numeric ranges. */
struct pnode {
    unsigned kinds;            /* bit per enum eb_anchor_kind keyed here */
    size_t *lens[AFFIXES];     /* distinct affix lengths, ascending */
    size_t nlens[AFFIXES], caplens[AFFIXES];
    struct rtree ranges;
    uint64_t filter;           /* bit key_bit() of each of its keys' hashes */
    uint32_t lfirst, nlist;    /* when listed: its keys, m->lkeys[lfirst .. lfirst + nlist) */
    uint32_t cfirst, nchecked; /* its checked keys, m->ckeys[cfirst .. cfirst + nchecked) */
    bool listed;               /* few keys: scanned, not in the table (LIST_KEYS) */
    bool keep;                 /* a sub is at this trie node: keep the event's values */
    bool guard;                /* some exact entry guards this trie node */
};

/* What hangs under a key at one path (see chain() in matcher_build.c): the
 * keys and ranges of the next field of the patterns that need the key,
 * looked at only when the event hits the key, with the event's values at
 * node. A key's subs form a list through next. Its keys are keys at
 * sub_node(), listed, checked or in the table as struct pnode says. */
struct sub {
    uint32_t node;
    uint32_t next; /* NO_SUB: the last */
    struct pnode ix;
};
#define NO_SUB UINT32_MAX

/* An anchor as recorded by eb_matcher_add(), indexed by eb_matcher_build(). */
struct rec {
    uint32_t node, posting;
    enum eb_anchor_kind kind;
    const char *s;
    size_t len;
    double num;
    double lo, hi; /* EB_ANCHOR_RANGE */
    bool lo_open, hi_open;
    const struct cond *verify; /* see struct eb_anchor */
};

/* A key of the hash index: (path, kind, value) -> postings[off..off+n),
 * then nv pairs (posting, check) taken only when the value that hits the
 * key satisfies m->checks[check] (a wildcard with '*': its prefix or
 * suffix is the key); and what hangs under it (sub, or NO_SUB). A checked
 * key (KEY_CHECKED) has its check in len. 32 bytes, so that a key is one
 * cache line. */
struct key {
    union {
        const char *s; /* text kinds: s[0..len) */
        double num;    /* EB_ANCHOR_NUMBER */
    } v;
    uint32_t len;
    uint32_t at;   /* at << 4 | kind; at: a trie node, or sub_node() of a sub */
    uint32_t off, n, nv;
    uint32_t sub;
};
#define KEY_KIND_BITS 4

/* The kind of a checked key, past enum eb_anchor_kind: a value at its path
 * hits it when it satisfies m->checks[len] (an anything-but or a cidr that
 * is a step of a chain, see chain()). Checked keys are listed apart in
 * their index and tried on every value. */
#define KEY_CHECKED EB_ANCHOR_KINDS
#define CHECKED_KEYS 8 /* at most, per index */

/* An index (struct pnode) with at most this many keys keeps them in a list
 * that a lookup scans, in cache with the index, instead of hashing the
 * value and probing the table: most subs, and trie nodes such as
 * datacontenttype's. */
#define LIST_KEYS 8

/* A key while the matcher is built (keys are found in a dense array of
 * these through kidx), with its hash and the number of its subs. */
struct bkey {
    struct key k;
    uint64_t hash;
    uint16_t nsubs;
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
    uint32_t *ids;   /* per entry, its (first) id */
    /* Entries [0, ndecided) match once all their groups are hit; those in
     * [ndecided, nunguarded) too when the event has no array at a guard;
     * the rest are decided as candidates (see renumber_entries()). */
    uint32_t ndecided, nunguarded;
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
    const struct cond **checks; /* distinct conditions of verified postings */
    size_t nchecks, capchecks;
    uint32_t *ctable; /* while building: checks + 1 by hash (0: empty) */
    size_t ctmask;
    struct key *lkeys; /* the keys of listed indexes (struct pnode), index by index */
    struct key *ckeys; /* the checked keys of the indexes, index by index */
    struct key *keys; /* open addressing, capacity a power of two */
    size_t keymask;
    struct bkey *bkeys; /* while building: every key, found through kidx */
    uint32_t *ktags; /* per slot of keys: key_tag() of its hash, 0 when empty */
    uint32_t *kidx; /* while building: key index + 1 by hash (0: empty) */
    size_t kidxmask, nkeys, capkeys;
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
    uint32_t value;       /* counts the values looked up, to tell them apart */
    uint32_t *check_stamp; /* per check: value when check_val holds its result */
    bool *check_val;
    uint32_t *cand;
    uint32_t *later; /* hit entries of class DECIDED_UNGUARDED, decided after the walk */
    uint32_t *out;
    uint32_t *sub_stamp; /* per sub: gen when it is in active */
    uint32_t *active;    /* the subs whose key this event hits */
    size_t nactive;
    /* The event's values at trie nodes that subs look at: per node, when
     * val_stamp[node] is gen, vals[val_head[node]] and on through next. */
    struct val_at { struct eb_scalar v; uint32_t next; } *vals;
    size_t nvals, capvals;
    uint32_t *val_stamp, *val_head;
    eb_flat *flat;     /* the event being matched, flattened along m->trie */
    uint32_t *crossed; /* per trie node: gen when this event has an array there */
};

/* The node under which the inner keys of sub sb are in the key table:
 * past every trie node, so that they never meet the keys of a path. */
static inline uint32_t sub_node(const eb_matcher *m, uint32_t sb)
{
    return (uint32_t)m->nnodes + sb;
}

/* ---- Hashing ------------------------------------------------------------- */

static inline unsigned char fold(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

static inline bool kind_ci(enum eb_anchor_kind k)
{
    return k == EB_ANCHOR_CI || k == EB_ANCHOR_PREFIX_CI || k == EB_ANCHOR_SUFFIX_CI;
}

static inline bool kind_suffix(enum eb_anchor_kind k)
{
    return k == EB_ANCHOR_SUFFIX || k == EB_ANCHOR_SUFFIX_CI;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t fnv_step(uint64_t h, unsigned char ch)
{
    return (h ^ ch) * FNV_PRIME;
}

/* Mixes the running byte hash with the path and the kind. */
static inline uint64_t hash_final(uint64_t h, uint32_t node, enum eb_anchor_kind kind)
{
    h ^= ((uint64_t)node << 8 | (uint64_t)kind) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

/* ASCII case folding of the eight bytes of w at once: 'A'..'Z' get 0x20
 * added, like fold() on each byte. */
static inline uint64_t fold8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    uint64_t low7 = w & 0x7f * ones;
    uint64_t above_z = low7 + (0x80 - 'Z' - 1) * ones; /* high bit: byte > 'Z' */
    uint64_t from_a = low7 + (0x80 - 'A') * ones;      /* high bit: byte >= 'A' */
    uint64_t upper = ~w & (from_a ^ above_z) & 0x80 * ones;

    return w | upper >> 2;
}

/* Hashes s[0..len) eight bytes at a time, folded when ci: exact strings
 * and equals-ignore-case, which are hashed whole (affixes are hashed a
 * byte at a time, so that every length is a step on the way). */
static inline uint64_t hash_words(const char *s, size_t len, bool ci)
{
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    uint64_t h = FNV_OFFSET ^ (uint64_t)len * k, w;
    const char *end = s + len;

    for (; end - s >= 8; s += 8) {
        memcpy(&w, s, 8);
        h = (h ^ (ci ? fold8(w) : w)) * k;
        h ^= h >> 29;
    }
    if (s < end) {
        /* The last bytes, by whole loads that may overlap bytes already
         * hashed (the length is in h): a copy of the bytes into a word
         * would stall its load on the partial stores. */
        size_t r = (size_t)(end - s);

        if (len >= 8) {
            memcpy(&w, end - 8, 8);
        } else if (r >= 4) {
            uint32_t a, b;

            memcpy(&a, s, 4);
            memcpy(&b, end - 4, 4);
            w = (uint64_t)a | (uint64_t)b << 32;
        } else {
            w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[r / 2] << 8 |
                (uint64_t)(unsigned char)end[-1] << 16;
        }
        h = (h ^ (ci ? fold8(w) : w)) * k;
        h ^= h >> 29;
    }
    return h;
}

/* Hashes s[0..len) as the kind reads it: folded for the -ignore-case
 * kinds, backwards for suffixes (so that a suffix can be hashed while
 * walking an event string from its end). */
static inline uint64_t hash_text(const char *s, size_t len, enum eb_anchor_kind kind)
{
    uint64_t h = FNV_OFFSET;
    bool ci = kind_ci(kind);

    if (kind == EB_ANCHOR_STRING || kind == EB_ANCHOR_CI)
        return hash_words(s, len, ci);
    if (kind_suffix(kind)) {
        for (size_t i = len; i-- > 0;)
            h = fnv_step(h, ci ? fold((unsigned char)s[i]) : (unsigned char)s[i]);
    } else {
        for (size_t i = 0; i < len; i++)
            h = fnv_step(h, ci ? fold((unsigned char)s[i]) : (unsigned char)s[i]);
    }
    return h;
}

static inline uint64_t hash_number(double d)
{
    uint64_t bits;

    /* Compared by value: -0 and 0 are one key. */
    if (d == 0)
        d = 0;
    memcpy(&bits, &d, sizeof bits);
    return FNV_OFFSET ^ bits;
}

static inline bool kind_text(enum eb_anchor_kind k)
{
    return k == EB_ANCHOR_STRING || k == EB_ANCHOR_CI || k == EB_ANCHOR_PREFIX ||
           k == EB_ANCHOR_PREFIX_CI || k == EB_ANCHOR_SUFFIX || k == EB_ANCHOR_SUFFIX_CI;
}

static inline bool text_equal(const char *a, const char *b, size_t len, bool ci)
{
    if (!ci) {
        /* Keys are short: words in line rather than a call to memcmp. */
        uint64_t x, y;

        for (; len >= 8; a += 8, b += 8, len -= 8) {
            memcpy(&x, a, 8);
            memcpy(&y, b, 8);
            if (x != y)
                return false;
        }
        for (; len > 0; a++, b++, len--)
            if (*a != *b)
                return false;
        return true;
    }
    for (size_t i = 0; i < len; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return false;
    return true;
}

/* Whether key k is (at, kind, s/len or num). */
static inline bool key_is(const struct key *k, uint32_t at, enum eb_anchor_kind kind,
                          const char *s, size_t len, double num)
{
    if (k->at != (at << KEY_KIND_BITS | (uint32_t)kind))
        return false;
    if ((int)kind == KEY_CHECKED)
        return k->len == len; /* the check */
    if (kind_text(kind))
        return k->len == len && text_equal(k->v.s, s, len, kind_ci(kind));
    return kind != EB_ANCHOR_NUMBER || k->v.num == num;
}

/* The tag of a key's hash in m->ktags: its high half, never 0. Probes
 * read the tags (4 bytes a slot, mostly in cache) and a key only when its
 * tag is the one looked for. */
static inline uint32_t key_tag(uint64_t h)
{
    return (uint32_t)(h >> 32) | 1;
}

/* The bit of hash h in struct pnode's filter: a lookup whose bit is not
 * set misses without a probe of the table. */
static inline uint64_t key_bit(uint64_t h)
{
    return 1ULL << (h >> 58);
}

/* Finds the key (at, kind, s/len or num) with hash h in the built table;
 * NULL when absent. at: a trie node, or sub_node() of a sub. */
static inline const struct key *key_find(const eb_matcher *m, uint64_t h, uint32_t at,
                                         enum eb_anchor_kind kind, const char *s, size_t len,
                                         double num)
{
    uint32_t tag = key_tag(h);

    for (size_t i = h & m->keymask;; i = (i + 1) & m->keymask) {
        uint32_t t = m->ktags[i];

        if (t == 0)
            return NULL;
        if (t == tag && key_is(&m->keys[i], at, kind, s, len, num))
            return &m->keys[i];
    }
}

/* The index of the affix kind k in struct pnode's lens[]; -1 for other kinds. */
static inline int affix_of(enum eb_anchor_kind k)
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


#endif
