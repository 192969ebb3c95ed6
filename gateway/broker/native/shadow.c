/* Shadow copies of migrated services' calls (see shadow.h). */
#include "shadow.h"

#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "header.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* Up to max words of [p, end); how many there are (max + 1: more than max). */
static int words_of(const char *p, const char *end, const char **word, size_t *len, int max)
{
    int n = 0;
    while (p < end) {
        while (p < end && is_space(*p))
            p++;
        if (p >= end)
            break;
        if (n == max)
            return max + 1;
        word[n] = p;
        while (p < end && !is_space(*p))
            p++;
        len[n] = (size_t)(p - word[n]);
        n++;
    }
    return n;
}

int shadows_is_line(const char *p, const char *end)
{
    const char *w[SHADOW_MAX_WORDS];
    size_t l[SHADOW_MAX_WORDS];
    return words_of(p, end, w, l, SHADOW_MAX_WORDS) >= 4 && l[0] == 6
           && memcmp(w[0], "shadow", 6) == 0;
}

static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static void free_rule(shadow_rule *r)
{
    free(r->service);
    free(r->candidate);
    for (size_t i = 0; i < r->nmethods; i++)
        sb_free(&r->methods[i]);
    free(r->methods);
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

/* METHODS: comma-separated names (empty ones skipped, repeats once), or "*" among them. */
static void parse_methods(shadow_rule *r, const char *p, size_t n)
{
    const char *end = p + n;
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        size_t len = (size_t)(stop - p);
        if (len == 1 && *p == '*')
            r->all = 1;
        size_t at = 0;
        int dup = 0;
        while (at < r->nmethods && !dup) {
            int c = bytes_cmp(r->methods[at].p, r->methods[at].len, p, len);
            if (c == 0)
                dup = 1;
            else if (c > 0)
                break;
            else
                at++;
        }
        if (len && !dup) { /* sorted insert: mmi.stats lists them sorted */
            r->methods = realloc(r->methods, (r->nmethods + 1) * sizeof(sbuf));
            if (r->methods == NULL)
                abort();
            memmove(&r->methods[at + 1], &r->methods[at], (r->nmethods - at) * sizeof(sbuf));
            memset(&r->methods[at], 0, sizeof(sbuf));
            sb_put(&r->methods[at], p, len);
            r->nmethods++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    if (r->all) {
        for (size_t i = 0; i < r->nmethods; i++)
            sb_free(&r->methods[i]);
        free(r->methods);
        r->methods = NULL;
        r->nmethods = 0;
    }
}

/* "0.25" as 2500; -1 unless a decimal 0..1 with at most four places (shadow.py). */
static int64_t parse_sample(const char *p, size_t n)
{
    if (n == 0 || (p[0] != '0' && p[0] != '1') || (n > 1 && (p[1] != '.' || n == 2 || n > 6)))
        return -1;
    int64_t v = (p[0] - '0') * (int64_t)SAMPLE_ONE, scale = 1000;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v += (p[i] - '0') * scale;
    }
    return v <= SAMPLE_ONE ? v : -1;
}

/* The OPTION=VALUE words into r; 0 when one is bad or repeated. */
static int parse_options(shadow_rule *r, const char **w, const size_t *l, int n)
{
    int seen[3] = {0, 0, 0};
    r->sample = SAMPLE_ONE;
    for (int i = 0; i < n; i++) {
        const char *eq = memchr(w[i], '=', l[i]);
        if (eq == NULL)
            return 0;
        size_t kn = (size_t)(eq - w[i]), vn = l[i] - kn - 1;
        const char *v = eq + 1;
        int k = kn == 6 && memcmp(w[i], "sample", 6) == 0           ? 0
                : kn == 10 && memcmp(w[i], "timeout_ms", 10) == 0    ? 1
                : kn == 12 && memcmp(w[i], "max_inflight", 12) == 0  ? 2 : -1;
        if (k < 0 || seen[k]++)
            return 0;
        if (k == 0) {
            if ((r->sample = parse_sample(v, vn)) < 0)
                return 0;
            continue;
        }
        int64_t num = 0; /* a positive integer of at most 9 digits */
        if (vn < 1 || vn > 9)
            return 0;
        for (size_t j = 0; j < vn; j++) {
            if (v[j] < '0' || v[j] > '9')
                return 0;
            num = num * 10 + (v[j] - '0');
        }
        if (num <= 0)
            return 0;
        if (k == 1)
            r->timeout_ms = num;
        else
            r->max_inflight = num;
    }
    return 1;
}

static int same_rule(const shadow_rule *a, const shadow_rule *b)
{
    if (bytes_cmp(a->candidate, a->candidate_len, b->candidate, b->candidate_len)
        || a->all != b->all || a->nmethods != b->nmethods || a->sample != b->sample
        || a->timeout_ms != b->timeout_ms || a->max_inflight != b->max_inflight)
        return 0;
    for (size_t i = 0; i < a->nmethods; i++)
        if (bytes_cmp(a->methods[i].p, a->methods[i].len, b->methods[i].p, b->methods[i].len))
            return 0;
    return 1;
}

int shadows_load(shadow_table *t, const char *text, size_t n, const char *path)
{
    shadow_rule *fresh = NULL;
    size_t nf = 0;
    int errors = 0, line = 0;
    const char *p = text, *end = text + n;
    while (p && p <= end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        const char *hash = memchr(p, '#', (size_t)(stop - p));
        const char *w[SHADOW_MAX_WORDS];
        size_t l[SHADOW_MAX_WORDS];
        shadow_rule opts;
        memset(&opts, 0, sizeof opts);
        line++;
        int nw = words_of(p, hash ? hash : stop, w, l, SHADOW_MAX_WORDS);
        /* Three words: a split of a service named "shadow" (splits.c). */
        if (nw > 0 && l[0] == 6 && memcmp(w[0], "shadow", 6) == 0 && nw != 3) {
            if (nw < 4 || nw > SHADOW_MAX_WORDS || !parse_options(&opts, w + 4, l + 4, nw - 4)
                || bytes_cmp(w[1], l[1], w[2], l[2]) == 0
                || (l[1] >= 4 && memcmp(w[1], "mmi.", 4) == 0)
                || (l[2] >= 4 && memcmp(w[2], "mmi.", 4) == 0)) {
                logf_(LOG_WARNING, "split file %s: line %d: expected shadow SERVICE CANDIDATE "
                      "METHODS [sample=F] [timeout_ms=N] [max_inflight=N]", path ? path : "",
                      line);
                errors++;
            } else {
                size_t at = nf;
                for (size_t i = 0; i < nf; i++) /* a repeated service: the last line wins */
                    if (bytes_cmp(fresh[i].service, fresh[i].service_len, w[1], l[1]) == 0)
                        at = i;
                if (at == nf) {
                    fresh = realloc(fresh, (nf + 1) * sizeof *fresh);
                    if (fresh == NULL)
                        abort();
                    nf++;
                } else {
                    free_rule(&fresh[at]);
                }
                shadow_rule *r = &fresh[at];
                *r = opts;
                r->service = dup_n(w[1], l[1]);
                r->service_len = l[1];
                r->candidate = dup_n(w[2], l[2]);
                r->candidate_len = l[2];
                parse_methods(r, w[3], l[3]);
            }
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    for (size_t i = 1; i < nf; i++) /* insertion sort: few rules */
        for (size_t j = i; j > 0 && bytes_cmp(fresh[j - 1].service, fresh[j - 1].service_len,
                                              fresh[j].service, fresh[j].service_len) > 0; j--) {
            shadow_rule x = fresh[j - 1];
            fresh[j - 1] = fresh[j];
            fresh[j] = x;
        }
    for (size_t i = 0; i < nf; i++) {
        shadow_rule *old = shadows_find(t, fresh[i].service, fresh[i].service_len);
        if (old && same_rule(old, &fresh[i])) {
            fresh[i].inflight = old->inflight;
            fresh[i].sent = old->sent;
            fresh[i].answered = old->answered;
            fresh[i].failed = old->failed;
            fresh[i].skipped_cap = old->skipped_cap;
            fresh[i].skipped_down = old->skipped_down;
            fresh[i].accrued = old->accrued;
        }
    }
    for (size_t i = 0; i < t->n; i++)
        free_rule(&t->rules[i]);
    free(t->rules);
    t->rules = fresh;
    t->n = nf;
    return errors;
}

shadow_rule *shadows_find(shadow_table *t, const void *service, size_t n)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->rules[i].service_len == n && memcmp(t->rules[i].service, service, n) == 0)
            return &t->rules[i];
    return NULL;
}

static int listed(const shadow_rule *r, const sbuf *method)
{
    if (r->all)
        return 1;
    for (size_t i = 0; i < r->nmethods; i++)
        if (bytes_cmp(r->methods[i].p, r->methods[i].len, method->p ? method->p : "",
                      method->len) == 0)
            return 1;
    return 0;
}

/* The SPEC 2.5 caps, as on_client checks them, without an answer: a copy that would
 * not fit is skipped, never refused to anyone. */
static int room_for(broker *b, const service *svc, int64_t size)
{
    return svc->queued + 1 <= b->max_queued && svc->queued_bytes + size <= b->max_queued_bytes
           && b->reg.queued + 1 <= b->max_queued_total
           && b->reg.queued_bytes + size <= b->max_queued_bytes_total;
}

request *shadows_copy(broker *b, request *q, int64_t now_ms)
{
    shadow_rule *r = shadows_find(&b->shadows, q->svc->name, q->svc->name_len);
    if (r == NULL || q->asked != NULL || q->nbody == 0)
        return NULL; /* a call the split sent to the candidate already is not copied */
    int64_t timeout = r->timeout_ms ? r->timeout_ms : b->shadows.timeout_ms;
    int64_t cap = r->max_inflight ? r->max_inflight : b->shadows.max_inflight;
    int64_t deadline = q->deadline < now_ms + timeout ? q->deadline : now_ms + timeout;
    sbuf head = {0}, method = {0};
    request *copy = NULL;
    if (!header_shadow_copy(zmq_msg_data(&q->body[0]), zmq_msg_size(&q->body[0]), deadline,
                            &head, &method)
        || !listed(r, &method))
        goto done;
    if (r->sample < SAMPLE_ONE) { /* counted, not drawn: the same calls in both brokers */
        r->accrued += r->sample;
        if (r->accrued < SAMPLE_ONE)
            goto done;
        r->accrued -= SAMPLE_ONE;
    }
    service *cand = registry_find_service(&b->reg, r->candidate, r->candidate_len);
    if (cand == NULL || cand->workers == 0) {
        r->skipped_down++;
        goto done;
    }
    if (r->inflight >= cap) {
        r->skipped_cap++;
        goto done;
    }
    int64_t size = (int64_t)head.len;
    for (int i = 1; i < q->nbody; i++)
        size += (int64_t)zmq_msg_size(&q->body[i]);
    if (!room_for(b, cand, size)) {
        r->skipped_down++;
        goto done;
    }
    sbuf client = {0};
    sb_put(&client, SHADOW_CLIENT, SHADOW_CLIENT_LEN);
    sb_put(&client, q->client, q->client_len);
    copy = request_new(client.p, client.len, cand, q->id, q->id_len, deadline, q->idem);
    sb_free(&client);
    copy->asked = q->svc;
    copy->shadow = 1;
    copy->size = size;
    copy->body = malloc((size_t)q->nbody * sizeof(zmq_msg_t));
    if (copy->body == NULL)
        abort();
    zmq_msg_init_size(&copy->body[0], head.len);
    memcpy(zmq_msg_data(&copy->body[0]), head.p, head.len);
    for (int i = 1; i < q->nbody; i++) { /* the primary's payload, shared, not copied */
        zmq_msg_init(&copy->body[i]);
        zmq_msg_copy(&copy->body[i], &q->body[i]);
    }
    copy->nbody = q->nbody;
    copy->shadow_next = b->shadows.live;
    if (b->shadows.live)
        b->shadows.live->shadow_prev = copy;
    b->shadows.live = copy;
    r->inflight++;
    r->sent++;
    pairs_expect(&b->pairs, q, cand->name, cand->name_len, method.p ? method.p : "",
                 method.len);
done:
    sb_free(&head);
    sb_free(&method);
    return copy;
}

void shadows_end(broker *b, request *copy, zmq_msg_t *body, int nbody)
{
    if (copy->shadow != 1)
        return; /* ended already: swept past its deadline */
    copy->shadow = 2;
    if (copy->shadow_prev)
        copy->shadow_prev->shadow_next = copy->shadow_next;
    else
        b->shadows.live = copy->shadow_next;
    if (copy->shadow_next)
        copy->shadow_next->shadow_prev = copy->shadow_prev;
    copy->shadow_prev = copy->shadow_next = NULL;
    pairs_candidate(&b->pairs, copy, body, nbody);
    shadow_rule *r = shadows_find(&b->shadows, copy->asked->name, copy->asked->name_len);
    if (r == NULL)
        return; /* a reload forgot the rule */
    if (r->inflight > 0)
        r->inflight--;
    if (body == NULL)
        r->failed++;
    else
        r->answered++;
}

void shadows_sweep(broker *b, int64_t now_ms)
{
    /* The broker never expires a request a worker holds (the worker bounds it), so a
     * hung candidate would keep its copies, and the cap, forever: here they end as
     * failed, and a reply that still comes is a late one. */
    for (request *c = b->shadows.live, *next; c; c = next) {
        next = c->shadow_next;
        if (c->deadline <= now_ms)
            shadows_end(b, c, NULL, 0);
    }
}

void shadows_json(const shadow_table *t, sbuf *out)
{
    if (t->n == 0)
        return;
    sb_puts(out, ", \"shadows\": {");
    for (size_t i = 0; i < t->n; i++) {
        const shadow_rule *r = &t->rules[i];
        sbuf text = {0};
        if (i)
            sb_puts(out, ", ");
        text_replace(&text, (const unsigned char *)r->service, r->service_len);
        json_ascii(out, text.p ? text.p : "", text.len);
        text.len = 0;
        text_replace(&text, (const unsigned char *)r->candidate, r->candidate_len);
        sb_printf(out, ": {\"answered\": %lld, \"candidate\": ", (long long)r->answered);
        json_ascii(out, text.p ? text.p : "", text.len);
        sb_printf(out, ", \"failed\": %lld, \"inflight\": %lld, \"methods\": ",
                  (long long)r->failed, (long long)r->inflight);
        if (r->all) {
            sb_puts(out, "\"*\"");
        } else {
            sb_putc(out, '[');
            for (size_t k = 0; k < r->nmethods; k++) {
                if (k)
                    sb_puts(out, ", ");
                json_ascii(out, r->methods[k].p, r->methods[k].len);
            }
            sb_putc(out, ']');
        }
        sb_printf(out, ", \"sent\": %lld, \"skipped_cap\": %lld, \"skipped_down\": %lld}",
                  (long long)r->sent, (long long)r->skipped_cap, (long long)r->skipped_down);
        sb_free(&text);
    }
    sb_puts(out, "}");
}
