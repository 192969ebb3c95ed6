/* The event bus (SPEC 9, gateway/broker/events.py): an XSUB socket that publishers
 * connect to and an XPUB socket that subscribers connect to, joined by
 * zmq_proxy_steerable() in a thread of its own. Delivery is at most once, as PUB/SUB
 * is; the proxy only forwards frames. */
#ifndef MDB_EVENTS_H
#define MDB_EVENTS_H

#include <pthread.h>

#include "security.h"

typedef struct {
    void *ctx, *xsub, *xpub, *control;
    pthread_t thread;
    int running;
} event_proxy;

/* Bind both sockets (in the caller's thread, so a refused bind is reported like the
 * broker's own) and start the proxy thread. -1 with a message in err. */
int events_start(event_proxy *ev, void *ctx, const char *pub_endpoint,
                 const char *sub_endpoint, const curve_keys *keys, char *err, size_t errlen);
void events_stop(event_proxy *ev);

#endif
