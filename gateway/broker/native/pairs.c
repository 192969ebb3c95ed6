/* Publication of shadow pairs (see pairs.h). */
#include "pairs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shadow.h"

struct pair_entry {
    sbuf key;                       /* client, id and service, length-prefixed */
    sbuf service, candidate, method, id;
    zmq_msg_t *req, *pri, *can;
    int nreq, npri, ncan;
    int has_pri, has_can, copy_ended;
    int64_t expires; /* ms since the epoch: the primary's deadline */
    pair_entry *hash_next, *all_prev, *all_next;
};

static void make_key(sbuf *key, const void *client, size_t client_len, const char *id,
                     size_t id_len, const service *svc)
{
    key->len = 0;
    sb_put(key, &client_len, sizeof client_len);
    sb_put(key, client, client_len);
    sb_put(key, &id_len, sizeof id_len);
    sb_put(key, id, id_len);
    sb_put(key, svc->name, svc->name_len);
}

static size_t bucket_of(const pair_table *t, const sbuf *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < key->len; i++)
        h = (h ^ (unsigned char)key->p[i]) * 1099511628211ULL;
    return (size_t)(h % t->nbuckets);
}

static zmq_msg_t *copy_frames(zmq_msg_t *body, int n)
{
    zmq_msg_t *out = malloc((size_t)(n ? n : 1) * sizeof(zmq_msg_t));
    if (out == NULL)
        abort();
    for (int i = 0; i < n; i++) { /* shares the data: libzmq counts references */
        zmq_msg_init(&out[i]);
        zmq_msg_copy(&out[i], &body[i]);
    }
    return out;
}

static void free_frames(zmq_msg_t *m, int n)
{
    for (int i = 0; i < n && m; i++)
        zmq_msg_close(&m[i]);
    free(m);
}

static pair_entry *find(pair_table *t, const sbuf *key, pair_entry ***slot_out)
{
    if (t->nbuckets == 0)
        return NULL;
    pair_entry **slot = &t->buckets[bucket_of(t, key)];
    for (; *slot; slot = &(*slot)->hash_next)
        if ((*slot)->key.len == key->len && memcmp((*slot)->key.p, key->p, key->len) == 0) {
            if (slot_out)
                *slot_out = slot;
            return *slot;
        }
    return NULL;
}

static void forget(pair_table *t, pair_entry *e)
{
    pair_entry **slot = &t->buckets[bucket_of(t, &e->key)];
    while (*slot && *slot != e)
        slot = &(*slot)->hash_next;
    if (*slot)
        *slot = e->hash_next;
    if (e->all_prev)
        e->all_prev->all_next = e->all_next;
    else
        t->all = e->all_next;
    if (e->all_next)
        e->all_next->all_prev = e->all_prev;
    t->count--;
    sb_free(&e->key);
    sb_free(&e->service);
    sb_free(&e->candidate);
    sb_free(&e->method);
    sb_free(&e->id);
    free_frames(e->req, e->nreq);
    free_frames(e->pri, e->npri);
    free_frames(e->can, e->ncan);
    free(e);
}

int pairs_open(pair_table *t, void *ctx)
{
    if (t->endpoint == NULL)
        return 0;
    t->nbuckets = 256;
    t->buckets = calloc(t->nbuckets, sizeof(pair_entry *));
    if (t->buckets == NULL)
        abort();
    void *sock = zmq_socket(ctx, ZMQ_XPUB);
    int zero = 0, one = 1;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &t->hwm, sizeof t->hwm);
    zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &one, sizeof one);
    if (zmq_bind(sock, t->endpoint) < 0) {
        int err = errno;
        zmq_close(sock);
        errno = err;
        return -1;
    }
    t->sock = sock;
    return 0;
}

void pairs_close(pair_table *t)
{
    while (t->all)
        forget(t, t->all);
    free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = 0;
    if (t->sock) {
        int zero = 0;
        zmq_setsockopt(t->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(t->sock);
        t->sock = NULL;
    }
}

void pairs_expect(pair_table *t, const request *primary, const unsigned char *candidate,
                  size_t candidate_len, const char *method, size_t method_len)
{
    if (t->sock == NULL)
        return;
    pair_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        abort();
    make_key(&e->key, primary->client, primary->client_len, primary->id, primary->id_len,
             primary->svc);
    pair_entry *old = find(t, &e->key, NULL);
    if (old) /* the same call again: the newer one is awaited, as a dict key would be */
        forget(t, old);
    sb_put(&e->service, primary->svc->name, primary->svc->name_len);
    sb_put(&e->candidate, candidate, candidate_len);
    sb_put(&e->method, method, method_len);
    sb_put(&e->id, primary->id, primary->id_len);
    e->req = copy_frames(primary->body, primary->nbody);
    e->nreq = primary->nbody;
    e->expires = primary->deadline;
    size_t at = bucket_of(t, &e->key);
    e->hash_next = t->buckets[at];
    t->buckets[at] = e;
    e->all_next = t->all;
    if (t->all)
        t->all->all_prev = e;
    t->all = e;
    t->count++;
}

static void ready(pair_table *t, pair_entry *e)
{
    if (!e->has_pri || !e->has_can || t->sock == NULL)
        return;
    /* META as json.dumps(..., sort_keys=True) writes it (gateway/broker/pairs.py). */
    sbuf meta = {0}, text = {0};
    sb_puts(&meta, "{\"candidate\": ");
    text_replace(&text, (const unsigned char *)e->candidate.p, e->candidate.len);
    json_ascii(&meta, text.p ? text.p : "", text.len);
    sb_printf(&meta, ", \"frames\": [%d, %d, %d], \"id\": ", e->nreq, e->npri, e->ncan);
    json_ascii(&meta, e->id.p ? e->id.p : "", e->id.len);
    sb_puts(&meta, ", \"method\": ");
    json_ascii(&meta, e->method.p ? e->method.p : "", e->method.len);
    sb_putc(&meta, '}');
    int total = e->nreq + e->npri + e->ncan, rc = 0;
    if (zmq_send(t->sock, e->service.p ? e->service.p : "", e->service.len,
                 ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0) {
        rc = -1;
    } else {
        /* Past the first part a message always goes whole. */
        zmq_send(t->sock, meta.p, meta.len, ZMQ_DONTWAIT | (total ? ZMQ_SNDMORE : 0));
        zmq_msg_t *parts[3] = {e->req, e->pri, e->can};
        int counts[3] = {e->nreq, e->npri, e->ncan}, sent = 0;
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < counts[k]; i++) {
                zmq_msg_t copy;
                zmq_msg_init(&copy);
                zmq_msg_copy(&copy, &parts[k][i]);
                sent++;
                if (zmq_msg_send(&copy, t->sock, ZMQ_DONTWAIT | (sent < total ? ZMQ_SNDMORE : 0))
                    < 0)
                    zmq_msg_close(&copy);
            }
    }
    if (rc == 0)
        t->published++;
    else
        t->dropped++;
    sb_free(&meta);
    sb_free(&text);
    forget(t, e);
}

void pairs_primary(pair_table *t, const request *q, zmq_msg_t *body, int nbody)
{
    sbuf key = {0};
    make_key(&key, q->client, q->client_len, q->id, q->id_len, q->asked ? q->asked : q->svc);
    pair_entry *e = find(t, &key, NULL);
    sb_free(&key);
    if (e == NULL || e->has_pri)
        return;
    e->pri = copy_frames(body, nbody);
    e->npri = nbody;
    e->has_pri = 1;
    ready(t, e);
}

void pairs_candidate(pair_table *t, const request *copy, zmq_msg_t *body, int nbody)
{
    if (t->count == 0 || copy->asked == NULL || copy->client_len < SHADOW_CLIENT_LEN)
        return;
    sbuf key = {0};
    make_key(&key, copy->client + SHADOW_CLIENT_LEN, copy->client_len - SHADOW_CLIENT_LEN,
             copy->id, copy->id_len, copy->asked);
    pair_entry *e = find(t, &key, NULL);
    sb_free(&key);
    if (e == NULL || e->copy_ended)
        return;
    e->copy_ended = 1;
    if (body == NULL) {
        forget(t, e);
        t->unpaired++;
        return;
    }
    e->can = copy_frames(body, nbody);
    e->ncan = nbody;
    e->has_can = 1;
    ready(t, e);
}

void pairs_sweep(pair_table *t, int64_t now_ms)
{
    for (pair_entry *e = t->all, *next; e; e = next) {
        next = e->all_next;
        if (e->expires < now_ms && !e->has_pri) {
            forget(t, e);
            t->unpaired++;
        }
    }
    if (t->sock == NULL)
        return;
    /* Subscriptions arrive as messages on an XPUB; read them so they never pile up. */
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, t->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        const unsigned char *p = zmq_msg_data(&m);
        if (zmq_msg_size(&m) && p[0] == 1)
            t->subscriptions++;
        else if (zmq_msg_size(&m) && p[0] == 0 && t->subscriptions > 0)
            t->subscriptions--;
        zmq_msg_close(&m);
    }
}

void pairs_json(const pair_table *t, sbuf *out)
{
    if (t->endpoint == NULL)
        return;
    sb_printf(out, ", \"shadow_pairs\": {\"dropped\": %lld, \"pending\": %zu, "
              "\"published\": %lld, \"subscriptions\": %lld, \"unpaired\": %lld}",
              (long long)t->dropped, t->count, (long long)t->published,
              (long long)t->subscriptions, (long long)t->unpaired);
}
