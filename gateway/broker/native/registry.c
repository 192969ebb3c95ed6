/* Services, workers and requests (see registry.h). */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL) {
        fputs("broker: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *xdup(const void *data, size_t n)
{
    void *p = xalloc(n + 1);
    if (n)
        memcpy(p, data, n);
    return p;
}

static uint64_t hash_bytes(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int same(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

void registry_init(registry *r)
{
    memset(r, 0, sizeof *r);
    r->service_nbuckets = 64;
    r->service_buckets = xalloc(r->service_nbuckets * sizeof(service *));
    r->worker_nbuckets = 256;
    r->worker_buckets = xalloc(r->worker_nbuckets * sizeof(worker *));
}

/* ------------------------------------------------------------------ services -- */

service *registry_find_service(registry *r, const void *name, size_t n)
{
    service *s = r->service_buckets[hash_bytes(name, n) % r->service_nbuckets];
    for (; s; s = s->hash_next)
        if (same(s->name, s->name_len, name, n))
            return s;
    return NULL;
}

static void rehash_services(registry *r)
{
    size_t nb = r->service_nbuckets * 2;
    service **b = xalloc(nb * sizeof(service *));
    for (size_t i = 0; i < r->nservices; i++) {
        service *s = r->services[i];
        size_t at = hash_bytes(s->name, s->name_len) % nb;
        s->hash_next = b[at];
        b[at] = s;
    }
    free(r->service_buckets);
    r->service_buckets = b;
    r->service_nbuckets = nb;
}

service *registry_service(registry *r, const void *name, size_t n)
{
    service *s = registry_find_service(r, name, n);
    if (s)
        return s;
    s = xalloc(sizeof *s);
    s->name = xdup(name, n);
    s->name_len = n;
    if (r->nservices == r->services_cap) {
        r->services_cap = r->services_cap ? r->services_cap * 2 : 16;
        r->services = realloc(r->services, r->services_cap * sizeof(service *));
        if (r->services == NULL)
            abort();
    }
    r->services[r->nservices++] = s;
    if (r->nservices > r->service_nbuckets) {
        rehash_services(r); /* re-links every service, the new one included */
    } else {
        size_t at = hash_bytes(name, n) % r->service_nbuckets;
        s->hash_next = r->service_buckets[at];
        r->service_buckets[at] = s;
    }
    return s;
}

int registry_known(registry *r, const void *name, size_t n)
{
    service *s = registry_find_service(r, name, n);
    return s && s->ever_served;
}

int registry_live(registry *r, const void *name, size_t n)
{
    service *s = registry_find_service(r, name, n);
    return s && s->workers > 0;
}

/* ------------------------------------------------------------------- workers -- */

worker *registry_worker(registry *r, const void *identity, size_t n)
{
    worker *w = r->worker_buckets[hash_bytes(identity, n) % r->worker_nbuckets];
    for (; w; w = w->hash_next)
        if (same(w->identity, w->identity_len, identity, n))
            return w;
    return NULL;
}

static void idle_push(service *s, worker *w)
{
    w->idle = 1;
    w->idle_next = NULL;
    w->idle_prev = s->idle_tail;
    if (s->idle_tail)
        s->idle_tail->idle_next = w;
    else
        s->idle_head = w;
    s->idle_tail = w;
}

static void idle_remove(service *s, worker *w)
{
    if (!w->idle)
        return;
    if (w->idle_prev)
        w->idle_prev->idle_next = w->idle_next;
    else
        s->idle_head = w->idle_next;
    if (w->idle_next)
        w->idle_next->idle_prev = w->idle_prev;
    else
        s->idle_tail = w->idle_prev;
    w->idle = 0;
    w->idle_prev = w->idle_next = NULL;
}

static void rehash_workers(registry *r)
{
    size_t nb = r->worker_nbuckets * 2;
    worker **b = xalloc(nb * sizeof(worker *));
    for (worker *w = r->all_head; w; w = w->all_next) {
        size_t at = hash_bytes(w->identity, w->identity_len) % nb;
        w->hash_next = b[at];
        b[at] = w;
    }
    free(r->worker_buckets);
    r->worker_buckets = b;
    r->worker_nbuckets = nb;
}

worker *registry_add_worker(registry *r, const void *identity, size_t n, service *svc,
                            int credit, int64_t expiry_us, int64_t liveness_us, int cancel)
{
    worker *w = xalloc(sizeof *w);
    w->identity = xdup(identity, n);
    w->identity_len = n;
    w->svc = svc;
    w->credit = credit < 1 ? 1 : credit;
    w->expiry_us = expiry_us;
    w->liveness_us = liveness_us;
    w->cancel = cancel;
    w->all_prev = r->all_tail;
    if (r->all_tail)
        r->all_tail->all_next = w;
    else
        r->all_head = w;
    r->all_tail = w;
    r->nworkers++;
    if (r->nworkers > r->worker_nbuckets) {
        rehash_workers(r);
    } else {
        size_t at = hash_bytes(identity, n) % r->worker_nbuckets;
        w->hash_next = r->worker_buckets[at];
        r->worker_buckets[at] = w;
    }
    svc->workers++;
    svc->ever_served = 1;
    idle_push(svc, w);
    return w;
}

void registry_remove_worker(registry *r, worker *w, request **held)
{
    worker **slot = &r->worker_buckets[hash_bytes(w->identity, w->identity_len)
                                       % r->worker_nbuckets];
    while (*slot && *slot != w)
        slot = &(*slot)->hash_next;
    if (*slot)
        *slot = w->hash_next;
    if (w->all_prev)
        w->all_prev->all_next = w->all_next;
    else
        r->all_head = w->all_next;
    if (w->all_next)
        w->all_next->all_prev = w->all_prev;
    else
        r->all_tail = w->all_prev;
    r->nworkers--;
    idle_remove(w->svc, w);
    if (w->ejected_until_us)
        w->svc->ejected--;
    w->svc->workers--;
    w->svc->inflight -= w->inflight;
    for (request *q = w->held_head; q; q = q->next)
        q->w = NULL;
    *held = w->held_head;
    free(w->identity);
    free(w);
}

/* ------------------------------------------------------------------ requests -- */

request *request_new(const void *client, size_t client_len, service *svc, const char *id,
                     size_t id_len, int64_t deadline, int idem)
{
    request *q = xalloc(sizeof *q);
    q->client = xdup(client, client_len);
    q->client_len = client_len;
    q->svc = svc;
    q->id = xdup(id, id_len);
    q->id_len = id_len;
    q->deadline = deadline;
    q->idem = idem;
    q->heap_at = NOT_ARMED;
    return q;
}

void request_free(request *q)
{
    for (int i = 0; i < q->nbody; i++)
        zmq_msg_close(&q->body[i]);
    free(q->body);
    free(q->client);
    free(q->id);
    free(q);
}

/* The deadline heap: earliest deadline first, then the order of arming. */
static int heap_less(request *a, request *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(registry *r, size_t at, request *q)
{
    r->heap[at] = q;
    q->heap_at = at;
}

static void heap_up(registry *r, size_t at)
{
    request *q = r->heap[at];
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (!heap_less(q, r->heap[parent]))
            break;
        heap_set(r, at, r->heap[parent]);
        at = parent;
    }
    heap_set(r, at, q);
}

static void heap_down(registry *r, size_t at)
{
    request *q = r->heap[at];
    for (;;) {
        size_t child = 2 * at + 1;
        if (child >= r->heap_len)
            break;
        if (child + 1 < r->heap_len && heap_less(r->heap[child + 1], r->heap[child]))
            child++;
        if (!heap_less(r->heap[child], q))
            break;
        heap_set(r, at, r->heap[child]);
        at = child;
    }
    heap_set(r, at, q);
}

void registry_arm(registry *r, request *q)
{
    if (q->heap_at != NOT_ARMED || q->w != NULL)
        return;
    if (r->heap_len == r->heap_cap) {
        r->heap_cap = r->heap_cap ? r->heap_cap * 2 : 64;
        r->heap = realloc(r->heap, r->heap_cap * sizeof(request *));
        if (r->heap == NULL)
            abort();
    }
    q->seq = r->seq++;
    heap_set(r, r->heap_len++, q);
    heap_up(r, r->heap_len - 1);
}

static void heap_remove(registry *r, request *q)
{
    size_t at = q->heap_at;
    if (at == NOT_ARMED)
        return;
    q->heap_at = NOT_ARMED;
    request *last = r->heap[--r->heap_len];
    if (at == r->heap_len)
        return;
    heap_set(r, at, last);
    heap_up(r, at);
    heap_down(r, last->heap_at);
}

request *registry_next_deadline(registry *r)
{
    return r->heap_len ? r->heap[0] : NULL;
}

void registry_enqueue(registry *r, request *q, int front)
{
    service *s = q->svc;
    q->w = NULL;
    if (front) {
        q->prev = NULL;
        q->next = s->queue_head;
        if (s->queue_head)
            s->queue_head->prev = q;
        else
            s->queue_tail = q;
        s->queue_head = q;
    } else {
        q->next = NULL;
        q->prev = s->queue_tail;
        if (s->queue_tail)
            s->queue_tail->next = q;
        else
            s->queue_head = q;
        s->queue_tail = q;
    }
    s->queued++;
    s->queued_bytes += q->size;
    r->queued++;
    r->queued_bytes += q->size;
}

void registry_unqueue(registry *r, request *q)
{
    service *s = q->svc;
    if (q->prev)
        q->prev->next = q->next;
    else
        s->queue_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        s->queue_tail = q->prev;
    q->prev = q->next = NULL;
    s->queued--;
    s->queued_bytes -= q->size;
    r->queued--;
    r->queued_bytes -= q->size;
    heap_remove(r, q);
}

int registry_pair(service *svc, request **q, worker **w)
{
    if (svc == NULL || svc->queue_head == NULL || svc->idle_head == NULL)
        return 0;
    *q = svc->queue_head;
    *w = svc->idle_head;
    return 1;
}

void registry_assign(registry *r, request *q, worker *w)
{
    registry_unqueue(r, q);
    idle_remove(w->svc, w);
    q->w = w;
    q->attempts++;
    q->next = NULL;
    q->prev = w->held_tail;
    if (w->held_tail)
        w->held_tail->next = q;
    else
        w->held_head = q;
    w->held_tail = q;
    w->inflight++;
    w->svc->inflight++;
    if (w->inflight < w->credit)
        idle_push(w->svc, w);
}

void registry_release(registry *r, worker *w, request *q)
{
    (void)r;
    if (q->prev)
        q->prev->next = q->next;
    else
        w->held_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        w->held_tail = q->prev;
    q->prev = q->next = NULL;
    q->w = NULL;
    w->inflight--;
    w->svc->inflight--;
    if (!w->idle && !w->ejected_until_us)
        idle_push(w->svc, w);
}

void registry_eject(worker *w, int64_t until_us)
{
    w->ejected_until_us = until_us;
    w->failures = 0;
    idle_remove(w->svc, w);
    w->svc->ejected++;
}

void registry_return(worker *w, int64_t now_us)
{
    w->ejected_until_us = 0;
    w->returned_at_us = now_us;
    w->failures = 0;
    w->svc->ejected--;
    if (w->inflight < w->credit)
        idle_push(w->svc, w);
}

request *registry_match(worker *w, const void *client, size_t client_len, const char *id,
                        size_t id_len, int by_id)
{
    /* Our replies name the request id; a raw MDP worker's reply answers its oldest
     * request from that client. */
    for (request *q = w->held_head; q; q = q->next)
        if (same(q->client, q->client_len, client, client_len)
            && (!by_id || same(q->id, q->id_len, id, id_len)))
            return q;
    return NULL;
}

request *registry_find_queued(service *svc, const void *client, size_t client_len,
                              const char *id, size_t id_len)
{
    /* A linear scan: only a cancel asks, and the hot path keeps no extra index. */
    for (request *q = svc ? svc->queue_head : NULL; q; q = q->next)
        if (same(q->client, q->client_len, client, client_len)
            && same(q->id, q->id_len, id, id_len))
            return q;
    return NULL;
}

request *registry_find_inflight(registry *r, service *svc, const void *client,
                                size_t client_len, const char *id, size_t id_len)
{
    for (worker *w = r->all_head; w; w = w->all_next) {
        if (w->svc != svc)
            continue;
        request *q = registry_match(w, client, client_len, id, id_len, 1);
        if (q)
            return q;
    }
    return NULL;
}
