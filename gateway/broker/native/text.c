/* Byte buffers, UTF-8 and JSON string writers (see text.h for which rule is whose). */
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sb_grow(sbuf *b, size_t need)
{
    if (b->len + need + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + need + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        fputs("broker: out of memory\n", stderr);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void sb_put(sbuf *b, const void *data, size_t n)
{
    sb_grow(b, n);
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sb_putc(sbuf *b, char c) { sb_put(b, &c, 1); }

void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sb_grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void utf8_put(sbuf *out, uint32_t cp)
{
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    sb_put(out, u, n);
}

/* How many bytes of a well-formed sequence start at s[0] (RFC 3629 table 3-7), 0 when
 * s[0..] is not one: the length of its maximal valid prefix is written to *prefix, which
 * is what Python's "replace" handler turns into one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *prefix, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        *cp = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates (CESU-8) */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        *cp = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *prefix = 1;
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (i >= n || s[i] < lo_i || s[i] > hi_i) {
            *prefix = i;
            return 0;
        }
        *cp = (*cp << 6) | (s[i] & 0x3F);
    }
    return len;
}

int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0, prefix;
    uint32_t cp;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq(s + i, n - i, &prefix, &cp);
        if (len == 0)
            return 0;
        i += len;
    }
    return 1;
}

void text_replace(sbuf *out, const unsigned char *s, size_t n)
{
    size_t i = 0, prefix;
    uint32_t cp;
    while (i < n) {
        size_t len = utf8_seq(s + i, n - i, &prefix, &cp);
        if (len == 0) {
            utf8_put(out, 0xFFFD);
            i += prefix;
        } else {
            sb_put(out, s + i, len);
            i += len;
        }
    }
}

/* Decode one code point of (possibly WTF-8, for lone surrogates from \u escapes) text. */
static uint32_t next_cp(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if (c < 0xE0) {
        len = 2;
        cp = c & 0x1F;
    } else if (c < 0xF0) {
        len = 3;
        cp = c & 0x0F;
    } else {
        len = 4;
        cp = c & 0x07;
    }
    for (size_t k = 1; k < len && *i + k < n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += len;
    return cp;
}

static int short_escape(sbuf *out, unsigned char c)
{
    switch (c) {
    case '"': sb_puts(out, "\\\""); return 1;
    case '\\': sb_puts(out, "\\\\"); return 1;
    case '\b': sb_puts(out, "\\b"); return 1;
    case '\f': sb_puts(out, "\\f"); return 1;
    case '\n': sb_puts(out, "\\n"); return 1;
    case '\r': sb_puts(out, "\\r"); return 1;
    case '\t': sb_puts(out, "\\t"); return 1;
    default: return 0;
    }
}

void json_canonical(sbuf *out, const char *utf8, size_t n)
{
    const unsigned char *s = (const unsigned char *)utf8;
    sb_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        if (short_escape(out, s[i]))
            continue;
        if (s[i] < 0x20)
            sb_printf(out, "\\u%04x", s[i]);
        else
            sb_putc(out, (char)s[i]);
    }
    sb_putc(out, '"');
}

void json_ascii(sbuf *out, const char *utf8, size_t n)
{
    const unsigned char *s = (const unsigned char *)utf8;
    sb_putc(out, '"');
    size_t i = 0;
    while (i < n) {
        if (short_escape(out, s[i])) {
            i++;
            continue;
        }
        if (s[i] >= 0x20 && s[i] < 0x7F) {
            sb_putc(out, (char)s[i++]);
            continue;
        }
        uint32_t cp = next_cp(s, n, &i);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            sb_printf(out, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else {
            sb_printf(out, "\\u%04x", cp);
        }
    }
    sb_putc(out, '"');
}
