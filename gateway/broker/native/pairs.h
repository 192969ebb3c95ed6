/* Publication of shadow pairs for the comparison off the path (SPEC 2.14; the Python
 * twin is gateway/broker/pairs.py, whose docstring gives the message).
 *
 * Once a copied call's primary and candidate final replies are both in, one message
 * [SERVICE, META, *request, *primary reply, *candidate reply] goes out on an XPUB
 * socket that never blocks the broker: past its high-water mark the pair is dropped
 * and counted (ZMQ_XPUB_NODROP turns the silent drop into EAGAIN).
 */
#ifndef MDB_PAIRS_H
#define MDB_PAIRS_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "registry.h"
#include "text.h"

typedef struct pair_entry pair_entry;

typedef struct {
    const char *endpoint; /* NULL: no publication */
    int hwm;
    void *sock;
    pair_entry **buckets; /* by (client, id, service) */
    size_t nbuckets, count;
    pair_entry *all; /* every pending pair, for the sweep */
    int64_t published, dropped, unpaired, subscriptions;
} pair_table;

/* Bind the XPUB (when an endpoint is set); 0 and errno on failure. */
int pairs_open(pair_table *t, void *ctx);
void pairs_close(pair_table *t);
/* A copy of primary (still holding its body) was made for candidate. */
void pairs_expect(pair_table *t, const request *primary, const unsigned char *candidate,
                  size_t candidate_len, const char *method, size_t method_len);
/* The primary's final reply. */
void pairs_primary(pair_table *t, const request *q, zmq_msg_t *body, int nbody);
/* The copy's final reply, or NULL: it failed, and the pair is never published. */
void pairs_candidate(pair_table *t, const request *copy, zmq_msg_t *body, int nbody);
/* Forget pairs whose primary did not answer by its deadline; read subscriptions. */
void pairs_sweep(pair_table *t, int64_t now_ms);
/* ", \"shadow_pairs\": {...}" when publishing, as json.dumps(sort_keys=True) has it. */
void pairs_json(const pair_table *t, sbuf *out);

#endif
