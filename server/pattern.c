/* Event patterns: an EventBridge-style JSON pattern is compiled once into a
 * tree of nodes (objects), fields and conditions, then matched against the
 * CloudEvents JSON view of events without touching the pattern text again.
 *
 * The semantics choices are documented for users in docs/patterns.md; the
 * comments below explain how the code implements them.
 */
#include "pattern.h"
#include "pattern_anchor.h"
#include "pattern_internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest text form of an IPv6 address accepted by the cidr operator, with
 * room for the NUL (INET6_ADDRSTRLEN is 46). */
#define ADDR_TEXT_MAX 64

/* Out of memory aborts: see STYLE.md. */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL && n != 0 && size != 0) {
        fputs("cebusd: out of memory\n", stderr);
        abort();
    }
    return p;
}

/* ---- Arena ------------------------------------------------------------ */

/* Every piece of a compiled pattern lives in one arena, so that a pattern
 * that fails halfway through compilation, or that is freed, is released by
 * walking a short list of blocks instead of the whole tree. Sizes are known
 * before each allocation (jansson gives array and object sizes), so no piece
 * ever grows. */
struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t cap;
    max_align_t data[];
};

#define ARENA_BLOCK_BYTES 4096

static void *arena_alloc(struct arena_block **head, size_t n, size_t size)
{
    const size_t align = alignof(max_align_t);
    size_t bytes;
    struct arena_block *b = *head;
    void *p;

    /* The pattern text is capped at a few KiB, so counts are small; this
     * guards the multiplication all the same. */
    if (size != 0 && n > SIZE_MAX / 2 / size) {
        fputs("cebusd: arena request too large\n", stderr);
        abort();
    }
    bytes = (n * size + align - 1) / align * align;
    if (bytes == 0)
        bytes = align;
    if (b == NULL || b->cap - b->used < bytes) {
        size_t cap = bytes > ARENA_BLOCK_BYTES ? bytes : ARENA_BLOCK_BYTES;
        b = xcalloc(1, sizeof *b + cap);
        b->cap = cap;
        b->next = *head;
        *head = b;
    }
    p = (unsigned char *)b->data + b->used;
    b->used += bytes;
    return p;
}

static void arena_free(struct arena_block *b)
{
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
}

struct eb_pattern {
    struct arena_block *arena;
    struct node root;
    unsigned nfields; /* in the whole tree */
};

/* ---- Small string buffer ---------------------------------------------- */

/* A fixed-size output buffer that truncates instead of overflowing; used for
 * compile errors, event paths and explain() messages. */
struct sbuf {
    char *p;
    size_t cap;
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->cap == 0 || b->len >= b->cap - 1)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    b->len += (size_t)n;
    if (b->len > b->cap - 1)
        b->len = b->cap - 1;
}

/* Appends a string quoted, with control characters, quotes and backslashes
 * escaped so that messages stay on one line and unambiguous. */
static void sb_quote(struct sbuf *b, const char *s, size_t len)
{
    const size_t shown = len > 64 ? 64 : len;

    sb_printf(b, "\"");
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            sb_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            sb_printf(b, "\\u%04x", ch);
        else
            sb_printf(b, "%c", ch);
    }
    sb_printf(b, "%s\"", shown < len ? "..." : "");
}

/* Appends the shortest decimal form of d that reads back as d. */
static void sb_number(struct sbuf *b, double d)
{
    char tmp[32];

    /* Whole numbers read best without an exponent ("1000", not "1e+03"). */
    if (d == floor(d) && fabs(d) < 1e15) {
        sb_printf(b, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    sb_printf(b, "%s", tmp);
}

/* ---- Compiler --------------------------------------------------------- */

struct compiler {
    struct arena_block **arena;
    size_t nvalues;
    struct sbuf err;
    char path[256];
    size_t pathlen;
};

/* Writes "<path>: <reason>" into the caller's error buffer and returns
 * EB_EINVAL. The root has no path of its own and is called "pattern". */
__attribute__((format(printf, 2, 3))) static eb_status fail(struct compiler *c, const char *fmt,
                                                            ...)
{
    va_list ap;
    char reason[256];

    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    c->err.len = 0;
    sb_printf(&c->err, "%s: %s", c->pathlen > 0 ? c->path : "pattern", reason);
    return EB_EINVAL;
}

/* Appends ".name" (or "name" at the root) to the path and returns the old
 * length, to be passed to path_pop(). A path longer than the buffer is
 * truncated; errors stay readable. */
static size_t path_push_key(struct compiler *c, const char *name, size_t len)
{
    size_t old = c->pathlen;
    struct sbuf b = { c->path, sizeof c->path, c->pathlen };

    sb_printf(&b, "%s%.*s", old > 0 ? "." : "", (int)(len > 128 ? 128 : len), name);
    c->pathlen = b.len;
    return old;
}

static size_t path_push_index(struct compiler *c, size_t i)
{
    size_t old = c->pathlen;
    struct sbuf b = { c->path, sizeof c->path, c->pathlen };

    sb_printf(&b, "[%zu]", i);
    c->pathlen = b.len;
    return old;
}

static void path_pop(struct compiler *c, size_t old)
{
    c->pathlen = old;
    c->path[old] = '\0';
}

static eb_status count_value(struct compiler *c)
{
    if (++c->nvalues > EB_PATTERN_MAX_VALUES)
        return fail(c, "pattern has more than %d values", EB_PATTERN_MAX_VALUES);
    return EB_OK;
}

static struct text dup_text(struct compiler *c, const char *s, size_t len)
{
    char *p = arena_alloc(c->arena, len + 1, 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return (struct text){ p, len };
}

static struct text json_text(struct compiler *c, const json_t *s)
{
    return dup_text(c, json_string_value(s), json_string_length(s));
}

static bool is_scalar(const json_t *v)
{
    return !json_is_object(v) && !json_is_array(v);
}

/* Compiles an exact value (string, number, true, false, null). */
static void compile_scalar(struct compiler *c, const json_t *v, struct cond *out)
{
    assert(is_scalar(v));
    if (json_is_string(v)) {
        out->kind = COND_STRING;
        out->u.str = json_text(c, v);
    } else if (json_is_number(v)) {
        out->kind = COND_NUMBER;
        out->u.num = json_number_value(v);
    } else if (json_is_boolean(v)) {
        out->kind = COND_BOOL;
        out->u.flag = json_is_true(v);
    } else {
        out->kind = COND_NULL;
    }
}

/* Splits a wildcard into literal segments. A backslash escapes '*' or '\';
 * the star count is capped and "**" refused, which bounds the matcher's work
 * at (stars x event length) byte comparisons. */
static eb_status compile_wildcard(struct compiler *c, const json_t *v, const char *op,
                                  struct cond *out)
{
    const char *s;
    size_t len, stars = 0, seg = 0;
    char *buf;
    size_t buflen = 0, segstart = 0;
    bool prev_star = false;

    if (!json_is_string(v))
        return fail(c, "%s expects a string", op);
    s = json_string_value(v);
    len = json_string_length(v);
    for (size_t i = 0; i < len; i++) {
        bool star = false;

        if (s[i] == '\\') {
            if (i + 1 >= len || (s[i + 1] != '*' && s[i + 1] != '\\'))
                return fail(c, "%s: a backslash may only escape '*' or '\\'", op);
            i++;
        } else if (s[i] == '*') {
            if (prev_star)
                return fail(c, "%s must not contain consecutive '*'", op);
            if (++stars > EB_PATTERN_MAX_WILDCARDS)
                return fail(c, "%s has more than %d '*'", op, EB_PATTERN_MAX_WILDCARDS);
            star = true;
        }
        prev_star = star;
    }

    out->kind = COND_WILDCARD;
    out->u.wc.src = json_text(c, v);
    out->u.wc.nsegs = stars + 1;
    out->u.wc.segs = arena_alloc(c->arena, stars + 1, sizeof(struct text));
    buf = arena_alloc(c->arena, len + 1, 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            buf[buflen++] = s[++i];
        } else if (s[i] == '*') {
            out->u.wc.segs[seg++] = (struct text){ buf + segstart, buflen - segstart };
            segstart = buflen;
        } else {
            buf[buflen++] = s[i];
        }
    }
    out->u.wc.segs[seg] = (struct text){ buf + segstart, buflen - segstart };
    return EB_OK;
}

/* Parses "address/prefix-length" for IPv4 or IPv6 and clears the host bits,
 * so that matching is a plain comparison of the leading bits. */
static eb_status compile_cidr(struct compiler *c, const json_t *v, struct cond *out)
{
    const char *s, *slash;
    size_t len, alen;
    char addr[ADDR_TEXT_MAX];
    unsigned bits = 0, maxbits;
    int family;
    struct cidr *net = &out->u.net;

    if (!json_is_string(v))
        return fail(c, "cidr expects a string \"address/prefix-length\"");
    s = json_string_value(v);
    len = json_string_length(v);
    slash = memchr(s, '/', len);
    if (slash == NULL || (size_t)(slash - s) >= sizeof addr)
        return fail(c, "cidr expects \"address/prefix-length\"");
    alen = (size_t)(slash - s);
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    family = memchr(addr, ':', alen) != NULL ? AF_INET6 : AF_INET;
    maxbits = family == AF_INET6 ? 128 : 32;
    if (inet_pton(family, addr, net->addr) != 1)
        return fail(c, "cidr has an invalid %s address", family == AF_INET6 ? "IPv6" : "IPv4");

    const char *d = slash + 1, *end = s + len;
    if (d == end || end - d > 3)
        return fail(c, "cidr prefix length must be 0 to %u", maxbits);
    for (; d < end; d++) {
        if (*d < '0' || *d > '9')
            return fail(c, "cidr prefix length must be 0 to %u", maxbits);
        bits = bits * 10 + (unsigned)(*d - '0');
    }
    if (bits > maxbits)
        return fail(c, "cidr prefix length must be 0 to %u", maxbits);

    out->kind = COND_CIDR;
    net->src = json_text(c, v);
    net->family = family;
    net->bits = bits;
    for (unsigned i = 0; i < maxbits / 8; i++) {
        unsigned keep = bits >= (i + 1) * 8 ? 8 : bits > i * 8 ? bits - i * 8 : 0;
        net->addr[i] &= (unsigned char)(0xff00u >> keep);
    }
    return EB_OK;
}

static int parse_numeric_op(const json_t *v)
{
    static const char *const ops[] = { "=", "<", "<=", ">", ">=" };
    const char *s = json_string_value(v);

    for (int i = 0; i < 5; i++)
        if (strcmp(s, ops[i]) == 0 && json_string_length(v) == strlen(ops[i]))
            return i;
    return -1;
}

/* Compiles ["op", n] or ["op", n, "op", n]. Two comparisons must be one
 * lower and one upper bound; an empty range is refused because it can never
 * match and is surely a mistake. */
static eb_status compile_numeric(struct compiler *c, const json_t *v, struct cond *out)
{
    struct numeric *r = &out->u.range;
    size_t n;

    if (!json_is_array(v))
        return fail(c, "numeric expects an array such as [\">\", 0, \"<=\", 100]");
    n = json_array_size(v);
    if (n > 4)
        return fail(c, "numeric expects one or two comparisons");
    if (n == 0 || n % 2 != 0)
        return fail(c, "numeric expects an operator then a number");
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i += 2) {
        const json_t *op = json_array_get(v, i), *num = json_array_get(v, i + 1);
        int k;
        double d;

        if (!json_is_string(op) || !json_is_number(num))
            return fail(c, "numeric expects an operator then a number");
        k = parse_numeric_op(op);
        d = json_number_value(num);
        if (k < 0)
            return fail(c, "numeric has unknown operator \"%.16s\"; use =, <, <=, > or >=",
                        json_string_value(op));
        if (k == 0) {
            if (n != 2)
                return fail(c, "numeric \"=\" cannot be combined with another comparison");
            r->equals = true;
            r->lop = LOWER_GE;
            r->uop = UPPER_LE;
            r->lo = r->hi = d;
        } else if (k == 1 || k == 2) {
            if (r->uop != UPPER_NONE)
                return fail(c, "numeric with two comparisons needs a lower bound (> or >=) "
                               "and an upper bound (< or <=)");
            r->uop = k == 1 ? UPPER_LT : UPPER_LE;
            r->hi = d;
        } else {
            if (r->lop != LOWER_NONE)
                return fail(c, "numeric with two comparisons needs a lower bound (> or >=) "
                               "and an upper bound (< or <=)");
            r->lop = k == 3 ? LOWER_GT : LOWER_GE;
            r->lo = d;
        }
    }
    if (r->lop != LOWER_NONE && r->uop != UPPER_NONE &&
        (r->lo > r->hi || (r->lo == r->hi && (r->lop == LOWER_GT || r->uop == UPPER_LT))))
        return fail(c, "numeric range is empty");
    out->kind = COND_NUMERIC;
    return EB_OK;
}

/* Compiles the inside of {"anything-but": ...}: a value, a non-empty list of
 * values, or one string operator with a string or a list of strings. */
static eb_status compile_anything_but(struct compiler *c, const json_t *v, struct cond *out)
{
    static const char usage[] = "anything-but expects a value, a list of values, or one of "
                                "prefix, suffix, equals-ignore-case, wildcard";
    const json_t *list = v;
    enum cond_kind kind = COND_STRING;
    const char *op = NULL;
    size_t n;
    eb_status st;

    out->kind = COND_ANYTHING_BUT;
    if (is_scalar(v)) {
        out->u.but.conds = arena_alloc(c->arena, 1, sizeof(struct cond));
        out->u.but.n = 1;
        compile_scalar(c, v, &out->u.but.conds[0]);
        return EB_OK;
    }
    if (json_is_object(v)) {
        if (json_object_size(v) != 1)
            return fail(c, "%s", usage);
        op = json_object_iter_key(json_object_iter((json_t *)v));
        list = json_object_iter_value(json_object_iter((json_t *)v));
        if (strcmp(op, "prefix") == 0)
            kind = COND_PREFIX;
        else if (strcmp(op, "suffix") == 0)
            kind = COND_SUFFIX;
        else if (strcmp(op, "equals-ignore-case") == 0)
            kind = COND_EQUALS_CI;
        else if (strcmp(op, "wildcard") == 0)
            kind = COND_WILDCARD;
        else
            return fail(c, "%s", usage);
        if (json_is_string(list)) {
            out->u.but.conds = arena_alloc(c->arena, 1, sizeof(struct cond));
            out->u.but.n = 1;
            if (kind == COND_WILDCARD)
                return compile_wildcard(c, list, "anything-but wildcard", out->u.but.conds);
            out->u.but.conds[0].kind = kind;
            out->u.but.conds[0].u.str = json_text(c, list);
            return EB_OK;
        }
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        if (op != NULL)
            return fail(c, "anything-but %s expects a string or a non-empty list of strings", op);
        return fail(c, "anything-but expects a non-empty list of values");
    }

    n = json_array_size(list);
    out->u.but.conds = arena_alloc(c->arena, n, sizeof(struct cond));
    out->u.but.n = n;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(list, i);
        struct cond *inner = &out->u.but.conds[i];

        /* The operator itself was counted by the caller; each further list
         * entry counts as one more value. */
        if (i > 0 && (st = count_value(c)) != EB_OK)
            return st;
        if (op == NULL) {
            if (!is_scalar(e))
                return fail(c, "anything-but list entry %zu must be a string, number, "
                               "boolean or null", i);
            compile_scalar(c, e, inner);
        } else if (!json_is_string(e)) {
            return fail(c, "anything-but %s list entry %zu must be a string", op, i);
        } else if (kind == COND_WILDCARD) {
            if ((st = compile_wildcard(c, e, "anything-but wildcard", inner)) != EB_OK)
                return st;
        } else {
            inner->kind = kind;
            inner->u.str = json_text(c, e);
        }
    }
    return EB_OK;
}

/* prefix and suffix take a string or {"equals-ignore-case": string}. */
static eb_status compile_affix(struct compiler *c, const json_t *v, bool prefix,
                               struct cond *out)
{
    const char *op = prefix ? "prefix" : "suffix";
    const json_t *ci;

    if (json_is_string(v)) {
        out->kind = prefix ? COND_PREFIX : COND_SUFFIX;
        out->u.str = json_text(c, v);
        return EB_OK;
    }
    if (json_is_object(v) && json_object_size(v) == 1 &&
        (ci = json_object_get(v, "equals-ignore-case")) != NULL && json_is_string(ci)) {
        out->kind = prefix ? COND_PREFIX_CI : COND_SUFFIX_CI;
        out->u.str = json_text(c, ci);
        return EB_OK;
    }
    return fail(c, "%s expects a string or {\"equals-ignore-case\": string}", op);
}

/* Compiles one operator object such as {"prefix": "x"}. */
static eb_status compile_operator(struct compiler *c, const json_t *obj, struct cond *out)
{
    const char *op;
    const json_t *v;

    if (json_object_size(obj) != 1)
        return fail(c, "an operator object must have exactly one member");
    op = json_object_iter_key(json_object_iter((json_t *)obj));
    v = json_object_iter_value(json_object_iter((json_t *)obj));

    if (strcmp(op, "prefix") == 0)
        return compile_affix(c, v, true, out);
    if (strcmp(op, "suffix") == 0)
        return compile_affix(c, v, false, out);
    if (strcmp(op, "equals-ignore-case") == 0) {
        if (!json_is_string(v))
            return fail(c, "equals-ignore-case expects a string");
        out->kind = COND_EQUALS_CI;
        out->u.str = json_text(c, v);
        return EB_OK;
    }
    if (strcmp(op, "anything-but") == 0)
        return compile_anything_but(c, v, out);
    if (strcmp(op, "numeric") == 0)
        return compile_numeric(c, v, out);
    if (strcmp(op, "exists") == 0) {
        if (!json_is_boolean(v))
            return fail(c, "exists expects true or false");
        out->kind = COND_EXISTS;
        out->u.flag = json_is_true(v);
        return EB_OK;
    }
    if (strcmp(op, "wildcard") == 0)
        return compile_wildcard(c, v, "wildcard", out);
    if (strcmp(op, "cidr") == 0)
        return compile_cidr(c, v, out);
    {
        struct sbuf name = { (char[48]){ 0 }, 48, 0 };
        sb_quote(&name, op, strlen(op));
        return fail(c, "unknown operator %s", name.p);
    }
}

/* Compiles a leaf: a non-empty array of match values, OR'd. */
static eb_status compile_leaf(struct compiler *c, const json_t *arr, struct field *f)
{
    size_t n = json_array_size(arr);
    eb_status st = EB_OK;

    if (n == 0)
        return fail(c, "match values must not be an empty array");
    f->kind = FIELD_LEAF;
    f->conds = arena_alloc(c->arena, n, sizeof(struct cond));
    f->nconds = n;
    for (size_t i = 0; i < n && st == EB_OK; i++) {
        const json_t *v = json_array_get(arr, i);
        size_t old = path_push_index(c, i);

        if ((st = count_value(c)) != EB_OK)
            ;
        else if (json_is_array(v))
            st = fail(c, "match values must not contain arrays");
        else if (json_is_object(v))
            st = compile_operator(c, v, &f->conds[i]);
        else
            compile_scalar(c, v, &f->conds[i]);
        path_pop(c, old);
    }
    return st;
}

static eb_status compile_node(struct compiler *c, const json_t *obj, int depth,
                              struct node *out);

/* Compiles "$or": a non-empty array of non-empty objects, each matched
 * against the same event object as the level holding the "$or". */
static eb_status compile_or(struct compiler *c, const json_t *arr, int depth, struct field *f)
{
    size_t n;
    eb_status st = EB_OK;

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return fail(c, "expects a non-empty array of objects");
    n = json_array_size(arr);
    f->kind = FIELD_OR;
    f->nodes = arena_alloc(c->arena, n, sizeof(struct node));
    f->nnodes = n;
    for (size_t i = 0; i < n && st == EB_OK; i++) {
        const json_t *alt = json_array_get(arr, i);
        size_t old = path_push_index(c, i);

        if (!json_is_object(alt))
            st = fail(c, "must be an object");
        else
            st = compile_node(c, alt, depth + 1, &f->nodes[i]);
        path_pop(c, old);
    }
    return st;
}

/* Compiles one object level. depth is 1 for the root; the caller has pushed
 * the key leading here onto the path. */
static eb_status compile_node(struct compiler *c, const json_t *obj, int depth,
                              struct node *out)
{
    const char *key;
    size_t keylen, i = 0;
    json_t *v;
    eb_status st = EB_OK;

    if (depth > EB_PATTERN_MAX_DEPTH)
        return fail(c, "pattern depth exceeds %d", EB_PATTERN_MAX_DEPTH);
    out->nfields = json_object_size(obj);
    /* An empty object below the root would match every event, which is
     * surely not what its author meant. */
    if (out->nfields == 0 && depth > 1)
        return fail(c, "empty objects are not allowed below the root");
    out->fields = arena_alloc(c->arena, out->nfields, sizeof(struct field));

    json_object_keylen_foreach((json_t *)obj, key, keylen, v)
    {
        struct field *f = &out->fields[i++];
        size_t old = path_push_key(c, key, keylen);

        if (keylen == 3 && memcmp(key, "$or", 3) == 0) {
            st = compile_or(c, v, depth, f);
        } else {
            f->name = dup_text(c, key, keylen);
            if (json_is_array(v)) {
                st = compile_leaf(c, v, f);
            } else if (json_is_object(v)) {
                f->kind = FIELD_OBJECT;
                f->nodes = arena_alloc(c->arena, 1, sizeof(struct node));
                f->nnodes = 1;
                st = compile_node(c, v, depth + 1, f->nodes);
            } else {
                st = fail(c, "match values must be an array");
            }
        }
        path_pop(c, old);
        if (st != EB_OK)
            break;
    }
    return st;
}

/* Numbers every field of the tree below n in pre-order, from *next on, and
 * counts the leaf fields under each. Returns the leaf fields below n. */
static unsigned number_fields(struct node *n, unsigned *next)
{
    unsigned leaves = 0;

    for (size_t i = 0; i < n->nfields; i++) {
        struct field *f = &n->fields[i];

        f->index = (*next)++;
        f->leaves = f->kind == FIELD_LEAF;
        for (size_t k = 0; k < f->nnodes; k++)
            f->leaves += number_fields(&f->nodes[k], next);
        leaves += f->leaves;
    }
    return leaves;
}

eb_status eb_pattern_compile(const char *text, size_t len, eb_pattern **out, char *err,
                             size_t errlen)
{
    struct compiler c = { .err = { err, err != NULL ? errlen : 0, 0 } };
    json_t *root = NULL;
    json_error_t jerr;
    eb_pattern *p = NULL;
    eb_status st;

    assert(out != NULL);
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (text == NULL) {
        st = fail(&c, "pattern text is missing");
        goto out;
    }
    /* Cap before parsing, so a huge pattern costs nothing. */
    if (len > EB_PATTERN_MAX_BYTES) {
        st = fail(&c, "%zu bytes exceeds the limit of %d", len, EB_PATTERN_MAX_BYTES);
        goto out;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        /* jansson names its own decoding flag here; say what is wrong. */
        st = fail(&c, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                  strstr(jerr.text, "JSON_ALLOW_NUL") ? "strings must not contain \\u0000"
                                                      : jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        st = fail(&c, "must be a JSON object");
        goto out;
    }
    p = xcalloc(1, sizeof *p);
    c.arena = &p->arena;
    st = compile_node(&c, root, 1, &p->root);
    if (st != EB_OK)
        goto out;
    (void)number_fields(&p->root, &p->nfields);
    *out = p;
    p = NULL;
out:
    eb_pattern_free(p);
    json_decref(root);
    return st;
}

void eb_pattern_free(eb_pattern *p)
{
    if (p == NULL)
        return;
    arena_free(p->arena);
    free(p);
}

/* ---- Matching --------------------------------------------------------- */

/* Case folding is ASCII only: bytes of multi-byte UTF-8 sequences are all
 * >= 0x80 and compare exactly. */
static unsigned char fold(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

static bool equal_ci(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
            return false;
    return true;
}

static bool wildcard_match(const struct wildcard *wc, const char *s, size_t len)
{
    const struct text *first = &wc->segs[0], *last = &wc->segs[wc->nsegs - 1];
    size_t pos, end;

    if (wc->nsegs == 1)
        return len == first->len && memcmp(s, first->s, len) == 0;
    if (len < first->len + last->len || memcmp(s, first->s, first->len) != 0 ||
        memcmp(s + len - last->len, last->s, last->len) != 0)
        return false;
    /* The middle segments are found leftmost-first between the fixed head
     * and tail; taking the earliest place for each leaves the most room for
     * the rest, so no backtracking is needed. */
    pos = first->len;
    end = len - last->len;
    for (size_t i = 1; i + 1 < wc->nsegs; i++) {
        const struct text *seg = &wc->segs[i];
        const char *hit;

        if (seg->len == 0)
            continue;
        hit = memmem(s + pos, end - pos, seg->s, seg->len);
        if (hit == NULL)
            return false;
        pos = (size_t)(hit - s) + seg->len;
    }
    return true;
}

static bool cidr_match(const struct cidr *net, const char *s, size_t len)
{
    char text[ADDR_TEXT_MAX];
    unsigned char addr[16];
    int family;
    unsigned full, rest;

    if (len == 0 || len >= sizeof text)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    family = memchr(text, ':', len) != NULL ? AF_INET6 : AF_INET;
    if (family != net->family || inet_pton(family, text, addr) != 1)
        return false;
    full = net->bits / 8;
    rest = net->bits % 8;
    if (memcmp(addr, net->addr, full) != 0)
        return false;
    return rest == 0 || (addr[full] & (unsigned char)(0xff00u >> rest)) == net->addr[full];
}

static bool numeric_match(const struct numeric *r, double d)
{
    if ((r->lop == LOWER_GT && !(d > r->lo)) || (r->lop == LOWER_GE && !(d >= r->lo)))
        return false;
    if ((r->uop == UPPER_LT && !(d < r->hi)) || (r->uop == UPPER_LE && !(d <= r->hi)))
        return false;
    return true;
}

bool eb_pattern_cond_match(const struct cond *c, const struct eb_scalar *v)
{
    const char *s = v->kind == EB_SCALAR_STRING ? v->s : NULL;
    size_t len = v->kind == EB_SCALAR_STRING ? v->len : 0;
    bool num = v->kind == EB_SCALAR_NUMBER;

    switch (c->kind) {
    case COND_STRING:
        return s != NULL && len == c->u.str.len && memcmp(s, c->u.str.s, len) == 0;
    case COND_NUMBER:
        return num && v->num == c->u.num;
    case COND_BOOL:
        return (v->kind == EB_SCALAR_TRUE && c->u.flag) ||
               (v->kind == EB_SCALAR_FALSE && !c->u.flag);
    case COND_NULL:
        return v->kind == EB_SCALAR_NULL;
    case COND_PREFIX:
        return s != NULL && len >= c->u.str.len && memcmp(s, c->u.str.s, c->u.str.len) == 0;
    case COND_SUFFIX:
        return s != NULL && len >= c->u.str.len &&
               memcmp(s + len - c->u.str.len, c->u.str.s, c->u.str.len) == 0;
    case COND_EQUALS_CI:
        return s != NULL && len == c->u.str.len && equal_ci(s, c->u.str.s, len);
    case COND_PREFIX_CI:
        return s != NULL && len >= c->u.str.len && equal_ci(s, c->u.str.s, c->u.str.len);
    case COND_SUFFIX_CI:
        return s != NULL && len >= c->u.str.len &&
               equal_ci(s + len - c->u.str.len, c->u.str.s, c->u.str.len);
    case COND_WILDCARD:
        return s != NULL && wildcard_match(&c->u.wc, s, len);
    case COND_CIDR:
        return s != NULL && cidr_match(&c->u.net, s, len);
    case COND_NUMERIC:
        return num && numeric_match(&c->u.range, v->num);
    case COND_ANYTHING_BUT:
        for (size_t i = 0; i < c->u.but.n; i++)
            if (eb_pattern_cond_match(&c->u.but.conds[i], v))
                return false;
        return true;
    case COND_EXISTS:
        /* Handled by match_leaf(): it is about the field, not one value. */
        break;
    }
    return false;
}

/* Returns whether any scalar in v (v itself, or the elements of an array,
 * flattened) satisfies c. Objects are not leaves and never match. */
static bool cond_match_any(const struct cond *c, const json_t *v, int depth)
{
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;

        if (depth >= ARRAY_FLATTEN_DEPTH)
            return false;
        json_array_foreach(v, i, e)
            if (cond_match_any(c, e, depth + 1))
                return true;
        return false;
    }
    if (json_is_object(v))
        return false;
    struct eb_scalar s = eb_scalar_of_json(v);
    return eb_pattern_cond_match(c, &s);
}

/* A field exists, for "exists", when it holds at least one leaf value: a
 * scalar (null included) or an array holding one. Objects and empty arrays
 * are not leaves, as in EventBridge. */
static bool has_leaf(const json_t *v, int depth)
{
    if (v == NULL || json_is_object(v))
        return false;
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;

        if (depth >= ARRAY_FLATTEN_DEPTH)
            return false;
        json_array_foreach(v, i, e)
            if (has_leaf(e, depth + 1))
                return true;
        return false;
    }
    return true;
}

static bool match_leaf(const struct field *f, const json_t *v)
{
    for (size_t i = 0; i < f->nconds; i++) {
        const struct cond *c = &f->conds[i];

        if (c->kind == COND_EXISTS) {
            if (has_leaf(v, 0) == c->u.flag)
                return true;
        } else if (v != NULL && cond_match_any(c, v, 0)) {
            return true;
        }
    }
    return false;
}

/* Explain state: the event path walked so far and the reason buffer. The
 * matcher gets NULL instead on the hot path and on alternatives that are not
 * explained, so explaining costs nothing when not asked for. */
struct explain {
    struct sbuf reason;
    char path[256];
    size_t pathlen;
};

static size_t ex_push_key(struct explain *ex, const struct text *name)
{
    size_t old = ex->pathlen;
    struct sbuf b = { ex->path, sizeof ex->path, ex->pathlen };

    sb_printf(&b, "%s%.*s", old > 0 ? "." : "", (int)(name->len > 128 ? 128 : name->len),
              name->s);
    ex->pathlen = b.len;
    return old;
}

static size_t ex_push_index(struct explain *ex, size_t i)
{
    size_t old = ex->pathlen;
    struct sbuf b = { ex->path, sizeof ex->path, ex->pathlen };

    sb_printf(&b, "[%zu]", i);
    ex->pathlen = b.len;
    return old;
}

static void ex_pop(struct explain *ex, size_t old)
{
    ex->pathlen = old;
    ex->path[old] = '\0';
}

static void describe_cond(struct sbuf *b, const struct cond *c)
{
    switch (c->kind) {
    case COND_STRING:
        sb_quote(b, c->u.str.s, c->u.str.len);
        break;
    case COND_NUMBER:
        sb_number(b, c->u.num);
        break;
    case COND_BOOL:
        sb_printf(b, "%s", c->u.flag ? "true" : "false");
        break;
    case COND_NULL:
        sb_printf(b, "null");
        break;
    case COND_PREFIX:
    case COND_SUFFIX:
    case COND_EQUALS_CI:
    case COND_PREFIX_CI:
    case COND_SUFFIX_CI:
        sb_printf(b, "%s ", c->kind == COND_PREFIX      ? "prefix"
                            : c->kind == COND_SUFFIX    ? "suffix"
                            : c->kind == COND_EQUALS_CI ? "equals-ignore-case"
                            : c->kind == COND_PREFIX_CI ? "prefix equals-ignore-case"
                                                        : "suffix equals-ignore-case");
        sb_quote(b, c->u.str.s, c->u.str.len);
        break;
    case COND_WILDCARD:
        sb_printf(b, "wildcard ");
        sb_quote(b, c->u.wc.src.s, c->u.wc.src.len);
        break;
    case COND_CIDR:
        sb_printf(b, "cidr %.*s", (int)c->u.net.src.len, c->u.net.src.s);
        break;
    case COND_NUMERIC:
        sb_printf(b, "numeric");
        if (c->u.range.equals) {
            sb_printf(b, " = ");
            sb_number(b, c->u.range.lo);
            break;
        }
        if (c->u.range.lop != LOWER_NONE) {
            sb_printf(b, " %s ", c->u.range.lop == LOWER_GT ? ">" : ">=");
            sb_number(b, c->u.range.lo);
        }
        if (c->u.range.uop != UPPER_NONE) {
            sb_printf(b, " %s ", c->u.range.uop == UPPER_LT ? "<" : "<=");
            sb_number(b, c->u.range.hi);
        }
        break;
    case COND_EXISTS:
        sb_printf(b, "exists %s", c->u.flag ? "true" : "false");
        break;
    case COND_ANYTHING_BUT:
        sb_printf(b, "anything-but %s", c->u.but.n > 1 ? "[" : "");
        for (size_t i = 0; i < c->u.but.n; i++) {
            if (i > 0)
                sb_printf(b, ", ");
            describe_cond(b, &c->u.but.conds[i]);
        }
        sb_printf(b, "%s", c->u.but.n > 1 ? "]" : "");
        break;
    }
}

/* Writes "<path>: expected <conditions>, got <value>", or "<path>: field is
 * absent" when the event has no such field. */
static void explain_leaf(struct explain *ex, const struct field *f, const json_t *v)
{
    struct sbuf *b = &ex->reason;

    b->len = 0;
    sb_printf(b, "%s: ", ex->path);
    if (v == NULL) {
        sb_printf(b, "field is absent");
        return;
    }
    sb_printf(b, "expected ");
    for (size_t i = 0; i < f->nconds; i++) {
        if (i > 0)
            sb_printf(b, " or ");
        describe_cond(b, &f->conds[i]);
    }
    sb_printf(b, ", got ");
    if (json_is_string(v)) {
        sb_quote(b, json_string_value(v), json_string_length(v));
    } else if (json_is_number(v)) {
        sb_number(b, json_number_value(v));
    } else {
        /* Only explain() gets here; allocating is fine off the hot path. */
        char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

        if (dump == NULL) {
            fputs("cebusd: out of memory\n", stderr);
            abort();
        }
        sb_printf(b, "%.64s%s", dump, strlen(dump) > 64 ? "..." : "");
        free(dump);
    }
}

static bool match_node(const struct node *n, const json_t *obj, struct explain *ex);

/* Matches a nested pattern object against the event value v. An array
 * matches if one of its object elements matches the whole nested pattern, so
 * the fields matched come from the same element. A value that is absent,
 * not an object, or an array without objects is matched as an absent object
 * (only "exists": false can then match). */
static bool match_object_field(const struct node *n, const json_t *v, struct explain *ex)
{
    if (json_is_array(v)) {
        size_t i, nobj = 0;
        const json_t *e;
        bool first = true;

        json_array_foreach(v, i, e)
        {
            bool ok;

            if (!json_is_object(e))
                continue;
            nobj++;
            /* Only the first object element is explained, under its index. */
            if (first && ex != NULL) {
                size_t old = ex_push_index(ex, i);
                ok = match_node(n, e, ex);
                ex_pop(ex, old);
            } else {
                ok = match_node(n, e, NULL);
            }
            first = false;
            if (ok)
                return true;
        }
        if (nobj > 0)
            return false;
        return match_node(n, NULL, ex);
    }
    return match_node(n, json_is_object(v) ? v : NULL, ex);
}

/* Matches one object level: every field in order, stopping at the first that
 * fails. obj may be NULL, meaning the event has no object here. */
static bool match_node(const struct node *n, const json_t *obj, struct explain *ex)
{
    for (size_t i = 0; i < n->nfields; i++) {
        const struct field *f = &n->fields[i];
        const json_t *v;
        size_t old = 0;
        bool ok = false;

        if (f->kind == FIELD_OR) {
            for (size_t k = 0; k < f->nnodes && !ok; k++)
                ok = match_node(&f->nodes[k], obj, k == 0 ? ex : NULL);
            /* The first alternative's failure was written; say it was one
             * of several. */
            if (!ok && ex != NULL && f->nnodes > 1)
                sb_printf(&ex->reason, " (first of %zu $or alternatives)", f->nnodes);
            if (!ok)
                return false;
            continue;
        }
        v = obj != NULL ? json_object_getn(obj, f->name.s, f->name.len) : NULL;
        if (ex != NULL)
            old = ex_push_key(ex, &f->name);
        if (f->kind == FIELD_LEAF) {
            ok = match_leaf(f, v);
            if (!ok && ex != NULL)
                explain_leaf(ex, f, v);
        } else {
            ok = match_object_field(&f->nodes[0], v, ex);
        }
        if (ex != NULL)
            ex_pop(ex, old);
        if (!ok)
            return false;
    }
    return true;
}

const struct node *eb_pattern_root(const eb_pattern *p)
{
    return &p->root;
}

unsigned eb_pattern_field_count(const eb_pattern *p)
{
    return p->nfields;
}

bool eb_pattern_match(const eb_pattern *p, const json_t *event)
{
    assert(p != NULL);
    return match_node(&p->root, json_is_object(event) ? event : NULL, NULL);
}

bool eb_pattern_explain(const eb_pattern *p, const json_t *event, char *reason,
                        size_t reasonlen)
{
    struct explain ex = { .reason = { reason, reason != NULL ? reasonlen : 0, 0 } };
    bool ok;

    assert(p != NULL);
    ex.path[0] = '\0';
    if (reason == NULL || reasonlen == 0)
        return eb_pattern_match(p, event);
    reason[0] = '\0';
    ok = match_node(&p->root, json_is_object(event) ? event : NULL, &ex);
    if (ok)
        reason[0] = '\0';
    return ok;
}

/* ---- Anchors, for the multi-pattern matcher ---------------------------- */

/* A static estimate of how many events hit an anchor set; lower is more
 * selective. ANCHOR_NONE means "no anchor set". Exact strings are the most
 * selective; short affixes, booleans and numeric ranges the least. */
#define ANCHOR_NONE 1000000u

static unsigned affix_cost(size_t len)
{
    return len >= 4 ? 3 : len >= 2 ? 5 : 8;
}

/* The cost of the "any leaf value" anchor (EB_ANCHOR_EXISTS). */
#define COST_ANY_LEAF 50

static unsigned cond_cost(const struct cond *c)
{
    switch (c->kind) {
    case COND_STRING:
        return 1;
    case COND_NUMBER:
    case COND_EQUALS_CI:
        return 2;
    case COND_BOOL:
    case COND_NULL:
        return 10;
    case COND_PREFIX:
    case COND_PREFIX_CI:
    case COND_SUFFIX:
    case COND_SUFFIX_CI:
        return c->u.str.len == 0 ? COST_ANY_LEAF : affix_cost(c->u.str.len) + 1;
    case COND_WILDCARD: {
        const struct text *first = &c->u.wc.segs[0], *last = &c->u.wc.segs[c->u.wc.nsegs - 1];
        size_t best = first->len > last->len ? first->len : last->len;

        if (c->u.wc.nsegs == 1)
            return 1;
        return best == 0 ? COST_ANY_LEAF : affix_cost(best) + 2;
    }
    case COND_NUMERIC:
        return c->u.range.lop != LOWER_NONE && c->u.range.uop != UPPER_NONE ? 8 : 12;
    case COND_EXISTS:
        /* "exists": false matches on absence: no anchor can find it. */
        return c->u.flag ? COST_ANY_LEAF : ANCHOR_NONE;
    case COND_CIDR:
    case COND_ANYTHING_BUT:
        /* Only a leaf value can satisfy them: "some leaf exists" is an
         * anchor, the least selective one, which the full check refines. */
        return COST_ANY_LEAF;
    }
    return ANCHOR_NONE;
}

static unsigned cost_add(unsigned a, unsigned b)
{
    return a >= ANCHOR_NONE || b >= ANCHOR_NONE || a + b >= ANCHOR_NONE ? ANCHOR_NONE : a + b;
}

static unsigned node_cost(const struct node *n, size_t *best);

/* The cost of field f's own anchor set. */
static unsigned field_cost(const struct field *f)
{
    unsigned sum = 0;
    size_t unused;

    switch (f->kind) {
    case FIELD_LEAF:
        for (size_t i = 0; i < f->nconds; i++)
            sum = cost_add(sum, cond_cost(&f->conds[i]));
        return sum;
    case FIELD_OBJECT:
        return node_cost(&f->nodes[0], &unused);
    case FIELD_OR:
        for (size_t i = 0; i < f->nnodes; i++)
            sum = cost_add(sum, node_cost(&f->nodes[i], &unused));
        return sum;
    }
    return ANCHOR_NONE;
}

/* Every field of a node is required, so any one field's anchor set covers
 * the node: take the cheapest, its index in *best. */
static unsigned node_cost(const struct node *n, size_t *best)
{
    unsigned min = ANCHOR_NONE;

    for (size_t i = 0; i < n->nfields; i++) {
        unsigned c = field_cost(&n->fields[i]);
        if (c < min) {
            min = c;
            *best = i;
        }
    }
    return min;
}

struct anchor_walk {
    eb_anchor_fn *fn;
    void *arg;
    unsigned group, ngroups;
    struct eb_anchor_seg path[EB_PATTERN_MAX_DEPTH + 1];
    size_t depth;
};

static void emit_cond(struct anchor_walk *w, const struct cond *c)
{
    struct eb_anchor a = { .path = w->path, .depth = w->depth, .group = w->group };

    switch (c->kind) {
    case COND_PREFIX:
    case COND_SUFFIX:
    case COND_PREFIX_CI:
    case COND_SUFFIX_CI:
        if (c->u.str.len == 0) {
            a.kind = EB_ANCHOR_EXISTS; /* any string: some leaf is needed */
            break;
        }
        /* fall through */
    case COND_STRING:
    case COND_EQUALS_CI:
        a.kind = c->kind == COND_STRING      ? EB_ANCHOR_STRING
                 : c->kind == COND_PREFIX    ? EB_ANCHOR_PREFIX
                 : c->kind == COND_SUFFIX    ? EB_ANCHOR_SUFFIX
                 : c->kind == COND_EQUALS_CI ? EB_ANCHOR_CI
                 : c->kind == COND_PREFIX_CI ? EB_ANCHOR_PREFIX_CI
                                             : EB_ANCHOR_SUFFIX_CI;
        a.s = c->u.str.s;
        a.len = c->u.str.len;
        break;
    case COND_NUMBER:
        a.kind = EB_ANCHOR_NUMBER;
        a.num = c->u.num;
        break;
    case COND_BOOL:
        a.kind = c->u.flag ? EB_ANCHOR_TRUE : EB_ANCHOR_FALSE;
        break;
    case COND_NULL:
        a.kind = EB_ANCHOR_NULL;
        break;
    case COND_WILDCARD: {
        /* A wildcard without '*' is an exact string; otherwise its longer
         * literal end is a prefix or suffix every match has. */
        const struct text *first = &c->u.wc.segs[0], *last = &c->u.wc.segs[c->u.wc.nsegs - 1];

        if (c->u.wc.nsegs > 1)
            a.verify = c;
        if (c->u.wc.nsegs == 1) {
            a.kind = EB_ANCHOR_STRING;
            a.s = first->s;
            a.len = first->len;
        } else if (first->len == 0 && last->len == 0) {
            a.kind = EB_ANCHOR_EXISTS; /* "*", "*x*": some leaf is needed */
        } else if (first->len >= last->len) {
            a.kind = EB_ANCHOR_PREFIX;
            a.s = first->s;
            a.len = first->len;
        } else {
            a.kind = EB_ANCHOR_SUFFIX;
            a.s = last->s;
            a.len = last->len;
        }
        break;
    }
    case COND_NUMERIC:
        a.kind = EB_ANCHOR_RANGE;
        a.lo = c->u.range.lop == LOWER_NONE ? -INFINITY : c->u.range.lo;
        a.hi = c->u.range.uop == UPPER_NONE ? INFINITY : c->u.range.hi;
        a.lo_open = c->u.range.lop == LOWER_GT;
        a.hi_open = c->u.range.uop == UPPER_LT;
        break;
    case COND_EXISTS:
        assert(c->u.flag);
        a.kind = EB_ANCHOR_EXISTS;
        break;
    case COND_CIDR:
    case COND_ANYTHING_BUT:
        a.kind = EB_ANCHOR_EXISTS;
        a.verify = c;
        break;
    }
    w->fn(&a, w->arg);
}

static void emit_node(struct anchor_walk *w, const struct node *n);

static void emit_field(struct anchor_walk *w, const struct field *f)
{
    switch (f->kind) {
    case FIELD_LEAF:
    case FIELD_OBJECT:
        assert(w->depth < EB_PATTERN_MAX_DEPTH + 1);
        w->path[w->depth++] = (struct eb_anchor_seg){ f->name.s, f->name.len };
        if (f->kind == FIELD_LEAF)
            for (size_t i = 0; i < f->nconds; i++)
                emit_cond(w, &f->conds[i]);
        else
            emit_node(w, &f->nodes[0]);
        w->depth--;
        break;
    case FIELD_OR:
        for (size_t i = 0; i < f->nnodes; i++)
            emit_node(w, &f->nodes[i]);
        break;
    }
}

static void emit_node(struct anchor_walk *w, const struct node *n)
{
    size_t best = 0;
    unsigned c = node_cost(n, &best);

    assert(c < ANCHOR_NONE);
    (void)c;
    emit_field(w, &n->fields[best]);
}

/* Every field of an object level is required, so each indexable one is an
 * anchor group of its own; nested objects' fields likewise (a match has
 * each of them in some element, which is all a group promises). */
static void emit_groups(struct anchor_walk *w, const struct node *n)
{
    for (size_t i = 0; i < n->nfields && w->ngroups < EB_ANCHOR_MAX_GROUPS; i++) {
        const struct field *f = &n->fields[i];

        if (f->kind == FIELD_OBJECT) {
            assert(w->depth < EB_PATTERN_MAX_DEPTH + 1);
            w->path[w->depth++] = (struct eb_anchor_seg){ f->name.s, f->name.len };
            emit_groups(w, &f->nodes[0]);
            w->depth--;
        } else if (field_cost(f) < ANCHOR_NONE) {
            w->group = w->ngroups++;
            emit_field(w, f);
        }
    }
}

bool eb_pattern_leaf_indexed(const struct field *f)
{
    return f->kind == FIELD_LEAF && field_cost(f) < ANCHOR_NONE;
}

unsigned eb_pattern_anchors(const eb_pattern *p, eb_anchor_fn *fn, void *arg)
{
    struct anchor_walk w = { .fn = fn, .arg = arg };
    size_t best = 0;

    assert(p != NULL && fn != NULL);
    if (node_cost(&p->root, &best) >= ANCHOR_NONE)
        return 0;
    emit_groups(&w, &p->root);
    assert(w.ngroups > 0);
    return w.ngroups;
}
