/* Matching a compiled pattern against a flattened event (flatten.h), the
 * hot path of the per-bus matcher. It mirrors match_node() and friends in
 * pattern.c step by step over eb_fval instead of json_t, and shares the
 * matching of one condition against one scalar (eb_pattern_cond_match), so
 * that both views give the same answer; tests/unit/test_flatten.c and
 * tests/fuzz/fuzz_flatten.c compare them.
 */
#include "pattern_flat.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern_internal.h"

/* ---- Paths ---------------------------------------------------------------- */

static void paths_node(const struct node *n, eb_ftrie *t, uint32_t parent, uint32_t *out);

static void paths_field(const struct field *f, eb_ftrie *t, uint32_t parent, uint32_t *out)
{
    uint32_t id;

    if (f->kind == FIELD_OR) {
        out[f->index] = EB_FTRIE_NONE;
        for (size_t k = 0; k < f->nnodes; k++)
            paths_node(&f->nodes[k], t, parent, out);
        return;
    }
    id = eb_ftrie_add(t, parent, f->name.s, f->name.len);
    out[f->index] = id;
    if (f->kind == FIELD_OBJECT)
        paths_node(&f->nodes[0], t, id, out);
}

static void paths_node(const struct node *n, eb_ftrie *t, uint32_t parent, uint32_t *out)
{
    for (size_t i = 0; i < n->nfields; i++)
        paths_field(&n->fields[i], t, parent, out);
}

uint32_t *eb_pattern_paths(const eb_pattern *p, eb_ftrie *t)
{
    unsigned n = eb_pattern_field_count(p);
    uint32_t *out = malloc((n ? n : 1) * sizeof *out);

    assert(p != NULL && t != NULL);
    if (out == NULL) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    paths_node(eb_pattern_root(p), t, EB_FTRIE_ROOT, out);
    return out;
}

/* ---- Exactness ------------------------------------------------------------ */

static bool cond_exact(const struct cond *c)
{
    switch (c->kind) {
    case COND_PREFIX:
    case COND_SUFFIX:
    case COND_PREFIX_CI:
    case COND_SUFFIX_CI:
        /* An empty affix is anchored as "some leaf", which it refines. */
        return c->u.str.len > 0;
    case COND_STRING:
    case COND_NUMBER:
    case COND_BOOL:
    case COND_NULL:
    case COND_EQUALS_CI:
    case COND_NUMERIC:
        return true;
    case COND_EXISTS:
        return c->u.flag;
    case COND_WILDCARD:
    case COND_ANYTHING_BUT:
    case COND_CIDR:
        /* The index checks these on the value that hits their anchor
         * (struct eb_anchor.verify). */
        return true;
    default:
        return false;
    }
}

struct exact_walk {
    const uint32_t *field_nodes;
    uint32_t path[EB_PATTERN_MAX_DEPTH + 2]; /* trie nodes of the object fields above */
    size_t depth;
    uint32_t *guards;
    size_t nguards, cap;
    unsigned nleaves;
    struct eb_pattern_plan *plan;
};

/* Adds the object fields on the current path (the nested object itself
 * included) to the guards, once each. */
static void guard_path(struct exact_walk *w)
{
    for (size_t i = 0; i < w->depth; i++) {
        bool seen = false;

        for (size_t k = 0; k < w->nguards && !seen; k++)
            seen = w->guards[k] == w->path[i];
        if (seen)
            continue;
        if (w->nguards == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 8;
            w->guards = realloc(w->guards, w->cap * sizeof *w->guards);
            if (w->guards == NULL) {
                fputs("cebusd: out of memory\n", stderr);
                abort();
            }
        }
        w->guards[w->nguards++] = w->path[i];
    }
}

static bool exact_node(struct exact_walk *w, const struct node *n)
{
    if (w->depth > 0 && n->nfields > 1)
        guard_path(w);
    for (size_t i = 0; i < n->nfields; i++) {
        const struct field *f = &n->fields[i];

        if (f->kind == FIELD_OR)
            return false;
        if (f->kind == FIELD_LEAF) {
            bool exact = true;

            if (w->nleaves >= 32)
                return false;
            for (size_t k = 0; k < f->nconds; k++)
                exact = exact && cond_exact(&f->conds[k]);
            if (eb_pattern_leaf_indexed(f))
                w->plan->leaf_of_group[w->plan->ngroups++] = (uint8_t)w->nleaves;
            else
                exact = false;
            if (!exact)
                w->plan->check |= 1u << w->nleaves;
            w->plan->leaves[w->nleaves++] = f;
            continue;
        }
        assert(w->depth < sizeof w->path / sizeof w->path[0]);
        w->path[w->depth++] = w->field_nodes[f->index];
        if (!exact_node(w, &f->nodes[0]))
            return false;
        w->depth--;
    }
    return true;
}

bool eb_pattern_exact(const eb_pattern *p, const uint32_t *field_nodes,
                      struct eb_pattern_plan *plan)
{
    struct eb_pattern_plan tmp = { 0 };
    struct exact_walk w = { .field_nodes = field_nodes, .plan = &tmp };

    if (!exact_node(&w, eb_pattern_root(p))) {
        free(w.guards);
        return false;
    }
    tmp.guards = w.guards;
    tmp.nguards = w.nguards;
    tmp.nleaves = w.nleaves;
    *plan = tmp;
    return true;
}

/* ---- Matching ------------------------------------------------------------- */

#define NO_VALUE SIZE_MAX

static const struct eb_fval *kid(const eb_flat *f, const struct eb_fval *c, size_t i)
{
    return &f->vals[f->kids[c->first + i]];
}

/* As cond_match_any() in pattern.c. */
static bool cond_any(const eb_flat *f, const struct cond *c, const struct eb_fval *v, int depth)
{
    struct eb_scalar s;

    if (v->kind == EB_FV_ARRAY) {
        if (depth >= ARRAY_FLATTEN_DEPTH)
            return false;
        for (size_t i = 0; i < v->n; i++)
            if (cond_any(f, c, kid(f, v, i), depth + 1))
                return true;
        return false;
    }
    if (v->kind == EB_FV_OBJECT)
        return false;
    s = eb_scalar_of_flat(v);
    return eb_pattern_cond_match(c, &s);
}

/* As has_leaf() in pattern.c. */
static bool leaf_in(const eb_flat *f, const struct eb_fval *v, int depth)
{
    if (v == NULL || v->kind == EB_FV_OBJECT)
        return false;
    if (v->kind == EB_FV_ARRAY) {
        if (depth >= ARRAY_FLATTEN_DEPTH)
            return false;
        for (size_t i = 0; i < v->n; i++)
            if (leaf_in(f, kid(f, v, i), depth + 1))
                return true;
        return false;
    }
    return true;
}

static bool leaf_match(const eb_flat *f, const struct field *fd, const struct eb_fval *v)
{
    for (size_t i = 0; i < fd->nconds; i++) {
        const struct cond *c = &fd->conds[i];

        if (c->kind == COND_EXISTS) {
            if (leaf_in(f, v, 0) == c->u.flag)
                return true;
        } else if (v != NULL && cond_any(f, c, v, 0)) {
            return true;
        }
    }
    return false;
}

/* The member of object obj at trie node node; NULL when absent. An object
 * keeps one member per name, so node ids identify members. */
static const struct eb_fval *member(const eb_flat *f, const struct eb_fval *obj, uint32_t node)
{
    for (size_t i = 0; i < obj->n; i++) {
        const struct eb_fval *m = &f->vals[f->kids[obj->first + i]];

        if (m->node == node)
            return m;
    }
    return NULL;
}

/* What node_match() needs besides the pattern node and the object. */
struct ctx {
    const eb_flat *f;
    const uint32_t *field_nodes;
};

static bool node_match(const struct ctx *c, const struct node *n, const struct eb_fval *obj);

/* As match_object_field() in pattern.c. */
static bool object_field(const struct ctx *c, const struct node *n, const struct eb_fval *v)
{
    const eb_flat *f = c->f;

    if (v != NULL && v->kind == EB_FV_ARRAY) {
        size_t nobj = 0;

        for (size_t i = 0; i < v->n; i++) {
            const struct eb_fval *e = kid(f, v, i);

            if (e->kind != EB_FV_OBJECT)
                continue;
            nobj++;
            if (node_match(c, n, e))
                return true;
        }
        if (nobj > 0)
            return false;
        return node_match(c, n, NULL);
    }
    return node_match(c, n, v != NULL && v->kind == EB_FV_OBJECT ? v : NULL);
}

/* As match_node() in pattern.c, without explaining. */
static bool node_match(const struct ctx *c, const struct node *n, const struct eb_fval *obj)
{
    const eb_flat *f = c->f;

    for (size_t i = 0; i < n->nfields; i++) {
        const struct field *fd = &n->fields[i];
        const struct eb_fval *v;
        bool ok = false;

        if (fd->kind == FIELD_OR) {
            for (size_t k = 0; k < fd->nnodes && !ok; k++)
                ok = node_match(c, &fd->nodes[k], obj);
            if (!ok)
                return false;
            continue;
        }
        v = obj != NULL ? member(f, obj, c->field_nodes[fd->index]) : NULL;
        if (fd->kind == FIELD_LEAF)
            ok = leaf_match(f, fd, v);
        else
            ok = object_field(c, &fd->nodes[0], v);
        if (!ok)
            return false;
    }
    return true;
}

int eb_pattern_test_leaf(const struct field *leaf, const uint32_t *path, size_t depth,
                         const eb_flat *f)
{
    const struct eb_fval *obj;

    assert(leaf != NULL && leaf->kind == FIELD_LEAF && depth >= 1 && f->nvals > 0);
    obj = f->vals[0].kind == EB_FV_OBJECT ? &f->vals[0] : NULL;
    /* As node_match() and object_field() on the way down, where an object
     * given as an array would let each element decide. */
    for (size_t i = 0; i + 1 < depth && obj != NULL; i++) {
        const struct eb_fval *v = member(f, obj, path[i]);

        if (v != NULL && v->kind == EB_FV_ARRAY)
            return -1;
        obj = v != NULL && v->kind == EB_FV_OBJECT ? v : NULL;
    }
    return leaf_match(f, leaf, obj != NULL ? member(f, obj, path[depth - 1]) : NULL);
}

/* ---- Comparing leaves ------------------------------------------------------ */

static bool text_same(const struct text *a, const struct text *b)
{
    return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static bool cond_same(const struct cond *a, const struct cond *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case COND_STRING:
    case COND_PREFIX:
    case COND_SUFFIX:
    case COND_EQUALS_CI:
    case COND_PREFIX_CI:
    case COND_SUFFIX_CI:
        return text_same(&a->u.str, &b->u.str);
    case COND_NUMBER:
        return a->u.num == b->u.num;
    case COND_BOOL:
    case COND_EXISTS:
        return a->u.flag == b->u.flag;
    case COND_NULL:
        return true;
    case COND_NUMERIC:
        return a->u.range.lop == b->u.range.lop && a->u.range.uop == b->u.range.uop &&
               a->u.range.lo == b->u.range.lo && a->u.range.hi == b->u.range.hi;
    case COND_WILDCARD:
        if (a->u.wc.nsegs != b->u.wc.nsegs)
            return false;
        for (size_t i = 0; i < a->u.wc.nsegs; i++)
            if (!text_same(&a->u.wc.segs[i], &b->u.wc.segs[i]))
                return false;
        return true;
    case COND_CIDR:
        return a->u.net.family == b->u.net.family && a->u.net.bits == b->u.net.bits &&
               memcmp(a->u.net.addr, b->u.net.addr, sizeof a->u.net.addr) == 0;
    case COND_ANYTHING_BUT:
        if (a->u.but.n != b->u.but.n)
            return false;
        for (size_t i = 0; i < a->u.but.n; i++)
            if (!cond_same(&a->u.but.conds[i], &b->u.but.conds[i]))
                return false;
        return true;
    }
    return false;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t text_hash(uint64_t h, const struct text *t)
{
    for (size_t i = 0; i < t->len; i++)
        h = (h ^ (unsigned char)t->s[i]) * 0x100000001b3ULL;
    return mix(h, t->len);
}

/* Hashes a number by value: 0 and -0 alike. */
static uint64_t num_hash(uint64_t h, double d)
{
    uint64_t bits;

    if (d == 0)
        d = 0;
    memcpy(&bits, &d, sizeof bits);
    return mix(h, bits);
}

/* Hashes what cond_same() compares, or part of it. */
static uint64_t cond_hash(uint64_t h, const struct cond *c)
{
    h = mix(h, (uint64_t)c->kind + 1);
    switch (c->kind) {
    case COND_STRING:
    case COND_PREFIX:
    case COND_SUFFIX:
    case COND_EQUALS_CI:
    case COND_PREFIX_CI:
    case COND_SUFFIX_CI:
        return text_hash(h, &c->u.str);
    case COND_WILDCARD:
        for (size_t i = 0; i < c->u.wc.nsegs; i++)
            h = text_hash(h, &c->u.wc.segs[i]);
        return h;
    case COND_BOOL:
    case COND_EXISTS:
        return mix(h, c->u.flag);
    case COND_NUMBER:
        return num_hash(h, c->u.num);
    case COND_NUMERIC:
        h = mix(h, (uint64_t)c->u.range.lop << 4 | (uint64_t)c->u.range.uop);
        return num_hash(num_hash(h, c->u.range.lo), c->u.range.hi);
    case COND_ANYTHING_BUT:
        for (size_t i = 0; i < c->u.but.n; i++)
            h = cond_hash(h, &c->u.but.conds[i]);
        return h;
    default:
        return h;
    }
}

uint64_t eb_pattern_cond_hash(const struct cond *c)
{
    return cond_hash(0xcbf29ce484222325ULL, c);
}

bool eb_pattern_cond_same(const struct cond *a, const struct cond *b)
{
    return cond_same(a, b);
}

uint64_t eb_pattern_leaf_hash(const struct field *leaf)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    assert(leaf->kind == FIELD_LEAF);
    for (size_t i = 0; i < leaf->nconds; i++)
        h = cond_hash(h, &leaf->conds[i]);
    return mix(h, leaf->nconds);
}

static uint64_t node_hash(uint64_t h, const struct node *n)
{
    h = mix(h, n->nfields);
    for (size_t i = 0; i < n->nfields; i++) {
        const struct field *f = &n->fields[i];

        h = mix(h, (uint64_t)f->kind + 1);
        if (f->kind != FIELD_OR)
            h = text_hash(h, &f->name);
        if (f->kind == FIELD_LEAF)
            h = mix(h, eb_pattern_leaf_hash(f));
        for (size_t k = 0; k < f->nnodes; k++)
            h = node_hash(h, &f->nodes[k]);
    }
    return h;
}

static bool node_same(const struct node *a, const struct node *b)
{
    if (a->nfields != b->nfields)
        return false;
    for (size_t i = 0; i < a->nfields; i++) {
        const struct field *x = &a->fields[i], *y = &b->fields[i];

        if (x->kind != y->kind || x->nnodes != y->nnodes)
            return false;
        if (x->kind != FIELD_OR && !text_same(&x->name, &y->name))
            return false;
        if (x->kind == FIELD_LEAF && !eb_pattern_leaf_same(x, y))
            return false;
        for (size_t k = 0; k < x->nnodes; k++)
            if (!node_same(&x->nodes[k], &y->nodes[k]))
                return false;
    }
    return true;
}

uint64_t eb_pattern_hash(const eb_pattern *p)
{
    return node_hash(0xcbf29ce484222325ULL, eb_pattern_root(p));
}

bool eb_pattern_same(const eb_pattern *p, const eb_pattern *q)
{
    return p == q || node_same(eb_pattern_root(p), eb_pattern_root(q));
}

bool eb_pattern_leaf_same(const struct field *a, const struct field *b)
{
    assert(a->kind == FIELD_LEAF && b->kind == FIELD_LEAF);
    if (a->nconds != b->nconds)
        return false;
    for (size_t i = 0; i < a->nconds; i++)
        if (!cond_same(&a->conds[i], &b->conds[i]))
            return false;
    return true;
}

bool eb_pattern_match_flat(const eb_pattern *p, const uint32_t *field_nodes, const eb_flat *f)
{
    struct ctx c = { f, field_nodes };

    assert(p != NULL && field_nodes != NULL && f != NULL && f->nvals > 0);
    return node_match(&c, eb_pattern_root(p),
                      f->vals[0].kind == EB_FV_OBJECT ? &f->vals[0] : NULL);
}
