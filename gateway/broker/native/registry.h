/* The broker's bookkeeping: services, their workers, requests queued or in flight.
 *
 * The C twin of gateway/broker/registry.py. Dispatch is least-recently-used over the
 * workers of a service that have free credit (SPEC 2.5): a worker that has just been
 * given work goes to the back of the line, one without free credit leaves the line
 * until a final reply frees it. Queued requests whose deadline is watched sit in a
 * min-heap; unlike the Python registry, a request that leaves the queue (dispatched,
 * cancelled, expired) leaves the heap at once, so nothing is swept later.
 */
#ifndef MDB_REGISTRY_H
#define MDB_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* Per-service request counts in mmi.stats, in the order of their names (json.dumps sorts). */
enum outcome { O_OK, O_REQUESTS, O_RETRIED, O_TIMEOUT, O_TOO_BUSY, O_UNAVAILABLE, O_WORKER_LOST,
               N_OUTCOMES };

typedef struct service service;
typedef struct worker worker;
typedef struct request request;

struct request {
    unsigned char *client; /* the client's routing identity */
    size_t client_len;
    service *svc;
    zmq_msg_t *body; /* the frames after the service name, forwarded untouched */
    int nbody;
    char *id; /* the header id (decoded), or a fresh one for a raw MDP body */
    size_t id_len;
    int64_t deadline; /* ms since the epoch */
    int idem, attempts, replied;
    worker *w;              /* the worker holding it, NULL while queued */
    request *prev, *next;   /* in its service's queue, or its worker's in-flight list */
    size_t heap_at;         /* index in the deadline heap, or NOT_ARMED */
    int64_t size;           /* bytes of the body frames, counted while queued */
    uint64_t seq;           /* FIFO order among equal deadlines */
    int failed;             /* counted against its worker already (SPEC 2.13) */
    service *asked;         /* the service the client named, when a split moved it (2.14) */
    /* A shadow copy (2.14): 1 while live, 2 once ended; its replies reach no client. */
    int shadow;
    request *shadow_prev, *shadow_next; /* the live copies (shadow.c) */
};

struct worker {
    unsigned char *identity;
    size_t identity_len;
    service *svc;
    int credit, inflight;
    int64_t expiry_us, liveness_us; /* monotonic */
    int cancel;                     /* READY said "cancel": true (SPEC 2.11) */
    request *held_head, *held_tail; /* oldest first */
    worker *idle_prev, *idle_next;
    int idle;
    worker *all_prev, *all_next; /* registration order, for heartbeats and probes */
    worker *hash_next;
    /* Outlier ejection (SPEC 2.13): failures in a row, times ejected, and until when
     * (monotonic; 0 while routable) it gets no new requests. */
    int failures, ejections;
    int64_t ejected_until_us, returned_at_us;
};

struct service {
    unsigned char *name;
    size_t name_len;
    int workers, ever_served, queued, inflight;
    int64_t queued_bytes; /* body bytes of the queued requests (SPEC 2.5 caps) */
    int ejected;          /* registered workers left out of the LRU line (SPEC 2.13) */
    int64_t outcomes[N_OUTCOMES]; /* how its requests ended (SPEC 2.9 "outcomes") */
    worker *idle_head, *idle_tail;
    request *queue_head, *queue_tail;
    service *hash_next;
};

#define NOT_ARMED ((size_t)-1)

typedef struct {
    service **services; /* every service ever named, in order of first mention */
    size_t nservices, services_cap;
    service **service_buckets;
    size_t service_nbuckets;
    worker **worker_buckets;
    size_t worker_nbuckets, nworkers;
    worker *all_head, *all_tail;
    request **heap;
    size_t heap_len, heap_cap;
    uint64_t seq;
    int64_t queued, queued_bytes; /* over every service, for the total caps */
} registry;

void registry_init(registry *r);

service *registry_service(registry *r, const void *name, size_t n); /* creates */
service *registry_find_service(registry *r, const void *name, size_t n);
int registry_known(registry *r, const void *name, size_t n);
int registry_live(registry *r, const void *name, size_t n);

worker *registry_worker(registry *r, const void *identity, size_t n);
worker *registry_add_worker(registry *r, const void *identity, size_t n, service *svc,
                            int credit, int64_t expiry_us, int64_t liveness_us, int cancel);
/* Forget a worker; its requests are moved to *held (oldest first, linked by next). */
void registry_remove_worker(registry *r, worker *w, request **held);

request *request_new(const void *client, size_t client_len, service *svc, const char *id,
                     size_t id_len, int64_t deadline, int idem);
void request_free(request *q);

void registry_enqueue(registry *r, request *q, int front);
void registry_unqueue(registry *r, request *q); /* out of the queue and the heap */
void registry_arm(registry *r, request *q);
request *registry_next_deadline(registry *r); /* the earliest watched one, or NULL */

/* The next waiting request and the LRU worker with credit for it, or 0 when either is
 * missing. The request stays queued; registry_assign() hands it over. */
int registry_pair(service *svc, request **q, worker **w);
void registry_assign(registry *r, request *q, worker *w);
/* The final reply came: free the worker's credit (the caller frees the request). */
void registry_release(registry *r, worker *w, request *q);
/* Outlier ejection (SPEC 2.13): out of its service's LRU line until `until_us`, and back. */
void registry_eject(worker *w, int64_t until_us);
void registry_return(worker *w, int64_t now_us);

request *registry_match(worker *w, const void *client, size_t client_len, const char *id,
                        size_t id_len, int by_id);
request *registry_find_queued(service *svc, const void *client, size_t client_len,
                              const char *id, size_t id_len);
request *registry_find_inflight(registry *r, service *svc, const void *client,
                                size_t client_len, const char *id, size_t id_len);

#endif
