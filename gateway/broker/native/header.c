/* A strict JSON scanner for header and metadata frames (see header.h). */
#include "header.h"

#include <string.h>

/* Python's json module gives up (RecursionError) somewhere below 1000 levels; the codec
 * that reads READY metadata accepts 128 (SPEC 4.8). */
#define HEADER_MAX_DEPTH 900
#define METADATA_MAX_DEPTH 128

enum { J_BAD, J_STR, J_INT, J_NUM, J_TRUE, J_FALSE, J_NULL, J_OBJ, J_ARR };

typedef struct {
    const unsigned char *p, *end;
    int max_depth;
    int strict; /* no NaN / Infinity: the codec's rules for metadata */
} scanner;

typedef struct {
    int type;
    int64_t i; /* J_INT, clamped */
    sbuf *text; /* J_STR: decoded here when not NULL */
} jvalue;

static void skip_ws(scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(scanner *s, uint32_t *out)
{
    uint32_t v = 0;
    if (s->end - s->p < 4)
        return 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = *s->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* A string at s->p (which is '"'); decoded into out when out != NULL. The frame was
 * checked to be UTF-8 already, so raw bytes are copied; a lone surrogate escape is kept
 * (as Python keeps it), written in the 3-byte form. */
static int scan_string(scanner *s, sbuf *out)
{
    s->p++;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return 1;
        }
        if (c < 0x20)
            return 0; /* a raw control character: json.loads(strict=True) refuses it */
        if (c != '\\') {
            const unsigned char *run = s->p;
            while (s->p < s->end && *s->p != '"' && *s->p != '\\' && *s->p >= 0x20)
                s->p++;
            if (out)
                sb_put(out, run, (size_t)(s->p - run));
            continue;
        }
        if (++s->p >= s->end)
            return 0;
        char e = (char)*s->p++, ch;
        switch (e) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case '/': ch = '/'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (!hex4(s, &cp))
                return 0;
            if (cp >= 0xD800 && cp <= 0xDBFF && s->end - s->p >= 6 && s->p[0] == '\\'
                && s->p[1] == 'u') {
                const unsigned char *save = s->p;
                s->p += 2;
                if (!hex4(s, &lo))
                    return 0;
                if (lo >= 0xDC00 && lo <= 0xDFFF)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    s->p = save; /* not a pair: the next escape stands alone */
            }
            if (out)
                utf8_put(out, cp);
            continue;
        }
        default:
            return 0;
        }
        if (out)
            sb_putc(out, ch);
    }
    return 0;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int scan_number(scanner *s, jvalue *v)
{
    int neg = 0, overflow = 0;
    uint64_t mag = 0;
    if (*s->p == '-') {
        neg = 1;
        s->p++;
    }
    if (s->p >= s->end)
        return 0;
    if (*s->p == '0') {
        s->p++;
    } else if (is_digit(*s->p)) {
        while (s->p < s->end && is_digit(*s->p)) {
            if (mag > (UINT64_MAX - 9) / 10)
                overflow = 1;
            else
                mag = mag * 10 + (uint64_t)(*s->p - '0');
            s->p++;
        }
    } else {
        return 0;
    }
    v->type = J_INT;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (s->p >= s->end || !is_digit(*s->p))
            return 0;
        while (s->p < s->end && is_digit(*s->p))
            s->p++;
        v->type = J_NUM;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || !is_digit(*s->p))
            return 0;
        while (s->p < s->end && is_digit(*s->p))
            s->p++;
        v->type = J_NUM;
    }
    if (v->type == J_INT) {
        if (overflow || mag > (uint64_t)HEADER_INT_LIMIT)
            mag = (uint64_t)HEADER_INT_LIMIT;
        v->i = neg ? -(int64_t)mag : (int64_t)mag;
    }
    return 1;
}

static int literal(scanner *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return 0;
    s->p += n;
    return 1;
}

/* One value at s->p; its kind (and integer or text when asked) lands in v. */
static int scan_value(scanner *s, jvalue *v, int depth)
{
    skip_ws(s);
    if (s->p >= s->end)
        return 0;
    unsigned char c = *s->p;
    if (c == '{' || c == '[') {
        if (depth >= s->max_depth)
            return 0;
        unsigned char close = c == '{' ? '}' : ']';
        v->type = c == '{' ? J_OBJ : J_ARR;
        s->p++;
        skip_ws(s);
        if (s->p < s->end && *s->p == close) {
            s->p++;
            return 1;
        }
        for (;;) {
            jvalue inner = {J_BAD, 0, NULL};
            if (close == '}') {
                skip_ws(s);
                if (s->p >= s->end || *s->p != '"' || !scan_string(s, NULL))
                    return 0;
                skip_ws(s);
                if (s->p >= s->end || *s->p++ != ':')
                    return 0;
            }
            if (!scan_value(s, &inner, depth + 1))
                return 0;
            skip_ws(s);
            if (s->p >= s->end)
                return 0;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p++ == close)
                return 1;
            return 0;
        }
    }
    if (c == '"') {
        v->type = J_STR;
        if (v->text)
            v->text->len = 0;
        return scan_string(s, v->text);
    }
    if (c == '-' || is_digit(c)) {
        if (!s->strict && literal(s, "-Infinity")) {
            v->type = J_NUM;
            return 1;
        }
        return scan_number(s, v);
    }
    if (literal(s, "true")) {
        v->type = J_TRUE;
        return 1;
    }
    if (literal(s, "false")) {
        v->type = J_FALSE;
        return 1;
    }
    if (literal(s, "null")) {
        v->type = J_NULL;
        return 1;
    }
    if (!s->strict && (literal(s, "NaN") || literal(s, "Infinity"))) {
        v->type = J_NUM;
        return 1;
    }
    return 0;
}

/* The top-level object: for each member whose key is one of keys[], its value goes to
 * vals[] (the last occurrence wins). Returns 1 for a valid document that is an object. */
static int scan_object(scanner *s, const char *const *keys, jvalue *vals, int nkeys)
{
    sbuf key = {0};
    int ok = 0;
    skip_ws(s);
    if (s->p >= s->end || *s->p != '{')
        goto done;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
    } else {
        for (;;) {
            skip_ws(s);
            key.len = 0;
            if (s->p >= s->end || *s->p != '"' || !scan_string(s, &key))
                goto done;
            skip_ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                goto done;
            int slot = -1;
            for (int k = 0; k < nkeys; k++)
                if (key.len == strlen(keys[k]) && memcmp(key.p, keys[k], key.len) == 0)
                    slot = k;
            jvalue scratch = {J_BAD, 0, NULL};
            jvalue *v = slot >= 0 ? &vals[slot] : &scratch;
            if (!scan_value(s, v, 1))
                goto done;
            skip_ws(s);
            if (s->p >= s->end)
                goto done;
            if (*s->p == ',') {
                s->p++;
                continue;
            }
            if (*s->p++ != '}')
                goto done;
            break;
        }
    }
    skip_ws(s);
    ok = s->p == s->end; /* trailing data is an error */
done:
    sb_free(&key);
    return ok;
}

void header_read(const unsigned char *frame, size_t n, header_fields *out)
{
    static const char *const keys[] = {"id", "deadline", "idem", "more", "kind"};
    sbuf kind = {0};
    jvalue vals[5] = {{J_BAD, 0, &out->id}, {J_BAD, 0, NULL}, {J_BAD, 0, NULL},
                      {J_BAD, 0, NULL}, {J_BAD, 0, &kind}};
    out->ok = out->has_deadline = out->idem = out->more = out->cancel = out->error = 0;
    out->id.len = 0;
    out->deadline = 0;
    /* Only frames that start with '{' can be ours; anything else is a raw MDP body. */
    if (n == 0 || frame[0] != '{' || !utf8_valid(frame, n))
        return;
    scanner s = {frame, frame + n, HEADER_MAX_DEPTH, 0};
    if (!scan_object(&s, keys, vals, 5)) {
        sb_free(&kind);
        return;
    }
    /* A reply's "more" counts even when its id does not (protocol.mdp.reply_fields). */
    out->more = vals[3].type == J_TRUE;
    out->error = vals[4].type == J_STR && kind.len == 5 && memcmp(kind.p, "error", 5) == 0;
    if (vals[0].type != J_STR || out->id.len == 0) {
        sb_free(&kind);
        return;
    }
    out->ok = 1;
    if (vals[1].type == J_INT) {
        out->has_deadline = 1;
        out->deadline = vals[1].i;
    }
    out->idem = vals[2].type == J_TRUE;
    out->cancel = vals[4].type == J_STR && kind.len == 6 && memcmp(kind.p, "cancel", 6) == 0;
    sb_free(&kind);
}

void header_free(header_fields *h) { sb_free(&h->id); }

void metadata_read(const unsigned char *frame, size_t n, ready_metadata *out)
{
    static const char *const keys[] = {"credit", "heartbeat_ms", "cancel"};
    jvalue vals[3] = {{J_BAD, 0, NULL}, {J_BAD, 0, NULL}, {J_BAD, 0, NULL}};
    memset(out, 0, sizeof *out);
    /* The codec refuses a byte order mark and bad UTF-8 (SPEC 4.7). */
    if (n == 0 || !utf8_valid(frame, n) || (n >= 3 && memcmp(frame, "\xEF\xBB\xBF", 3) == 0))
        return;
    scanner s = {frame, frame + n, METADATA_MAX_DEPTH, 1};
    if (!scan_object(&s, keys, vals, 3))
        return;
    out->ok = 1;
    if (vals[0].type == J_INT) {
        out->has_credit = 1;
        out->credit = vals[0].i;
    }
    if (vals[1].type == J_INT && vals[1].i > 0)
        out->heartbeat_ms = vals[1].i;
    out->cancel = vals[2].type == J_TRUE;
}

int header_sticky(const unsigned char *frame, size_t n, sbuf *out)
{
    static const char *const keys[] = {"sticky", "rid", "id"};
    sbuf text[3] = {{0}, {0}, {0}};
    jvalue vals[3] = {{J_BAD, 0, &text[0]}, {J_BAD, 0, &text[1]}, {J_BAD, 0, &text[2]}};
    int found = 0;
    out->len = 0;
    if (n && frame[0] == '{' && utf8_valid(frame, n)) {
        scanner s = {frame, frame + n, HEADER_MAX_DEPTH, 0};
        if (scan_object(&s, keys, vals, 3))
            for (int k = 0; k < 3 && !found; k++)
                if (vals[k].type == J_STR && text[k].len) {
                    sb_put(out, text[k].p, text[k].len);
                    found = 1;
                }
    }
    for (int k = 0; k < 3; k++)
        sb_free(&text[k]);
    return found;
}

int header_members(const unsigned char *frame, size_t n, header_member_fn fn, void *ctx)
{
    if (n == 0 || frame[0] != '{' || !utf8_valid(frame, n))
        return 0;
    scanner s = {frame, frame + n, HEADER_MAX_DEPTH, 0};
    sbuf key = {0}, text = {0};
    int ok = 0;
    s.p++;
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') {
        s.p++;
    } else {
        for (;;) {
            skip_ws(&s);
            header_member m = {&key, s.p, 0, 0, 0, &text};
            key.len = 0;
            if (s.p >= s.end || *s.p != '"' || !scan_string(&s, &key))
                goto done;
            skip_ws(&s);
            if (s.p >= s.end || *s.p++ != ':')
                goto done;
            jvalue v = {J_BAD, 0, &text};
            if (!scan_value(&s, &v, 1))
                goto done;
            m.raw_len = (size_t)(s.p - m.raw);
            m.is_string = v.type == J_STR;
            m.is_true = v.type == J_TRUE;
            fn(ctx, &m);
            skip_ws(&s);
            if (s.p >= s.end)
                goto done;
            if (*s.p == ',') {
                s.p++;
                continue;
            }
            if (*s.p++ != '}')
                goto done;
            break;
        }
    }
    skip_ws(&s);
    ok = s.p == s.end;
done:
    sb_free(&key);
    sb_free(&text);
    return ok;
}
