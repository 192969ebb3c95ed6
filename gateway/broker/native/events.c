/* XSUB/XPUB proxy thread (see events.h). */
#include "events.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define EVENT_HWM 10000
#define CONTROL "inproc://events-control"

static void close0(void *sock)
{
    int zero = 0;
    if (sock) {
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(sock);
    }
}

static void *events_main(void *arg)
{
    event_proxy *ev = arg;
    zmq_proxy_steerable(ev->xsub, ev->xpub, NULL, ev->control);
    close0(ev->xsub);
    close0(ev->xpub);
    close0(ev->control);
    return NULL;
}

int events_start(event_proxy *ev, void *ctx, const char *pub_endpoint,
                 const char *sub_endpoint, const curve_keys *keys, char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    ev->ctx = ctx;
    ev->xsub = zmq_socket(ctx, ZMQ_XSUB);
    ev->xpub = zmq_socket(ctx, ZMQ_XPUB);
    ev->control = zmq_socket(ctx, ZMQ_PAIR);
    int hwm = EVENT_HWM, zero = 0;
    void *socks[2] = {ev->xsub, ev->xpub};
    const char *eps[2] = {pub_endpoint, sub_endpoint};
    for (int i = 0; i < 2; i++) {
        zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (keys && curve_apply(socks[i], keys) < 0) {
            snprintf(err, errlen, "cannot use the CURVE keys: %s", zmq_strerror(errno));
            goto fail;
        }
        if (zmq_bind(socks[i], eps[i]) < 0) {
            snprintf(err, errlen, "cannot bind %s: %s", eps[i], zmq_strerror(errno));
            goto fail;
        }
    }
    if (zmq_bind(ev->control, CONTROL) < 0) {
        snprintf(err, errlen, "cannot bind %s: %s", CONTROL, zmq_strerror(errno));
        goto fail;
    }
    /* pthread_create is a full barrier, which is what moving sockets between threads
     * needs (zmq_socket(3)). */
    if (pthread_create(&ev->thread, NULL, events_main, ev) != 0) {
        snprintf(err, errlen, "cannot start the event proxy thread");
        goto fail;
    }
    ev->running = 1;
    return 0;
fail:
    close0(ev->xsub);
    close0(ev->xpub);
    close0(ev->control);
    ev->xsub = ev->xpub = ev->control = NULL;
    return -1;
}

void events_stop(event_proxy *ev)
{
    if (!ev->running)
        return;
    void *ctl = zmq_socket(ev->ctx, ZMQ_PAIR);
    int zero = 0;
    if (ctl) {
        zmq_setsockopt(ctl, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(ctl, CONTROL) == 0)
            zmq_send(ctl, "TERMINATE", 9, ZMQ_DONTWAIT);
        zmq_close(ctl);
    }
    pthread_join(ev->thread, NULL);
    ev->running = 0;
}
