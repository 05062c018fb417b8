/* The flattened event view (flatten.h): a path trie and a one-pass JSON
 * scanner that keeps only what lies on the trie's paths.
 *
 * The scanner accepts exactly the documents that jansson's json_loadb()
 * accepts with JSON_DECODE_ANY, because data that does not parse must show
 * no "data" fields, as in ce_to_json(): strict RFC 8259 syntax; strings of
 * valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF),
 * no raw control characters, no \u0000 and no lone surrogate escapes;
 * integers (no '.', 'e' or 'E') within int64; reals that do not overflow a
 * double; values nested at most JSON_PARSER_MAX_DEPTH (2048) deep.
 */
#include "flatten.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cejson.h"
#include "flatten_internal.h"

#define ATTR(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_##x
#define DATA(x) IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_##x

/* jansson's limit on nesting (jansson_config.h), which the scanner keeps. */
#define MAX_DEPTH JSON_PARSER_MAX_DEPTH

/* A string value whose bytes are in f->str, at offset first, until the end
 * of the flatten (the buffer may move while it grows). */
#define IN_STR ((const char *)1)

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

static void grow_to(void **arr, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 16;

    while (n < need)
        n *= 2;
    *arr = xrealloc(*arr, n * size);
    *cap = n;
}

/* Grows *arr (*cap elements of size bytes) to hold at least need. Called
 * for every value kept, and nearly always there is room: that test is
 * inline, the growing is not. */
static inline void grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need > *cap)
        grow_to(arr, cap, need, size);
}

/* ---- Path trie ----------------------------------------------------------- */

/* A child in its parent's table of few children. */
struct tkid {
    uint64_t head; /* the first bytes of its name (up to 8), zero-padded */
    uint32_t len;  /* its name's length */
    uint32_t id;   /* EB_FTRIE_NONE: an empty slot */
};

/* Slots in the table of a node with at most FEW_CHILDREN children: at most
 * half full, so that a probe nearly always ends at its first slot. */
#define KID_SLOTS 32

struct tnode {
    const char *name;
    size_t len;
    uint64_t head; /* the first bytes of name (up to 8), zero-padded */
    uint64_t lens; /* bit min(len, 63) of every child: most keys miss fast */
    uint32_t parent;
    bool reserved; /* a child of the root named as a reserved member */
    uint32_t *children;
    size_t nchildren, capchildren;
    struct tkid *kids; /* KID_SLOTS slots while there are few children, else NULL */
};

struct tslot {
    uint64_t hash;
    uint32_t node; /* EB_FTRIE_NONE: empty */
};

/* The members of the JSON view that are not attributes of the map, in
 * the order of eb_wevent's fixed[] and then the data's two. */
enum { RES_SPECVERSION, RES_ID, RES_SOURCE, RES_TYPE, RES_DATA, RES_DATA_BASE64, NRESERVED };

struct eb_ftrie {
    struct tnode *nodes;
    size_t nnodes, capnodes;
    struct tslot *slots; /* (parent, name) -> node, open addressing */
    size_t mask;
    /* The root's children named as the reserved members (EB_FTRIE_NONE
     * when absent), found once here instead of on every event. */
    uint32_t reserved[NRESERVED];
};

/* Returns the RES_ index of the reserved member name[0..len), or -1. */
static int reserved_index(const char *name, size_t len)
{
    switch (len) {
    case 2:
        return memcmp(name, "id", 2) == 0 ? RES_ID : -1;
    case 4:
        return memcmp(name, "type", 4) == 0   ? RES_TYPE
               : memcmp(name, "data", 4) == 0 ? RES_DATA
                                              : -1;
    case 6:
        return memcmp(name, "source", 6) == 0 ? RES_SOURCE : -1;
    case 11:
        return memcmp(name, "specversion", 11) == 0   ? RES_SPECVERSION
               : memcmp(name, "data_base64", 11) == 0 ? RES_DATA_BASE64
                                                      : -1;
    default:
        return -1;
    }
}

static uint64_t name_hash(uint32_t parent, const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)parent * 0x9e3779b97f4a7c15ULL);

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= h >> 29;
    return h;
}

static void slots_insert(struct tslot *slots, size_t mask, uint64_t h, uint32_t node)
{
    size_t i;

    for (i = h & mask; slots[i].node != EB_FTRIE_NONE; i = (i + 1) & mask)
        ;
    slots[i].hash = h;
    slots[i].node = node;
}

static void slots_resize(eb_ftrie *t, size_t cap)
{
    struct tslot *old = t->slots;
    size_t oldcap = old ? t->mask + 1 : 0;

    t->slots = xrealloc(NULL, cap * sizeof *t->slots);
    for (size_t i = 0; i < cap; i++)
        t->slots[i].node = EB_FTRIE_NONE;
    t->mask = cap - 1;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].node != EB_FTRIE_NONE)
            slots_insert(t->slots, t->mask, old[i].hash, old[i].node);
    free(old);
}

eb_ftrie *eb_ftrie_new(void)
{
    eb_ftrie *t = xrealloc(NULL, sizeof *t);

    memset(t, 0, sizeof *t);
    grow((void **)&t->nodes, &t->capnodes, 1, sizeof *t->nodes);
    memset(&t->nodes[0], 0, sizeof t->nodes[0]);
    t->nodes[0].parent = EB_FTRIE_NONE;
    t->nnodes = 1;
    for (int i = 0; i < NRESERVED; i++)
        t->reserved[i] = EB_FTRIE_NONE;
    slots_resize(t, 16);
    return t;
}

static uint32_t find_hashed(const eb_ftrie *t, uint32_t parent, const char *s, size_t len,
                            uint64_t h)
{
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const struct tslot *sl = &t->slots[i];
        const struct tnode *n;

        if (sl->node == EB_FTRIE_NONE)
            return EB_FTRIE_NONE;
        if (sl->hash != h)
            continue;
        n = &t->nodes[sl->node];
        if (n->parent == parent && n->len == len && memcmp(n->name, s, len) == 0)
            return sl->node;
    }
}

static uint64_t len_bit(size_t len)
{
    return 1ULL << (len < 63 ? len : 63);
}

/* The first bytes of s[0..len), up to 8, as one word. Shorter names are
 * put together in a register: a copy of fewer than 8 bytes into a word in
 * memory, read back at once, stalls on the store. */
static uint64_t head_of(const char *s, size_t len)
{
    uint64_t h = 0;

    if (len >= 8) {
        memcpy(&h, s, 8);
        return h;
    }
    for (size_t i = 0; i < len; i++)
        h |= (uint64_t)(unsigned char)s[i] << (8 * i);
    return h;
}

/* Nodes with at most this many children are searched in a small table of
 * their children's first 8 bytes and lengths, not by hashing whole names:
 * most member names are short, and those decide them. */
#define FEW_CHILDREN 16

/* The first slot to probe in a table of few children for a name with this
 * head and length. */
static size_t kid_slot(uint64_t head, size_t len)
{
    return (size_t)(((head ^ len) * 0x9e3779b97f4a7c15ULL) >> 59) & (KID_SLOTS - 1);
}

/* eb_ftrie_find(), with head the value head_of(name, len) gives, computed
 * by the caller, or not yet (have_head false). */
static inline uint32_t find_child(const eb_ftrie *t, uint32_t parent, const char *name,
                                  size_t len, uint64_t head, bool have_head)
{
    const struct tnode *p = &t->nodes[parent];

    if (!(p->lens & len_bit(len)))
        return EB_FTRIE_NONE;
    if (p->kids != NULL) {
        if (!have_head)
            head = head_of(name, len);
        for (size_t i = kid_slot(head, len);; i = (i + 1) & (KID_SLOTS - 1)) {
            const struct tkid *k = &p->kids[i];

            if (k->id == EB_FTRIE_NONE)
                return EB_FTRIE_NONE;
            if (k->len == len && k->head == head &&
                (len <= 8 || memcmp(t->nodes[k->id].name + 8, name + 8, len - 8) == 0))
                return k->id;
        }
    }
    return find_hashed(t, parent, name, len, name_hash(parent, name, len));
}

uint32_t eb_ftrie_find(const eb_ftrie *t, uint32_t parent, const char *name, size_t len)
{
    return find_child(t, parent, name, len, 0, false);
}

uint32_t eb_ftrie_add(eb_ftrie *t, uint32_t parent, const char *name, size_t len)
{
    uint64_t h = name_hash(parent, name, len);
    uint32_t id = find_hashed(t, parent, name, len, h);
    struct tnode *p;

    assert(parent < t->nnodes);
    if (id != EB_FTRIE_NONE)
        return id;
    if (t->nnodes >= UINT32_MAX - 1) {
        fputs("cebusd: too many pattern paths\n", stderr);
        abort();
    }
    id = (uint32_t)t->nnodes;
    grow((void **)&t->nodes, &t->capnodes, t->nnodes + 1, sizeof *t->nodes);
    t->nodes[id] =
        (struct tnode){ .name = name, .len = len, .head = head_of(name, len), .parent = parent };
    t->nnodes++;
    p = &t->nodes[parent];
    p->lens |= len_bit(len);
    grow((void **)&p->children, &p->capchildren, p->nchildren + 1, sizeof *p->children);
    p->children[p->nchildren++] = id;
    if (p->nchildren <= FEW_CHILDREN && len < UINT32_MAX &&
        (p->kids != NULL || p->nchildren == 1)) {
        size_t i;

        if (p->kids == NULL) {
            p->kids = xrealloc(NULL, KID_SLOTS * sizeof *p->kids);
            for (i = 0; i < KID_SLOTS; i++)
                p->kids[i].id = EB_FTRIE_NONE;
        }
        for (i = kid_slot(t->nodes[id].head, len); p->kids[i].id != EB_FTRIE_NONE;
             i = (i + 1) & (KID_SLOTS - 1))
            ;
        p->kids[i] = (struct tkid){ .head = t->nodes[id].head, .len = (uint32_t)len, .id = id };
    } else {
        /* Many children, or a name too long for a slot: hashed lookups. */
        free(p->kids);
        p->kids = NULL;
    }
    if (parent == EB_FTRIE_ROOT) {
        int r = reserved_index(name, len);

        if (r >= 0)
            t->reserved[r] = id;
        t->nodes[id].reserved = r >= 0;
    }
    if (t->nnodes * 2 > t->mask + 1)
        slots_resize(t, (t->mask + 1) * 2);
    slots_insert(t->slots, t->mask, h, id);
    return id;
}

size_t eb_ftrie_size(const eb_ftrie *t)
{
    return t->nnodes;
}

const char *eb_ftrie_name(const eb_ftrie *t, uint32_t node, size_t *len)
{
    *len = t->nodes[node].len;
    return t->nodes[node].name;
}

uint32_t eb_ftrie_parent(const eb_ftrie *t, uint32_t node)
{
    return t->nodes[node].parent;
}

const uint32_t *eb_ftrie_children(const eb_ftrie *t, uint32_t node, size_t *n)
{
    *n = t->nodes[node].nchildren;
    return t->nodes[node].children;
}

void eb_ftrie_free(eb_ftrie *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nnodes; i++) {
        free(t->nodes[i].children);
        free(t->nodes[i].kids);
    }
    free(t->nodes);
    free(t->slots);
    free(t);
}

/* ---- Working memory -------------------------------------------------------- */

eb_flat *eb_flat_new(void)
{
    eb_flat *f = xrealloc(NULL, sizeof *f);

    memset(f, 0, sizeof *f);
    return f;
}

void eb_flat_free(eb_flat *f)
{
    if (f == NULL)
        return;
    free(f->vals);
    free(f->kids);
    free(f->stack);
    free(f->str);
    free(f->stamp);
    free(f->slot);
    free(f->attrs);
    free(f->ctbuf);
    free(f);
}

struct eb_wattr *eb_flat_attrs(eb_flat *f, size_t n)
{
    grow((void **)&f->attrs, &f->capattrs, n, sizeof *f->attrs);
    return f->attrs;
}

static inline uint32_t new_val(eb_flat *f, enum eb_fkind kind, uint32_t node)
{
    grow((void **)&f->vals, &f->capvals, f->nvals + 1, sizeof *f->vals);
    f->vals[f->nvals] = (struct eb_fval){ .kind = kind, .node = node };
    return (uint32_t)f->nvals++;
}

static void push_kid(eb_flat *f, uint32_t v)
{
    grow((void **)&f->stack, &f->capstack, f->nstack + 1, sizeof *f->stack);
    f->stack[f->nstack++] = v;
}

/* Moves the kids pushed since base from the stack to container c. */
static void close_container(eb_flat *f, uint32_t c, size_t base)
{
    size_t n = f->nstack - base;

    if (n > 0) {
        uint32_t *to, *from = f->stack + base;

        grow((void **)&f->kids, &f->capkids, f->nkids + n, sizeof *f->kids);
        /* Containers keep a few kids: a loop beats a memcpy call. */
        to = f->kids + f->nkids;
        for (size_t i = 0; i < n; i++)
            to[i] = from[i];
    }
    f->vals[c].first = f->nkids;
    f->vals[c].n = n;
    f->nkids += n;
    f->nstack = base;
}

/* Starts an object: a new serial, so that its members can be told apart
 * from same-named members of other objects. */
static uint32_t open_object(eb_flat *f)
{
    if (++f->serial == 0) {
        /* Wrapped: forget every stamp, once in 2^32 objects. */
        memset(f->stamp, 0, f->capnodes * sizeof *f->stamp);
        f->serial = 1;
    }
    return f->serial;
}

/* Adds member value v (under trie node child) to the object being built
 * with serial ser. A name seen before in this object replaces the earlier
 * value, as jansson's parser and json_object_set() do. */
static inline void add_member(eb_flat *f, uint32_t ser, uint32_t child, uint32_t v)
{
    if (f->stamp[child] == ser) {
        f->stack[f->slot[child]] = v;
        return;
    }
    f->stamp[child] = ser;
    f->slot[child] = (uint32_t)f->nstack;
    push_kid(f, v);
}

/* Reserves room for n more bytes in f->str; returns where they go. */
static char *str_reserve(eb_flat *f, size_t n)
{
    grow((void **)&f->str, &f->capstr, f->nstr + n + 1, 1);
    return f->str + f->nstr;
}

/* A string value whose bytes were just written at f->str + off. */
static uint32_t str_val(eb_flat *f, uint32_t node, size_t off, size_t len)
{
    uint32_t v = new_val(f, EB_FV_STRING, node);

    f->vals[v].s = IN_STR;
    f->vals[v].first = off;
    f->vals[v].len = len;
    return v;
}

/* ---- UTF-8, as jansson checks it (utf.c) ------------------------------------ */

/* Returns the length of the valid UTF-8 sequence at p[0..avail), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned char u = p[0];
    size_t n;
    uint32_t v;

    if (u < 0x80)
        return 1;
    if (u < 0xC2)
        return 0; /* a continuation byte, or an overlong 2-byte lead */
    if (u <= 0xDF) {
        n = 2;
        v = u & 0x1F;
    } else if (u <= 0xEF) {
        n = 3;
        v = u & 0x0F;
    } else if (u <= 0xF4) {
        n = 4;
        v = u & 0x07;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
        (n == 4 && v < 0x10000))
        return 0;
    return n;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Returns the first byte in p[0..end) that is not ASCII, or end: 16 bytes
 * at a time with SSE2, else 8. */
static const unsigned char *ascii_run(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned bits = (unsigned)_mm_movemask_epi8(x);

        if (bits != 0)
            return p + __builtin_ctz(bits);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t w;

        memcpy(&w, p, 8);
        if (w & HIGHS)
            break;
        p += 8;
    }
    while (p < end && *p < 0x80)
        p++;
    return p;
}

/* Whether s[0..len) is UTF-8 as jansson checks it. Attribute values are
 * nearly always ASCII, which is checked a block at a time. */
static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    for (;;) {
        size_t n;

        p = ascii_run(p, end);
        if (p == end)
            return true;
        n = utf8_seq(p, (size_t)(end - p));
        if (n == 0)
            return false;
        p += n;
    }
}

/* ---- JSON scanner ------------------------------------------------------------ */

struct scan {
    eb_flat *f;
    const eb_ftrie *t;
    const unsigned char *p, *end;
    bool bad;
};

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Skips a run of whitespace longer than one byte, 16 bytes at a time with
 * SSE2 (indented documents have long runs of spaces). */
static void skip_ws_run(struct scan *sc)
{
    const unsigned char *p = sc->p, *end = sc->end;

#ifdef __SSE2__
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i sp = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\t')));
        __m128i nl = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\n')),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\r')));
        __m128i ws = _mm_or_si128(sp, nl);
        unsigned other = ~(unsigned)_mm_movemask_epi8(ws) & 0xFFFFu;

        if (other != 0) {
            sc->p = p + __builtin_ctz(other);
            return;
        }
        p += 16;
    }
#endif
    while (p < end && is_ws(*p))
        p++;
    sc->p = p;
}

/* Compact JSON, as cebusd stores it, has no whitespace at all: one compare
 * decides most calls. */
static inline void skip_ws(struct scan *sc)
{
    if (sc->p < sc->end && *sc->p <= ' ' && is_ws(*sc->p)) {
        if (sc->end - sc->p < 2 || !is_ws(sc->p[1])) {
            sc->p++;
            return;
        }
        skip_ws_run(sc);
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at p; -1 when they are not. */
static int32_t read_u4(const struct scan *sc, const unsigned char *p)
{
    int32_t v = 0;

    if (sc->end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t put_utf8(char *out, int32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Returns a mask with the high bit of each of the 8 bytes of w that is a
 * quote, a backslash, a control character or not ASCII (the classic "has
 * zero byte" bit trick); 0 when there is none. The lowest bit set is
 * exact (a borrow only marks bytes above a true hit). */
static uint64_t special_bytes(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), bslash = w ^ (ONES * '\\');
    uint64_t zero_q = (quote - ONES) & ~quote & HIGHS;
    uint64_t zero_b = (bslash - ONES) & ~bslash & HIGHS;
    uint64_t ctrl = (w - ONES * 0x20) & ~w & HIGHS;

    return zero_q | zero_b | ctrl | (w & HIGHS);
}

/* Whether the first byte in memory of a word is its lowest (folded into a
 * constant by the compiler). */
static bool little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;

    memcpy(&first, &one, 1);
    return first == 1;
}

#ifdef __SSE2__
/* A bit for each of the 16 bytes at p that is a quote, a backslash, a
 * control character or not ASCII. */
static inline unsigned special16(const unsigned char *p)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
    __m128i bslash = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));
    /* A signed compare: bytes from 0x80 up are negative, so one compare
     * finds both control characters and bytes that are not ASCII. */
    __m128i low = _mm_cmplt_epi8(x, _mm_set1_epi8(0x20));

    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, bslash), low));
}
#endif

/* Returns the first byte in p[0..end) that ends the plain run of a string's
 * text (a quote, a backslash, a control character or a byte that is not
 * ASCII), or end. Most of the text of an event is such runs, so they are
 * read a block at a time: 16 bytes with SSE2 (every x86-64 has it), else 8
 * as one word; the bytes short of a block one by one. */
static const unsigned char *plain_run(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
    while (end - p >= 16) {
        unsigned bits = special16(p);

        if (bits != 0)
            return p + __builtin_ctz(bits);
        p += 16;
    }
#endif
    while (end - p >= 8) {
        uint64_t w, special;

        memcpy(&w, p, 8);
        special = special_bytes(w);
        if (special != 0) {
            /* Straight to the first special byte, where the word's lowest
             * bytes are the first. */
            if (little_endian())
                return p + (unsigned)__builtin_ctzll(special) / 8;
            break;
        }
        p += 8;
    }
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* Scans the string whose opening quote is at sc->p. Valid: returns true and
 * points s and len at its text: in the input when it has no escapes, else
 * unescaped at out (room for as many bytes as the input has; out NULL when
 * the text is not wanted). */
static bool scan_string_slow(struct scan *sc, char *out, const char **s, size_t *len)
{
    const unsigned char *p = sc->p + 1, *start = p, *end = sc->end;
    size_t o = 0;
    bool escaped = false;

    for (;;) {
        p = plain_run(p, end);
        if (p >= end)
            return false;
        if (*p == '"')
            break;
        if (*p < 0x20)
            return false;
        if (*p >= 0x80) {
            size_t n = utf8_seq(p, (size_t)(end - p));
            if (n == 0)
                return false;
            p += n;
            continue;
        }
        /* A backslash: copy the plain run before it, then the escape. */
        if (out != NULL) {
            size_t run = (size_t)(p - start);
            memcpy(out + o, start, run);
            o += run;
        }
        escaped = true;
        if (end - p < 2)
            return false;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            if (out != NULL) {
                static const char map[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
                out[o++] = strchr(map, p[1])[1];
            }
            p += 2;
            break;
        case 'u': {
            int32_t cp = read_u4(sc, p + 2);

            if (cp < 0)
                return false;
            p += 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int32_t lo;

                if (end - p < 2 || p[0] != '\\' || p[1] != 'u')
                    return false;
                lo = read_u4(sc, p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                p += 6;
                cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;
            } else if (cp == 0) {
                /* Without JSON_ALLOW_NUL, jansson refuses \u0000 in strings
                 * and in keys alike. */
                return false;
            }
            if (out != NULL)
                o += put_utf8(out + o, cp);
            break;
        }
        default:
            return false;
        }
        start = p;
    }
    if (!escaped) {
        *s = (const char *)start;
        *len = (size_t)(p - start);
    } else if (out != NULL) {
        size_t run = (size_t)(p - start);
        memcpy(out + o, start, run);
        *s = out;
        *len = o + run;
    } else {
        *s = NULL;
        *len = 0;
    }
    sc->p = p + 1;
    return true;
}

/* Writes m * 10^scale, correctly rounded to the nearest double (ties to
 * even, as strtod rounds), and returns true when m < 10^19 and |scale| <=
 * 19; else returns false. jansson writes reals with 17 significant digits
 * ("2085.1500000000001"), past what Clinger's fast path takes, so they go
 * here: the value is computed exactly in 128-bit integers, cut to 64
 * significant bits with a sticky bit standing for everything below, and
 * rounded once by the conversion to double. The result lies between 1e-19
 * and 1e38, far from subnormals and overflow, so the final scaling by a
 * power of two is exact. */
static bool exact_decimal(uint64_t m, int scale, double *out)
{
#ifdef __SIZEOF_INT128__
    static const uint64_t pow10u[] = { 1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL,
                                       100000000000000000ULL,
                                       1000000000000000000ULL,
                                       10000000000000000000ULL };
    unsigned __int128 q;
    bool sticky = false;
    int e2 = 0;

    if (m >= pow10u[19] || scale < -19 || scale > 19)
        return false;
    if (m == 0) {
        *out = 0;
        return true;
    }
    if (scale >= 0) {
        q = (unsigned __int128)m * pow10u[scale];
    } else {
        /* m shifted up to the top of 128 bits: the quotient by 10^19 or
         * less still has at least 64 bits. */
        int s = 64 + __builtin_clzll(m);
        unsigned __int128 n = (unsigned __int128)m << s;
        uint64_t d = pow10u[-scale];

        q = n / d;
        sticky = n % d != 0;
        e2 = -s;
    }
    if (q >> 64 != 0) {
        int r = 64 - __builtin_clzll((uint64_t)(q >> 64));

        sticky |= (q & (((unsigned __int128)1 << r) - 1)) != 0;
        q >>= r;
        e2 += r;
    }
    /* 64 bits rounded to 53: the lowest bit is far below the rounding
     * point, so as a sticky bit it only tells "above" from "exactly half". */
    *out = ldexp((double)((uint64_t)q | (uint64_t)sticky), e2);
    return true;
#else
    (void)m;
    (void)scale;
    (void)out;
    return false;
#endif
}

/* Scans a string as scan_string_slow() does, first trying inline the
 * common case: the closing quote is within the next 16 bytes and nothing
 * before it is special, as for nearly every member name and short value. */
static inline bool scan_string(struct scan *sc, char *out, const char **s, size_t *len)
{
#ifdef __SSE2__
    const unsigned char *p = sc->p + 1;

    if (sc->end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i quote = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
        __m128i other = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\')),
                                     _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
        unsigned quotes = (unsigned)_mm_movemask_epi8(quote);
        unsigned others = (unsigned)_mm_movemask_epi8(other);

        /* A quote, and no other special byte before the first one ((quotes
         * - 1) & ~quotes: the bits below the lowest quote). Decided from the
         * masks alone, without reading the byte back. */
        if (quotes != 0 && (others & (quotes - 1) & ~quotes) == 0) {
            unsigned n = (unsigned)__builtin_ctz(quotes);

            *s = (const char *)p;
            *len = n;
            sc->p = p + n + 1;
            return true;
        }
    }
#endif
    return scan_string_slow(sc, out, s, len);
}

/* The number text after its sign. */
static const unsigned char *digits_start(const unsigned char *p)
{
    return *p == '-' ? p + 1 : p;
}

/* Scans a number at sc->p as jansson's lexer does. Valid: returns true and,
 * when want, its value in *num. */
static bool scan_number(struct scan *sc, bool want, double *num)
{
    const unsigned char *p = sc->p, *end = sc->end, *start = p, *digits;
    bool neg = false, real = false;
    size_t intdigits;
    long exp = 0;

    if (*p == '-') {
        neg = true;
        p++;
    }
    digits = p;
    if (p < end && *p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return false;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return false;
    }
    intdigits = (size_t)(p - digits);
    if (p < end && *p == '.') {
        real = true;
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return false;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = false;

        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= end || *p < '0' || *p > '9')
            return false;
        while (p < end && *p >= '0' && *p <= '9') {
            if (exp < 100000)
                exp = exp * 10 + (*p - '0');
            p++;
        }
        if (eneg)
            exp = -exp;
    }
    sc->p = p;
    if (!real) {
        /* strtoll's range: 19 digits may or may not fit. */
        static const char max[] = "9223372036854775807", min[] = "9223372036854775808";

        if (intdigits > 19 ||
            (intdigits == 19 && memcmp(digits, neg ? min : max, 19) > 0))
            return false;
        if (want) {
            if (intdigits <= 18) {
                int64_t v = 0;
                for (const unsigned char *q = digits; q < p; q++)
                    v = v * 10 + (*q - '0');
                *num = (double)(neg ? -v : v);
            } else {
                char buf[24];
                memcpy(buf, start, (size_t)(p - start));
                buf[p - start] = '\0';
                *num = (double)strtoll(buf, NULL, 10);
            }
        }
        return true;
    }
    /* A mantissa m of at most 19 significant digits and a small decimal
     * exponent: converted here, correctly rounded as strtod does it, since
     * strtod costs more than the rest of the scan of a number. */
    if (want && exp > -100 && exp < 100) {
        uint64_t m = 0;
        int sig = 0, scale = (int)exp;
        bool fits = true;

        for (const unsigned char *q = digits_start(start); q < p && *q != 'e' && *q != 'E'; q++) {
            if (*q == '.') {
                /* Each digit after the point divides by 10. */
                for (const unsigned char *r = q + 1; r < p && *r >= '0' && *r <= '9'; r++)
                    scale--;
                continue;
            }
            if (m == 0 && *q == '0') {
                /* Leading zeros carry no digits. */
            } else if (++sig > 19) {
                fits = false;
                break;
            }
            m = m * 10 + (uint64_t)(*q - '0');
        }
        if (fits && sig <= 15 && scale >= -22 && scale <= 22) {
            /* m and 10^|scale| are both exact doubles, so one multiplication
             * or division rounds once, correctly (Clinger's fast path). */
            static const double pow10[] = { 1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                            1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
            double d = (double)m;

            d = scale < 0 ? d / pow10[-scale] : d * pow10[scale];
            *num = neg ? -d : d;
            return true;
        }
        if (fits && exact_decimal(m, scale, num)) {
            if (neg)
                *num = -*num;
            return true;
        }
    }
    /* A real overflows only when it is at least 10^308: skip strtod for the
     * values that are clearly smaller and not wanted. */
    if (!want && intdigits + (size_t)(exp > 0 ? exp : 0) <= 308 && exp < 100000)
        return true;
    {
        size_t n = (size_t)(p - start);
        char *buf = sc->f->numbuf;
        char *heap = NULL;
        double d;

        if (n >= sizeof sc->f->numbuf) {
            heap = xrealloc(NULL, n + 1);
            buf = heap;
        }
        memcpy(buf, start, n);
        buf[n] = '\0';
        d = strtod(buf, NULL);
        free(heap);
        if (isinf(d))
            return false;
        if (want)
            *num = d;
    }
    return true;
}

/* jansson reads one character past a number or a literal and puts it back;
 * a NUL byte put back is lost (its stream buffer takes NUL for "empty"), so
 * one NUL right after such a token is skipped, as json_loadb() does. */
static void skip_lost_nul(struct scan *sc)
{
    if (sc->p < sc->end && *sc->p == '\0')
        sc->p++;
}

/* Matches the literal word at sc->p; jansson reads a whole run of letters,
 * so "truex" is one invalid token. */
static bool scan_word(struct scan *sc, const char *word, size_t len)
{
    const unsigned char *p = sc->p;

    if ((size_t)(sc->end - p) < len || memcmp(p, word, len) != 0)
        return false;
    p += len;
    if (p < sc->end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return false;
    sc->p = p;
    skip_lost_nul(sc);
    return true;
}

static uint32_t scan_value(struct scan *sc, uint32_t node, int depth);

/* The child of node named by the key key[0..len) that scan_string() just
 * read (out: its unescaping buffer). A key read in place is followed by at
 * least its closing quote, so while 8 bytes remain in the text its head is
 * one load, masked to its length, instead of a byte loop. */
static uint32_t find_key(const struct scan *sc, uint32_t node, const char *key, size_t len,
                         const char *out)
{
    uint64_t head;

    if (key == out || sc->end - (const unsigned char *)key < 8)
        return eb_ftrie_find(sc->t, node, key, len);
    memcpy(&head, key, 8);
    if (len < 8 && little_endian())
        head &= (1ULL << (8 * len)) - 1;
    else if (len < 8)
        return eb_ftrie_find(sc->t, node, key, len);
    return find_child(sc->t, node, key, len, head, true);
}


/* Scans an object at sc->p ('{'). When node is a trie node, returns its
 * value, with the members whose names are children of node. */
static uint32_t scan_object(struct scan *sc, uint32_t node, int depth)
{
    eb_flat *f = sc->f;
    uint32_t v = UINT32_MAX, ser = 0;
    size_t base = f->nstack, nchildren = 0;

    if (node != EB_FTRIE_NONE) {
        v = new_val(f, EB_FV_OBJECT, node);
        eb_ftrie_children(sc->t, node, &nchildren);
        if (nchildren > 0)
            ser = open_object(f);
    }
    sc->p++;
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == '}') {
        sc->p++;
        goto done;
    }
    for (;;) {
        const char *key;
        size_t keylen, mark = f->nstr;
        uint32_t child = EB_FTRIE_NONE, mv;
        char *out = NULL;

        if (sc->p >= sc->end || *sc->p != '"')
            goto bad;
        if (nchildren > 0)
            out = str_reserve(f, (size_t)(sc->end - sc->p));
        if (!scan_string(sc, out, &key, &keylen))
            goto bad;
        if (nchildren > 0)
            child = find_key(sc, node, key, keylen, out);
        f->nstr = mark; /* the unescaped key is not kept */
        skip_ws(sc);
        if (sc->p >= sc->end || *sc->p != ':')
            goto bad;
        sc->p++;
        skip_ws(sc);
        mv = scan_value(sc, child, depth + 1);
        if (sc->bad)
            return UINT32_MAX;
        if (child != EB_FTRIE_NONE)
            add_member(f, ser, child, mv);
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            skip_ws(sc);
            continue;
        }
        if (sc->p < sc->end && *sc->p == '}') {
            sc->p++;
            break;
        }
        goto bad;
    }
done:
    if (v != UINT32_MAX)
        close_container(f, v, base);
    return v;
bad:
    sc->bad = true;
    return UINT32_MAX;
}

/* Scans an array at sc->p ('['); when node is a trie node, every element is
 * kept under node (arrays match when an element does). */
static uint32_t scan_array(struct scan *sc, uint32_t node, int depth)
{
    eb_flat *f = sc->f;
    uint32_t v = UINT32_MAX;
    size_t base = f->nstack;

    if (node != EB_FTRIE_NONE)
        v = new_val(f, EB_FV_ARRAY, node);
    sc->p++;
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == ']') {
        sc->p++;
        goto done;
    }
    for (;;) {
        uint32_t e = scan_value(sc, node, depth + 1);

        if (sc->bad)
            return UINT32_MAX;
        if (node != EB_FTRIE_NONE)
            push_kid(f, e);
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            skip_ws(sc);
            continue;
        }
        if (sc->p < sc->end && *sc->p == ']') {
            sc->p++;
            break;
        }
        sc->bad = true;
        return UINT32_MAX;
    }
done:
    if (v != UINT32_MAX)
        close_container(f, v, base);
    return v;
}

/* Scans one value at sc->p (whitespace skipped), nested depth deep (the
 * top-level value is 1). When node is a trie node, returns the index of its
 * kept value; else only validates. Sets sc->bad when the text is not valid. */
static uint32_t scan_value(struct scan *sc, uint32_t node, int depth)
{
    eb_flat *f = sc->f;
    bool keep = node != EB_FTRIE_NONE;
    uint32_t v = UINT32_MAX;

    if (depth > MAX_DEPTH || sc->p >= sc->end)
        goto bad;
    switch (*sc->p) {
    case '{':
        return scan_object(sc, node, depth);
    case '[':
        return scan_array(sc, node, depth);
    case '"': {
        const char *s;
        size_t len;
        char *out = keep ? str_reserve(f, (size_t)(sc->end - sc->p)) : NULL;

        if (!scan_string(sc, out, &s, &len))
            goto bad;
        if (!keep)
            return v;
        if (s == out) {
            size_t off = f->nstr;
            f->nstr += len;
            return str_val(f, node, off, len);
        }
        v = new_val(f, EB_FV_STRING, node);
        f->vals[v].s = s;
        f->vals[v].len = len;
        return v;
    }
    case 't':
        if (!scan_word(sc, "true", 4))
            goto bad;
        return keep ? new_val(f, EB_FV_TRUE, node) : v;
    case 'f':
        if (!scan_word(sc, "false", 5))
            goto bad;
        return keep ? new_val(f, EB_FV_FALSE, node) : v;
    case 'n':
        if (!scan_word(sc, "null", 4))
            goto bad;
        return keep ? new_val(f, EB_FV_NULL, node) : v;
    default: {
        double d = 0;

        if (*sc->p != '-' && (*sc->p < '0' || *sc->p > '9'))
            goto bad;
        if (!scan_number(sc, keep, &d))
            goto bad;
        skip_lost_nul(sc);
        if (!keep)
            return v;
        v = new_val(f, EB_FV_NUMBER, node);
        f->vals[v].num = d;
        return v;
    }
    }
bad:
    sc->bad = true;
    return UINT32_MAX;
}

/* Scans the document text[0..len) as the value of trie node node (NONE:
 * validate only). Returns the kept value (UINT32_MAX when none) and
 * whether the text is valid; on failure, everything it kept is dropped. */
static bool scan_document(eb_flat *f, const eb_ftrie *t, const char *text, size_t len,
                          uint32_t node, uint32_t *out)
{
    struct scan sc = { f, t, (const unsigned char *)text, (const unsigned char *)text + len,
                       false };
    size_t nvals = f->nvals, nkids = f->nkids, nstack = f->nstack, nstr = f->nstr;
    uint32_t v;

    skip_ws(&sc);
    v = scan_value(&sc, node, 1);
    if (!sc.bad) {
        skip_ws(&sc);
        if (sc.p != sc.end)
            sc.bad = true;
    }
    if (sc.bad) {
        f->nvals = nvals;
        f->nkids = nkids;
        f->nstack = nstack;
        f->nstr = nstr;
        return false;
    }
    *out = v;
    return true;
}

/* ---- From a CloudEvent -------------------------------------------------------- */

static void reset(eb_flat *f, const eb_ftrie *t)
{
    size_t n = eb_ftrie_size(t);

    f->trie = t;
    f->nvals = f->nkids = f->nstack = f->nstr = 0;
    if (f->capnodes < n) {
        f->stamp = xrealloc(f->stamp, n * sizeof *f->stamp);
        f->slot = xrealloc(f->slot, n * sizeof *f->slot);
        memset(f->stamp, 0, n * sizeof *f->stamp);
        f->capnodes = n;
        f->serial = 0;
    }
}

/* Points the strings kept in f->str at their final place. */
static void finish(eb_flat *f)
{
    for (size_t i = 0; i < f->nvals; i++) {
        struct eb_fval *v = &f->vals[i];

        if (v->kind == EB_FV_STRING && v->s == IN_STR) {
            v->s = f->str + v->first;
            v->first = 0;
        }
    }
}

bool eb_flatten_json(eb_flat *f, const eb_ftrie *t, const char *json, size_t len)
{
    uint32_t v;

    reset(f, t);
    if (!scan_document(f, t, json, len, EB_FTRIE_ROOT, &v))
        return false;
    finish(f);
    return true;
}

/* A base64 string value of data[0..len), as ce_base64_encode() writes it. */
static uint32_t b64_val(eb_flat *f, uint32_t node, const uint8_t *data, size_t len)
{
    size_t off = f->nstr, o;
    char *out = str_reserve(f, 4 * ((len + 2) / 3));

    o = ce_base64_encode_to(data, len, out);
    f->nstr += o;
    return str_val(f, node, off, o);
}

/* A string member as ce_to_json's string_or_empty() shows it: s[0..len),
 * "" for NULL, U+FFFD for text that is not UTF-8. */
static uint32_t text_val(eb_flat *f, uint32_t node, const char *s, size_t len)
{
    uint32_t v = new_val(f, EB_FV_STRING, node);

    if (s == NULL) {
        s = "";
        len = 0;
    } else if (!utf8_valid(s, len)) {
        s = "\xef\xbf\xbd";
        len = 3;
    }
    f->vals[v].s = s;
    f->vals[v].len = len;
    return v;
}

/* The value of one attribute as ce_to_json() shows it; UINT32_MAX when it
 * leaves the attribute out. */
static uint32_t attr_val(eb_flat *f, uint32_t node, const struct eb_wattr *a)
{
    uint32_t v;
    char buf[48];

    switch (a->kind) {
    case EB_WATTR_BOOL:
        return new_val(f, a->b ? EB_FV_TRUE : EB_FV_FALSE, node);
    case EB_WATTR_INT:
        v = new_val(f, EB_FV_NUMBER, node);
        f->vals[v].num = (double)a->i;
        return v;
    case EB_WATTR_TEXT:
        return text_val(f, node, a->s, a->len);
    case EB_WATTR_BYTES:
        return b64_val(f, node, (const uint8_t *)a->s, a->len);
    case EB_WATTR_TIME: {
        size_t len, off = f->nstr;

        if (ce_format_rfc3339(a->secs, a->nanos, buf, sizeof buf) != 0)
            return UINT32_MAX;
        len = strlen(buf);
        memcpy(str_reserve(f, len), buf, len);
        f->nstr += len;
        return str_val(f, node, off, len);
    }
    default:
        return UINT32_MAX;
    }
}

static bool key_is(const struct eb_wattr *a, const char *name)
{
    size_t n = strlen(name);

    return a->keylen == n && memcmp(a->key, name, n) == 0;
}

/* Whether the data is JSON by its content type, as ce_to_json() decides:
 * the first attribute named "datacontenttype" counts; when it is not a
 * string kind, or there is none, the data is JSON. */
static bool data_is_json(eb_flat *f, const struct eb_wevent *w)
{
    for (size_t i = 0; i < w->nattrs; i++) {
        const struct eb_wattr *a = &w->attrs[i];
        char *ct;

        if (!key_is(a, "datacontenttype"))
            continue;
        if (a->kind != EB_WATTR_TEXT || a->s == NULL)
            return true;
        /* What nearly every JSON event says, decided without a copy. */
        if (a->len == 16 && memcmp(a->s, "application/json", 16) == 0)
            return true;
        /* ce_content_type_is_json() wants a C string. */
        grow((void **)&f->ctbuf, &f->capct, a->len + 1, 1);
        ct = f->ctbuf;
        memcpy(ct, a->s, a->len);
        ct[a->len] = '\0';
        return ce_content_type_is_json(ct) != 0;
    }
    return true;
}

/* Adds "data" or "data_base64", as ce_to_json()'s data_to_json() does. */
static void flatten_data(eb_flat *f, const eb_ftrie *t, const struct eb_wevent *w, uint32_t ser)
{
    uint32_t dnode = t->reserved[RES_DATA], bnode = t->reserved[RES_DATA_BASE64], v;
    bool json_ct;

    if (dnode == EB_FTRIE_NONE && bnode == EB_FTRIE_NONE)
        return;
    json_ct = data_is_json(f, w);
    switch (w->data) {
    case EB_WDATA_TEXT:
        if (json_ct && scan_document(f, t, w->d, w->dlen, dnode, &v)) {
            if (dnode != EB_FTRIE_NONE)
                add_member(f, ser, dnode, v);
        } else if (utf8_valid(w->d, w->dlen)) {
            if (dnode != EB_FTRIE_NONE) {
                v = new_val(f, EB_FV_STRING, dnode);
                f->vals[v].s = w->d;
                f->vals[v].len = w->dlen;
                add_member(f, ser, dnode, v);
            }
        } else if (bnode != EB_FTRIE_NONE) {
            add_member(f, ser, bnode, b64_val(f, bnode, (const uint8_t *)w->d, w->dlen));
        }
        return;
    case EB_WDATA_BINARY:
        if (json_ct && w->dlen > 0 && scan_document(f, t, w->d, w->dlen, dnode, &v)) {
            if (dnode != EB_FTRIE_NONE)
                add_member(f, ser, dnode, v);
        } else if (bnode != EB_FTRIE_NONE) {
            add_member(f, ser, bnode, b64_val(f, bnode, (const uint8_t *)w->d, w->dlen));
        }
        return;
    case EB_WDATA_PROTO:
        if (bnode != EB_FTRIE_NONE)
            add_member(f, ser, bnode, b64_val(f, bnode, (const uint8_t *)w->d, w->dlen));
        return;
    default:
        return;
    }
}

void eb_flatten_wevent(eb_flat *f, const eb_ftrie *t, const struct eb_wevent *w)
{
    uint32_t root, ser;
    size_t nroot;

    reset(f, t);
    root = new_val(f, EB_FV_OBJECT, EB_FTRIE_ROOT);
    eb_ftrie_children(t, EB_FTRIE_ROOT, &nroot);
    if (nroot > 0) {
        ser = open_object(f);
        for (size_t i = 0; i < 4; i++) {
            uint32_t node = t->reserved[RES_SPECVERSION + i];
            if (node != EB_FTRIE_NONE)
                add_member(f, ser, node, text_val(f, node, w->fixed[i], w->fixedlen[i]));
        }
        for (size_t i = 0; i < w->nattrs; i++) {
            const struct eb_wattr *a = &w->attrs[i];
            uint32_t node = eb_ftrie_find(t, EB_FTRIE_ROOT, a->key, a->keylen), v;

            if (node == EB_FTRIE_NONE || t->nodes[node].reserved)
                continue;
            v = attr_val(f, node, a);
            if (v != UINT32_MAX)
                add_member(f, ser, node, v);
        }
        flatten_data(f, t, w, ser);
    }
    close_container(f, root, 0);
    finish(f);
}

static size_t cstrlen(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

void eb_flatten_event(eb_flat *f, const eb_ftrie *t, const Io__Cloudevents__V1__CloudEvent *ev)
{
    struct eb_wevent w = { .fixed = { ev->spec_version, ev->id, ev->source, ev->type } };
    size_t n = 0;

    assert(f != NULL && t != NULL && ev != NULL);
    for (int i = 0; i < 4; i++)
        w.fixedlen[i] = cstrlen(w.fixed[i]);
    grow((void **)&f->attrs, &f->capattrs, ev->n_attributes + 1, sizeof *f->attrs);
    for (size_t i = 0; i < ev->n_attributes; i++) {
        const Io__Cloudevents__V1__CloudEvent__AttributesEntry *e = ev->attributes[i];
        const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v;
        struct eb_wattr *a = &f->attrs[n];

        if (e == NULL || e->key == NULL || e->value == NULL)
            continue;
        v = e->value;
        *a = (struct eb_wattr){ .key = e->key, .keylen = strlen(e->key) };
        switch (v->attr_case) {
        case ATTR(CE_BOOLEAN):
            a->kind = EB_WATTR_BOOL;
            a->b = v->ce_boolean;
            break;
        case ATTR(CE_INTEGER):
            a->kind = EB_WATTR_INT;
            a->i = v->ce_integer;
            break;
        case ATTR(CE_STRING):
        case ATTR(CE_URI):
        case ATTR(CE_URI_REF): {
            const char *s = v->attr_case == ATTR(CE_STRING) ? v->ce_string
                            : v->attr_case == ATTR(CE_URI)  ? v->ce_uri
                                                            : v->ce_uri_ref;
            a->kind = EB_WATTR_TEXT;
            a->s = s;
            a->len = cstrlen(s);
            break;
        }
        case ATTR(CE_BYTES):
            a->kind = EB_WATTR_BYTES;
            a->s = (const char *)v->ce_bytes.data;
            a->len = v->ce_bytes.len;
            break;
        case ATTR(CE_TIMESTAMP):
            /* An absent timestamp message leaves the attribute out. */
            a->kind = v->ce_timestamp != NULL ? EB_WATTR_TIME : EB_WATTR_NONE;
            if (v->ce_timestamp != NULL) {
                a->secs = v->ce_timestamp->seconds;
                a->nanos = v->ce_timestamp->nanos;
            }
            break;
        default:
            a->kind = EB_WATTR_NONE;
            break;
        }
        n++;
    }
    w.attrs = f->attrs;
    w.nattrs = n;
    switch (ev->data_case) {
    case DATA(TEXT_DATA):
        if (ev->text_data != NULL) {
            w.data = EB_WDATA_TEXT;
            w.d = ev->text_data;
            w.dlen = strlen(ev->text_data);
        }
        break;
    case DATA(BINARY_DATA):
        w.data = EB_WDATA_BINARY;
        w.d = (const char *)ev->binary_data.data;
        w.dlen = ev->binary_data.len;
        break;
    case DATA(PROTO_DATA):
        if (ev->proto_data != NULL) {
            w.data = EB_WDATA_PROTO;
            w.d = (const char *)ev->proto_data->value.data;
            w.dlen = ev->proto_data->value.len;
        }
        break;
    default:
        break;
    }
    eb_flatten_wevent(f, t, &w);
}
