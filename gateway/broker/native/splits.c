/* Traffic splits of migrated services (see splits.h). */
#define _GNU_SOURCE /* memmem */
#include "splits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker.h"
#include "header.h"

/* zlib's CRC-32 (the Python twin uses zlib.crc32), bitwise: keys are short. */
static uint32_t crc32_of(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void free_entries(split_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].service);
        free(e[i].candidate);
    }
    free(e);
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* One line into e; 0 when it is not SERVICE CANDIDATE PERCENT(0..100). */
static int parse_line(const char *p, const char *end, split_entry *e)
{
    const char *word[4];
    size_t len[4];
    int n = 0;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p >= end)
            break;
        if (n == 4)
            return 0;
        word[n] = p;
        while (p < end && !is_space(*p))
            p++;
        len[n] = (size_t)(p - word[n]);
        n++;
    }
    if (n != 3 || len[2] < 1 || len[2] > 3)
        return 0;
    int pct = 0;
    for (size_t i = 0; i < len[2]; i++) {
        if (word[2][i] < '0' || word[2][i] > '9')
            return 0;
        pct = pct * 10 + (word[2][i] - '0');
    }
    if (pct > 100 || (len[0] == len[1] && memcmp(word[0], word[1], len[0]) == 0)
        || (len[0] >= 4 && memcmp(word[0], "mmi.", 4) == 0))
        return 0;
    e->service = dup_n(word[0], len[0]);
    e->service_len = len[0];
    e->candidate = dup_n(word[1], len[1]);
    e->candidate_len = len[1];
    e->percent = pct;
    e->sent = e->kept = e->sent_errors = e->kept_errors = 0;
    return 1;
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

int splits_reload(split_table *t)
{
    if (t->path == NULL)
        return 1;
    sbuf text = {0};
    struct stat st;
    memset(&st, 0, sizeof st);
    FILE *f = fopen(t->path, "rb");
    int exists = f != NULL;
    if (f == NULL && errno != ENOENT) {
        logf_(LOG_ERROR, "split file %s unreadable: %s", t->path, strerror(errno));
        t->errors = 1;
        return 0;
    }
    if (f) {
        char chunk[4096];
        size_t got;
        if (fstat(fileno(f), &st) < 0)
            memset(&st, 0, sizeof st);
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
            sb_put(&text, chunk, got);
        int bad = ferror(f);
        fclose(f);
        if (bad || !utf8_valid((const unsigned char *)(text.p ? text.p : ""), text.len)) {
            /* Keep routing as before: a half-readable file must not flip traffic. */
            logf_(LOG_ERROR, "split file %s unreadable (I/O error or not UTF-8)", t->path);
            t->errors = 1;
            sb_free(&text);
            return 0;
        }
    }
    split_entry *fresh = NULL;
    size_t n = 0, cap = 0;
    int errors = 0, line = 0;
    const char *p = text.p, *end = text.p + text.len;
    while (p && p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        const char *hash = memchr(p, '#', (size_t)(stop - p));
        split_entry e;
        line++;
        const char *q = p;
        while (q < (hash ? hash : stop) && is_space(*q))
            q++;
        if (q < (hash ? hash : stop) && !shadows_is_line(p, hash ? hash : stop)) {
            if (!parse_line(p, hash ? hash : stop, &e)) {
                logf_(LOG_WARNING, "split file %s: line %d: expected SERVICE CANDIDATE "
                      "PERCENT(0..100)", t->path, line);
                errors++;
            } else {
                size_t at = n;
                for (size_t i = 0; i < n; i++) /* a repeated service: the last line wins */
                    if (name_cmp(fresh[i].service, fresh[i].service_len, e.service,
                                 e.service_len) == 0)
                        at = i;
                if (at < n) {
                    free(fresh[at].service);
                    free(fresh[at].candidate);
                    fresh[at] = e;
                } else {
                    if (n == cap) {
                        cap = cap ? cap * 2 : 4;
                        fresh = realloc(fresh, cap * sizeof *fresh);
                        if (fresh == NULL)
                            abort();
                    }
                    fresh[n++] = e;
                }
            }
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    if (t->shadows)
        errors += shadows_load(t->shadows, text.p, text.len, t->path);
    sb_free(&text);
    for (size_t i = 1; i < n; i++) /* insertion sort: few splits */
        for (size_t j = i; j > 0 && name_cmp(fresh[j - 1].service, fresh[j - 1].service_len,
                                             fresh[j].service, fresh[j].service_len) > 0; j--) {
            split_entry x = fresh[j - 1];
            fresh[j - 1] = fresh[j];
            fresh[j] = x;
        }
    /* Counts survive a reload of the same split, so mmi.stats reads as a running total. */
    for (size_t i = 0; i < n; i++) {
        split_entry *old = splits_find(t, fresh[i].service, fresh[i].service_len);
        if (old && old->percent == fresh[i].percent
            && name_cmp(old->candidate, old->candidate_len, fresh[i].candidate,
                        fresh[i].candidate_len) == 0) {
            fresh[i].sent = old->sent;
            fresh[i].kept = old->kept;
            fresh[i].sent_errors = old->sent_errors;
            fresh[i].kept_errors = old->kept_errors;
        }
    }
    free_entries(t->entries, t->n);
    t->entries = fresh;
    t->n = n;
    t->errors = errors;
    t->seen = exists;
    t->seen_mtime_ns = exists ? (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec : 0;
    t->seen_size = exists ? st.st_size : 0;
    return 1;
}

void splits_changed(split_table *t)
{
    if (t->path == NULL)
        return;
    struct stat st;
    int exists = stat(t->path, &st) == 0;
    if (exists == t->seen
        && (!exists || ((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec
                        == t->seen_mtime_ns && st.st_size == t->seen_size)))
        return;
    splits_reload(t);
}

split_entry *splits_find(split_table *t, const void *service, size_t n)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->entries[i].service_len == n && memcmp(t->entries[i].service, service, n) == 0)
            return &t->entries[i];
    return NULL;
}

int splits_pick(const split_entry *e, const unsigned char *frame, size_t n)
{
    if (e->percent == 0)
        return 0;
    if (e->percent == 100)
        return 1;
    sbuf key = {0};
    int pick = 0;
    if (header_sticky(frame, n, &key)) {
        uint32_t crc = crc32_of(0, (const unsigned char *)e->service, e->service_len);
        crc = crc32_of(crc, (const unsigned char *)":", 1);
        crc = crc32_of(crc, (const unsigned char *)key.p, key.len);
        pick = (int)(crc % 100u) < e->percent;
    }
    sb_free(&key);
    return pick;
}

void splits_replied(split_table *t, const void *service, size_t n, int moved,
                    const unsigned char *head, size_t head_len)
{
    split_entry *e = splits_find(t, service, n);
    /* cheap: a result never has the word as a key or kind */
    if (e == NULL || head_len == 0 || !memmem(head, head_len, "\"error\"", 7))
        return;
    header_fields h = {0};
    header_read(head, head_len, &h);
    /* Python's header.get("kind") == "error" holds without a valid id too. */
    if (h.error) {
        if (moved)
            e->sent_errors++;
        else
            e->kept_errors++;
    }
    header_free(&h);
}

void splits_json(const split_table *t, sbuf *out)
{
    sb_puts(out, ", \"splits\": {");
    for (size_t i = 0; i < t->n; i++) {
        const split_entry *e = &t->entries[i];
        if (i)
            sb_puts(out, ", ");
        json_ascii(out, e->service, e->service_len);
        sb_puts(out, ": {\"candidate\": ");
        json_ascii(out, e->candidate, e->candidate_len);
        sb_printf(out, ", \"kept\": %lld, \"kept_errors\": %lld, \"percent\": %d, "
                  "\"sent\": %lld, \"sent_errors\": %lld}", (long long)e->kept,
                  (long long)e->kept_errors, e->percent, (long long)e->sent,
                  (long long)e->sent_errors);
    }
    sb_puts(out, "}");
}
