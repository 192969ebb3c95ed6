/* The broker's sends (wire.c): what every handler uses to talk to peers. */
#ifndef MDB_WIRE_H
#define MDB_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "broker.h"
#include "text.h"

/* One frame to send: bytes that the send copies. */
typedef struct {
    const void *p;
    size_t n;
} part;

#define MSGP(m) ((const unsigned char *)zmq_msg_data(m))
#define MSGN(m) zmq_msg_size(m)

const char *hex_of(const void *data, size_t n, char *out, size_t outlen);
/* Prefix parts, then copies of the body frames; 0 or the errno of a refused send. */
int send_raw(broker *b, const part *parts, int nparts, zmq_msg_t *body, int nbody);
/* The same, a refusal counted as a drop (hwm or unroutable); 1 when sent. */
int send_or_drop(broker *b, const part *parts, int nparts, zmq_msg_t *body, int nbody,
                 const char *what);
/* interval_ms > 0 adds the interval frame (SPEC 2.4); err != NULL: report, do not count. */
void send_heartbeat(broker *b, worker *w, int64_t interval_ms, int *err);
void send_disconnect(broker *b, const void *identity, size_t n);
/* SPEC 2.8: an error envelope for q, the same bytes as protocol.mdp.error_body(). */
void reply_error(broker *b, request *q, const char *code, const char *message, size_t mlen);
/* The same, with the service name between before and after, decoded as Python's
 * bytes.decode("utf-8", "replace") shows it. */
void reply_error_named(broker *b, request *q, const char *code, const char *before,
                       const char *after);
/* 32 lowercase hex digits from 128 random bits (SPEC 3.4). */
void fresh_id(char out[33]);

#endif
