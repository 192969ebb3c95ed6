/* The broker's sends: frames to a peer through the ROUTER, refusals counted as drops,
 * and the broker-made error envelopes of SPEC 2.8. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "wire.h"

const char *hex_of(const void *data, size_t n, char *out, size_t outlen)
{
    const unsigned char *p = data;
    size_t i = 0;
    for (; i < n && 2 * i + 2 < outlen; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * i] = '\0';
    return out;
}

/* ----------------------------------------------------------------------- I/O -- */

/* Send prefix parts then (copies of) body frames; 0 or the errno of a refused send.
 * With ROUTER_MANDATORY an unroutable peer (EHOSTUNREACH) or a full one (EAGAIN)
 * refuses the first frame, so nothing half-sent is left behind. */
int send_raw(broker *b, const part *parts, int nparts, zmq_msg_t *body, int nbody)
{
    for (int i = 0; i < nparts; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < nparts || nbody ? ZMQ_SNDMORE : 0);
        if (zmq_send(b->sock, parts[i].p, parts[i].n, flags) < 0)
            return errno;
    }
    for (int i = 0; i < nbody; i++) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &body[i]);
        if (zmq_msg_send(&copy, b->sock, ZMQ_DONTWAIT | (i + 1 < nbody ? ZMQ_SNDMORE : 0)) < 0) {
            int err = errno;
            zmq_msg_close(&copy);
            return err;
        }
    }
    return 0;
}

/* Send, counting a refusal as a drop; 1 when sent. */
int send_or_drop(broker *b, const part *parts, int nparts, zmq_msg_t *body, int nbody,
                        const char *what)
{
    int err = send_raw(b, parts, nparts, body, nbody);
    if (err == 0)
        return 1;
    char hex[80], detail[160];
    hex_of(parts[0].p, parts[0].n, hex, sizeof hex);
    if (err == EAGAIN) {
        snprintf(detail, sizeof detail, "peer %s is full", hex);
        drop(b, D_HWM, detail);
    } else {
        if (err != EHOSTUNREACH)
            logf_(LOG_ERROR, "send failed: %s", zmq_strerror(err));
        snprintf(detail, sizeof detail, "%s: %s", what, hex);
        drop(b, D_UNROUTABLE, detail);
    }
    return 0;
}

void send_heartbeat(broker *b, worker *w, int64_t interval_ms, int *err)
{
    char digits[24];
    part parts[5] = {{w->identity, w->identity_len}, {"", 0}, {MDPW, 6}, {"\x04", 1}, {0, 0}};
    int n = 4;
    if (interval_ms > 0) {
        snprintf(digits, sizeof digits, "%lld", (long long)interval_ms);
        parts[4].p = digits;
        parts[4].n = strlen(digits);
        n = 5;
    }
    if (err)
        *err = send_raw(b, parts, n, NULL, 0);
    else
        send_or_drop(b, parts, n, NULL, 0, "worker gone");
}

void send_disconnect(broker *b, const void *identity, size_t n)
{
    part parts[4] = {{identity, n}, {"", 0}, {MDPW, 6}, {"\x05", 1}};
    send_or_drop(b, parts, 4, NULL, 0, "worker gone");
}

/* --------------------------------------------------------- broker-made errors -- */

/* SPEC 2.8: the same bytes as protocol.mdp.error_body() (canonical JSON, SPEC 4.8). */
void reply_error(broker *b, request *q, const char *code, const char *message,
                        size_t mlen)
{
    if (q->shadow) { /* nobody waits for a copy: it only ends */
        shadows_end(b, q, NULL, 0);
        return;
    }
    sbuf head = {0};
    sb_puts(&head, "{\"error\":{\"code\":\"");
    sb_puts(&head, code);
    sb_puts(&head, "\",\"message\":");
    json_canonical(&head, message, mlen);
    sb_puts(&head, "},\"id\":");
    json_canonical(&head, q->id, q->id_len);
    sb_puts(&head, ",\"kind\":\"error\",\"v\":1}");
    service *named = q->asked ? q->asked : q->svc; /* the client never sees a split */
    part parts[6] = {{q->client, q->client_len}, {"", 0}, {MDPC, 6},
                     {named->name, named->name_len}, {head.p, head.len}, {"null", 4}};
    send_or_drop(b, parts, 6, NULL, 0, "client gone");
    sb_free(&head);
}

/* A message naming the service the way Python's f"...{name}..." does after
 * name.decode("utf-8", "replace"). */
void reply_error_named(broker *b, request *q, const char *code, const char *before,
                              const char *after)
{
    sbuf msg = {0};
    sb_puts(&msg, before);
    text_replace(&msg, q->svc->name, q->svc->name_len);
    sb_puts(&msg, after);
    reply_error(b, q, code, msg.p, msg.len);
    sb_free(&msg);
}

void fresh_id(char out[33])
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR)
            abort();
        if (n > 0)
            got += (size_t)n;
    }
    hex_of(raw, 16, out, 33);
}
