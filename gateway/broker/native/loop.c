/* The broker's event loop: wait for the ROUTER and the monitor, handle what is queued,
 * and run the timed duties (probes, expiry, heartbeats, trims).
 *
 * It waits with poll(2) on each socket's ZMQ_FD rather than with zmq_poll. Every
 * zmq_poll call asks ZMQ_EVENTS of each socket before and after it sleeps, and each ask
 * costs libzmq a poll(2) and a getpid(2) on the socket's mailbox: about 11 of each per
 * request on the wsgi path, most of the main thread's system time. Here a socket is
 * touched only when its descriptor fired or when it may still hold messages.
 *
 * ZMQ_FD is an edge, not a level (zmq_getsockopt(3)): it fires when libzmq's mailbox
 * gets a command, and any zmq call on the socket may consume that command. So the loop
 * sleeps only once a read has said EAGAIN (libzmq has then processed every command, and
 * the next message will fire the descriptor again), and reads again without sleeping
 * after the timed duties sent anything.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "broker.h"
#include "loop.h"

/* Seconds after a closed connection at which every worker is probed (probes.py): the
 * ROUTER usually drops a dead peer's pipe within a millisecond or two of the monitor
 * event; a loaded machine may take longer, hence the widening gaps. */
static const int64_t PROBE_DELAYS_US[] = {0, 1000, 2000, 4000, 8000, 16000, 32000, 64000,
                                          128000};
#define N_PROBES ((int)(sizeof PROBE_DELAYS_US / sizeof PROBE_DELAYS_US[0]))

/* Handle up to BATCH queued messages. 0 once a read said EAGAIN (nothing is left, and
 * the descriptor will fire for the next message); 1 when more may be queued (the batch
 * was full, or a signal interrupted a read), so the caller must not sleep on the fd. */
static int read_batch(broker *b)
{
    static zmq_msg_t *frames;
    static int cap;
    for (int k = 0; k < BATCH; k++) {
        int n = 0, more = 1;
        while (more) {
            if (n == cap) { /* messages are moved with zmq_msg_move, never memcpy'd */
                int grown = cap ? cap * 2 : 16;
                zmq_msg_t *more_frames = malloc((size_t)grown * sizeof(zmq_msg_t));
                if (more_frames == NULL)
                    abort();
                for (int i = 0; i < n; i++) {
                    zmq_msg_init(&more_frames[i]);
                    zmq_msg_move(&more_frames[i], &frames[i]);
                    zmq_msg_close(&frames[i]);
                }
                free(frames);
                frames = more_frames;
                cap = grown;
            }
            zmq_msg_init(&frames[n]);
            if (zmq_msg_recv(&frames[n], b->sock, n ? 0 : ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&frames[n]);
                if (n == 0) /* EAGAIN: drained; EINTR: come back; ETERM: shutting down */
                    return errno == EINTR;
                break; /* a message is delivered whole or not at all */
            }
            more = zmq_msg_more(&frames[n]);
            n++;
        }
        handle_message(b, frames, n);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
    }
    return 1;
}

/* Every pending monitor event; how many there were (all are DISCONNECTED). Reads until
 * EAGAIN, so the monitor's descriptor fires again for the next one. */
static int drain_disconnects(void *monitor)
{
    int closed = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, monitor, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return closed;
        }
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        if (!more)
            closed++;
    }
}

static int fd_of(void *sock)
{
    int fd = -1;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) < 0)
        return -1;
    return fd;
}

void broker_run(broker *b, void *monitor, volatile sig_atomic_t *stopping)
{
    int64_t interval_us = b->heartbeat_ms * 1000;
    int64_t next_beat = mono_us() + interval_us;
    int64_t probes[N_PROBES];
    int nprobes = 0, probe_at = 0;
    struct pollfd fds[2] = {{fd_of(b->sock), POLLIN, 0}, {fd_of(monitor), POLLIN, 0}};
    if (fds[0].fd < 0 || fds[1].fd < 0) {
        logf_(LOG_CRITICAL, "cannot get the sockets' descriptors: %s", zmq_strerror(errno));
        return;
    }
    /* Both are read once first: commands taken before the loop began left their
     * descriptors quiet. */
    int router = 1, watch = 1;
    while (!*stopping) {
        if (router)
            router = read_batch(b);
        if (watch) {
            int closed = drain_disconnects(monitor);
            count(b, C_DISCONNECTS, closed);
            if (closed && b->reg.nworkers) {
                int64_t t = mono_us();
                for (int i = 0; i < N_PROBES; i++)
                    probes[i] = t + PROBE_DELAYS_US[i];
                nprobes = N_PROBES;
                probe_at = 0;
            }
        }
        /* The timed duties send; a send may take the command of a message that arrived
         * meanwhile, so after any of them the ROUTER is read again before a sleep. */
        int sent = 0;
        int64_t now = mono_us(), now_ms = wall_ms();
        if (probe_at < nprobes && probes[probe_at] <= now) {
            /* Rounds missed meanwhile collapse into this one. */
            while (probe_at < nprobes && probes[probe_at] <= now)
                probe_at++;
            probe_workers(b);
            if (b->reg.nworkers == 0)
                nprobes = probe_at = 0;
            sent = 1;
        }
        request *due = registry_next_deadline(&b->reg);
        if (due && due->deadline <= now_ms + EXPIRY_MARGIN_MS) {
            expire_requests(b);
            sent = 1;
        }
        if (now >= next_beat) {
            beat(b);
            next_beat = mono_us() + interval_us;
            sent = 1;
        }
        trim_memory(b);
        router |= sent;

        int64_t wait_us = next_beat - now;
        if (wait_us > 100000)
            wait_us = 100000;
        if (probe_at < nprobes && probes[probe_at] - now < wait_us)
            wait_us = probes[probe_at] - now;
        due = registry_next_deadline(&b->reg);
        if (due) {
            int64_t in_ms = due->deadline - EXPIRY_MARGIN_MS - now_ms;
            if (in_ms < wait_us / 1000)
                wait_us = in_ms * 1000;
        }
        if (wait_us < 0 || router)
            wait_us = 0; /* still a poll: the monitor is looked at even under a flood */
        /* Round up: a zero-ms poll on a probe due in 0.4 ms would spin. */
        int rc = poll(fds, 2, (int)((wait_us + 999) / 1000));
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            logf_(LOG_CRITICAL, "poll failed: %s", zmq_strerror(errno));
            return;
        }
        router |= fds[0].revents != 0;
        watch = fds[1].revents != 0;
    }
}
