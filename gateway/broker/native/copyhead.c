/* The header of a shadow copy (see shadow.h): the request's, flagged and re-dated. */
#define _GNU_SOURCE /* memmem */
#include "shadow.h"

#include <stdlib.h>
#include <string.h>

#include "header.h"

typedef struct {
    const unsigned char *raw;
    size_t raw_len;
    sbuf key;
} kept_member;

typedef struct {
    kept_member *m;
    size_t n, cap;
    int call, has_method, shadowed;
    sbuf *method;
} head_scan;

static int key_is(const sbuf *key, const char *name)
{
    size_t n = strlen(name);
    return key->len == n && memcmp(key->p, name, n) == 0;
}

/* The last occurrence of a member counts, as in json.loads. */
static void take(void *ctx, const header_member *hm)
{
    head_scan *h = ctx;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 16;
        h->m = realloc(h->m, h->cap * sizeof *h->m);
        if (h->m == NULL)
            abort();
    }
    kept_member *k = &h->m[h->n++];
    memset(k, 0, sizeof *k);
    k->raw = hm->raw;
    k->raw_len = hm->raw_len;
    sb_put(&k->key, hm->key->p ? hm->key->p : "", hm->key->len);
    if (key_is(hm->key, "kind")) {
        h->call = hm->is_string && key_is(hm->text, "call");
    } else if (key_is(hm->key, "method")) {
        h->has_method = hm->is_string;
        h->method->len = 0;
        if (hm->is_string)
            sb_put(h->method, hm->text->p ? hm->text->p : "", hm->text->len);
    } else if (key_is(hm->key, "shadow")) {
        h->shadowed = hm->is_true;
    }
}

static int key_after(const sbuf *key, const char *name)
{
    size_t n = strlen(name), m = key->len < n ? key->len : n;
    int c = memcmp(key->p ? key->p : "", name, m);
    return c > 0 || (c == 0 && key->len > n);
}

int header_shadow_copy(const unsigned char *frame, size_t n, int64_t deadline, sbuf *out,
                       sbuf *method)
{
    /* gateway/broker/shadow.py _call_header: the cheap refusal first, as there. */
    if (n == 0 || frame[0] != '{' || !memmem(frame, n, "\"call\"", 6))
        return 0;
    head_scan h = {0};
    h.method = method;
    int ok = header_members(frame, n, take, &h) && h.call && h.has_method && !h.shadowed;
    /* Not a copy of a copy: that would shadow a candidate with itself. */
    if (ok) {
        /* Members in their order, "deadline" and "shadow" replaced and put where sorted
         * keys have them: a canonical header (SPEC 4.8) gives the bytes the Python
         * broker's re-encoding gives. */
        int first = 1, put_deadline = 0, put_shadow = 0;
        sb_putc(out, '{');
        for (size_t i = 0; i <= h.n; i++) {
            kept_member *e = i < h.n ? &h.m[i] : NULL;
            if (!put_deadline && (e == NULL || key_after(&e->key, "deadline"))) {
                sb_printf(out, "%s\"deadline\":%lld", first ? "" : ",", (long long)deadline);
                first = 0;
                put_deadline = 1;
            }
            if (!put_shadow && (e == NULL || key_after(&e->key, "shadow"))) {
                sb_puts(out, first ? "\"shadow\":true" : ",\"shadow\":true");
                first = 0;
                put_shadow = 1;
            }
            if (e == NULL)
                break;
            if (key_is(&e->key, "deadline") || key_is(&e->key, "shadow"))
                continue;
            if (!first)
                sb_putc(out, ',');
            sb_put(out, e->raw, e->raw_len);
            first = 0;
        }
        sb_putc(out, '}');
    }
    for (size_t i = 0; i < h.n; i++)
        sb_free(&h.m[i].key);
    free(h.m);
    return ok;
}
