/* What the broker does with each message, and the timed duties (expiry, heartbeats,
 * probes). Section numbers are protocol/SPEC.md's; every path mirrors
 * gateway/broker/broker.py so that one conformance suite passes against both. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "header.h"
#include "text.h"
#include "wire.h"

/* ------------------------------------------------------------------ dispatch -- */

static void lose_worker(broker *b, worker *w, const char *why, int unstarted);

/* Count an outcome for svc when the broker holds it (``received``: a request answered at
 * once, never queued, so it is counted as received too). Unknown names are not recorded:
 * a client naming services no worker serves must not grow mmi.stats. */
static void outcome(service *svc, enum outcome o, int received)
{
    if (svc == NULL)
        return;
    if (received)
        svc->outcomes[O_REQUESTS]++;
    svc->outcomes[o]++;
}

static void unavailable(broker *b, request *q)
{
    count(b, C_EXPIRED, 1);
    outcome(q->svc, q->svc->workers > 0 ? O_TIMEOUT : O_UNAVAILABLE, 0);
    if (q->svc->workers > 0) {
        const char *m = "the deadline passed while every worker was busy";
        reply_error(b, q, "timeout", m, strlen(m));
    } else if (q->svc->ever_served) {
        reply_error_named(b, q, "unavailable", "no live worker for ", " in time");
    } else {
        reply_error_named(b, q, "unknown_service", "no worker has ever served ", "");
    }
    request_free(q);
}

/* SPEC 2.5: waiting requests go to the least recently used worker with free credit;
 * one whose deadline (less the margin) has passed is never dispatched. */
static void dispatch(broker *b, service *svc)
{
    request *q;
    worker *w, *unroutable = NULL;
    int64_t now = wall_ms() + EXPIRY_MARGIN_MS;
    request *expired_head = NULL, *expired_tail = NULL;
    while (registry_pair(svc, &q, &w)) {
        if (q->deadline <= now) {
            registry_unqueue(&b->reg, q);
            q->next = NULL;
            if (expired_tail)
                expired_tail->next = q;
            else
                expired_head = q;
            expired_tail = q;
            continue;
        }
        registry_assign(&b->reg, q, w);
        count(b, C_DISPATCHED, 1);
        part parts[6] = {{w->identity, w->identity_len}, {"", 0}, {MDPW, 6}, {"\x02", 1},
                         {q->client, q->client_len}, {"", 0}};
        if (!send_or_drop(b, parts, 6, q->body, q->nbody, "worker gone")) {
            q->attempts--; /* never delivered, so the attempt does not count */
            unroutable = w;
            break;
        }
    }
    while (expired_head) {
        request *next = expired_head->next;
        unavailable(b, expired_head);
        expired_head = next;
    }
    if (unroutable)
        lose_worker(b, unroutable, "unroutable", 0);
}

/* SPEC 2.6: forget a worker; requeue, retry or fail what it held (``unstarted``: its
 * DISCONNECT crossed them, so it started none). */
static void lose_worker(broker *b, worker *w, const char *why, int unstarted)
{
    char hex[80];
    service *svc = w->svc;
    hex_of(w->identity, w->identity_len, hex, sizeof hex);
    request *held;
    registry_remove_worker(&b->reg, w, &held);
    int n = 0;
    for (request *q = held; q; q = q->next)
        n++;
    logf_(strcmp(why, "disconnected") == 0 && n == 0 ? LOG_INFO : LOG_WARNING,
          "worker %s left (%s) holding %d request(s)", hex, why, n);
    int64_t now = wall_ms();
    while (held) {
        request *q = held;
        held = q->next;
        q->prev = q->next = NULL;
        if (unstarted && !q->replied) {
            q->attempts--; /* it never ran: requeued, and the attempt does not count */
            registry_enqueue(&b->reg, q, 1);
            registry_arm(&b->reg, q);
        } else if (q->idem && q->attempts < 2 && !q->replied
                   && q->deadline - EXPIRY_MARGIN_MS > now) {
            count(b, C_RETRIED, 1);
            outcome(svc, O_RETRIED, 0);
            registry_enqueue(&b->reg, q, 1);
            registry_arm(&b->reg, q);
        } else if (q->attempts < 1) {
            registry_enqueue(&b->reg, q, 1); /* never reached a worker */
            registry_arm(&b->reg, q);
        } else {
            count(b, C_WORKER_LOST, 1);
            outcome(svc, O_WORKER_LOST, 0);
            char msg[200];
            snprintf(msg, sizeof msg, "the worker died while handling it (%s)", why);
            reply_error(b, q, "worker_lost", msg, strlen(msg));
            request_free(q);
        }
    }
    if (n)
        dispatch(b, svc);
}

/* ------------------------------------------------------------------- clients -- */

static void mmi_stats(broker *b, sbuf *out)
{
    /* The shape and bytes of json.dumps(Broker.stats(), sort_keys=True). */
    static const char *const counter_names[N_COUNTERS] = {
        "cancelled", "cancels_forwarded", "cancels_ignored", "deadlines_clamped",
        "disconnects", "dispatched", "ejections", "expired", "memory_trims", "replies",
        "requests", "retried", "too_busy", "unknown_service", "worker_failures",
        "worker_lost", "workers_closed", "workers_expired", "workers_ready"};
    static const char *const drop_names[N_DROPS] = {"hwm", "late_reply", "malformed",
                                                    "unknown_worker", "unroutable"};
    int64_t dropped = 0;
    const char *sep = "";
    sb_puts(out, "{\"counters\": {");
    for (int i = 0; i < N_COUNTERS; i++)
        if (b->touched[i]) {
            sb_printf(out, "%s\"%s\": %lld", sep, counter_names[i], (long long)b->counters[i]);
            sep = ", ";
        }
    for (int i = 0; i < N_DROPS; i++)
        dropped += b->drops[i];
    /* "dropped" sorts before "drops". */
    sb_printf(out, "}, \"dropped\": %lld, \"drops\": {", (long long)dropped);
    sep = "";
    for (int i = 0; i < N_DROPS; i++)
        if (b->drops[i]) {
            sb_printf(out, "%s\"%s\": %lld", sep, drop_names[i], (long long)b->drops[i]);
            sep = ", ";
        }
    sb_printf(out, "}, \"ejected\": %d, \"heartbeat_ms\": %lld, "
              "\"queued\": %lld, \"queued_bytes\": %lld, \"services\": {",
              outlier_ejected(b), (long long)b->heartbeat_ms, (long long)b->reg.queued,
              (long long)b->reg.queued_bytes);
    /* Sorted by name: UTF-8 byte order is code point order. */
    size_t ns = b->reg.nservices;
    service **sorted = malloc((ns ? ns : 1) * sizeof(service *));
    if (sorted == NULL)
        abort();
    if (ns)
        memcpy(sorted, b->reg.services, ns * sizeof(service *));
    for (size_t i = 1; i < ns; i++) /* insertion sort: few services */
        for (size_t j = i; j > 0; j--) {
            service *x = sorted[j - 1], *y = sorted[j];
            size_t m = x->name_len < y->name_len ? x->name_len : y->name_len;
            int c = memcmp(x->name, y->name, m);
            if (c < 0 || (c == 0 && x->name_len <= y->name_len))
                break;
            sorted[j - 1] = y;
            sorted[j] = x;
        }
    for (size_t i = 0; i < ns; i++) {
        sbuf name = {0};
        text_replace(&name, sorted[i]->name, sorted[i]->name_len);
        if (i)
            sb_puts(out, ", ");
        json_ascii(out, name.p ? name.p : "", name.len);
        const int64_t *o = sorted[i]->outcomes;
        sb_printf(out, ": {\"ejected\": %d, \"inflight\": %d, \"outcomes\": {\"ok\": %lld, "
                  "\"requests\": %lld, \"retried\": %lld, \"timeout\": %lld, "
                  "\"too_busy\": %lld, \"unavailable\": %lld, \"worker_lost\": %lld}, "
                  "\"queued_bytes\": %lld, \"waiting\": %d, \"workers\": %d}",
                  sorted[i]->ejected, sorted[i]->inflight, (long long)o[O_OK],
                  (long long)o[O_REQUESTS], (long long)o[O_RETRIED], (long long)o[O_TIMEOUT],
                  (long long)o[O_TOO_BUSY], (long long)o[O_UNAVAILABLE],
                  (long long)o[O_WORKER_LOST], (long long)sorted[i]->queued_bytes,
                  sorted[i]->queued, sorted[i]->workers);
        sb_free(&name);
    }
    free(sorted);
    sb_puts(out, "}");
    pairs_json(&b->pairs, out);
    shadows_json(&b->shadows, out);
    splits_json(&b->splits, out);
    sb_printf(out, ", \"workers\": %zu}", b->reg.nworkers);
}

/* RFC 8 and SPEC 2.9: mmi.service, mmi.stats; any other mmi.* is 501. */
static void mmi(broker *b, zmq_msg_t *sender, zmq_msg_t *svcname, zmq_msg_t *body, int nbody)
{
    sbuf answer = {0};
    if (MSGN(svcname) == 11 && memcmp(MSGP(svcname), "mmi.service", 11) == 0) {
        int live = nbody > 0 ? registry_live(&b->reg, MSGP(&body[0]), MSGN(&body[0]))
                             : registry_live(&b->reg, "", 0);
        sb_puts(&answer, live ? "200" : "404");
    } else if (MSGN(svcname) == 9 && memcmp(MSGP(svcname), "mmi.stats", 9) == 0) {
        mmi_stats(b, &answer);
    } else if (MSGN(svcname) == 9 && memcmp(MSGP(svcname), "mmi.split", 9) == 0) {
        /* Only a re-read of the file the broker was started with (SPEC 2.14). */
        sb_puts(&answer, splits_reload(&b->splits) && !b->splits.errors ? "200" : "400");
    } else {
        sb_puts(&answer, "501");
    }
    part parts[5] = {{MSGP(sender), MSGN(sender)}, {"", 0}, {MDPC, 6},
                     {MSGP(svcname), MSGN(svcname)}, {answer.p, answer.len}};
    send_or_drop(b, parts, 5, NULL, 0, "client gone");
    sb_free(&answer);
}

/* SPEC 2.11: a queued request is dropped; one in flight is told to its worker when that
 * worker announced "cancel": true; anything else is ignored. Never answered. */
static void cancel(broker *b, zmq_msg_t *sender, zmq_msg_t *svcname, const header_fields *h,
                   zmq_msg_t *body, int nbody)
{
    service *svc = registry_find_service(&b->reg, MSGP(svcname), MSGN(svcname));
    split_entry *se = splits_find(&b->splits, MSGP(svcname), MSGN(svcname));
    if (se && !registry_find_queued(svc, MSGP(sender), MSGN(sender), h->id.p, h->id.len)
        && !(svc && registry_find_inflight(&b->reg, svc, MSGP(sender), MSGN(sender), h->id.p,
                                           h->id.len)))
        svc = registry_find_service(&b->reg, se->candidate, se->candidate_len); /* split off */
    request *q = registry_find_queued(svc, MSGP(sender), MSGN(sender), h->id.p, h->id.len);
    if (q && !q->shadow) {
        registry_unqueue(&b->reg, q);
        request_free(q);
        count(b, C_CANCELLED, 1);
        return;
    }
    q = svc ? registry_find_inflight(&b->reg, svc, MSGP(sender), MSGN(sender), h->id.p,
                                     h->id.len)
            : NULL;
    if (q && q->w->cancel && !q->shadow) {
        /* Not a dispatch: the worker's credit is untouched, and its final reply
         * (a "cancelled" error) releases the request as usual. */
        count(b, C_CANCELS_FORWARDED, 1);
        part parts[6] = {{q->w->identity, q->w->identity_len}, {"", 0}, {MDPW, 6},
                         {"\x02", 1}, {MSGP(sender), MSGN(sender)}, {"", 0}};
        send_or_drop(b, parts, 6, body, nbody, "worker gone");
        return;
    }
    count(b, C_CANCELS_IGNORED, 1);
}

/* SPEC 2.5: answer too_busy (and return 1) when queueing size more bytes for q's
 * service would pass a cap on waiting requests or bytes, per service or in total. */
static int queue_full(broker *b, request *q, service *svc, int64_t size)
{
    int64_t queued = svc ? svc->queued : 0, queued_bytes = svc ? svc->queued_bytes : 0;
    char num[64];
    if (queued + 1 > b->max_queued) {
        snprintf(num, sizeof num, "%lld requests for ", (long long)queued);
        reply_error_named(b, q, "too_busy", num, " are already waiting");
    } else if (queued_bytes + size > b->max_queued_bytes) {
        snprintf(num, sizeof num, " is full (%lld bytes waiting)", (long long)queued_bytes);
        reply_error_named(b, q, "too_busy", "the queue of ", num);
    } else if (b->reg.queued + 1 > b->max_queued_total) {
        snprintf(num, sizeof num, "the broker is full (%lld requests waiting)",
                 (long long)b->reg.queued);
        reply_error(b, q, "too_busy", num, strlen(num));
    } else if (b->reg.queued_bytes + size > b->max_queued_bytes_total) {
        snprintf(num, sizeof num, "the broker is full (%lld bytes waiting)",
                 (long long)b->reg.queued_bytes);
        reply_error(b, q, "too_busy", num, strlen(num));
    } else {
        return 0;
    }
    return 1;
}

static void on_client(broker *b, zmq_msg_t *sender, zmq_msg_t *svcname, zmq_msg_t *body,
                      int nbody)
{
    count(b, C_REQUESTS, 1);
    if (MSGN(svcname) >= 4 && memcmp(MSGP(svcname), "mmi.", 4) == 0) {
        mmi(b, sender, svcname, body, nbody);
        return;
    }
    int64_t now = wall_ms();
    header_fields h = {0};
    char fresh[33];
    const char *id;
    size_t id_len;
    int64_t deadline;
    int idem = 0;
    if (nbody > 0)
        header_read(MSGP(&body[0]), MSGN(&body[0]), &h);
    if (h.ok) {
        if (h.cancel) {
            cancel(b, sender, svcname, &h, body, nbody);
            header_free(&h);
            return;
        }
        id = h.id.p;
        id_len = h.id.len;
        /* Python: deadline or now + default (a deadline of 0 means none). */
        deadline = h.has_deadline && h.deadline != 0 ? h.deadline : now + b->default_timeout_ms;
        if (deadline > now + b->max_deadline_ms) {
            /* A client may not pin memory for longer than the broker allows. */
            count(b, C_DEADLINES_CLAMPED, 1);
            deadline = now + b->max_deadline_ms;
        }
        idem = h.idem;
    } else {
        /* SPEC 3.4: a broker-made error for a header-less request still has a proper id. */
        fresh_id(fresh);
        id = fresh;
        id_len = 32;
        deadline = now + b->default_timeout_ms;
    }
    const void *sname = MSGP(svcname);
    size_t slen = MSGN(svcname);
    service *asked = NULL;
    split_entry *se = b->splits.n && nbody ? splits_find(&b->splits, sname, slen) : NULL;
    if (se) {
        /* SPEC 2.14: decided once, on arrival, so a later rollback leaves this call where
         * it started; a candidate with no live worker takes nothing. */
        if (splits_pick(se, MSGP(&body[0]), MSGN(&body[0]))
            && registry_live(&b->reg, se->candidate, se->candidate_len)) {
            se->sent++;
            asked = registry_service(&b->reg, sname, slen);
            sname = se->candidate;
            slen = se->candidate_len;
        } else {
            se->kept++;
        }
    }
    service *known = registry_find_service(&b->reg, sname, slen);
    /* A request object needs a service; a throwaway one answers the early errors without
     * registering a name no worker has served (as the Python registry does). */
    service scratch = {0};
    scratch.name = (unsigned char *)sname;
    scratch.name_len = slen;
    request *q = request_new(MSGP(sender), MSGN(sender), known ? known : &scratch, id, id_len,
                             deadline, idem);
    q->asked = asked;
    header_free(&h);
    if (deadline - EXPIRY_MARGIN_MS <= now) {
        count(b, C_EXPIRED, 1);
        outcome(known, O_TIMEOUT, 1);
        const char *m = "the deadline passed before the broker got it";
        reply_error(b, q, "timeout", m, strlen(m));
        request_free(q);
        return;
    }
    if (!(known && known->ever_served)
        && (mono_us() - b->started_us) / 1000 > b->startup_grace_ms) {
        count(b, C_UNKNOWN_SERVICE, 1);
        outcome(known, O_UNAVAILABLE, 1);
        reply_error_named(b, q, "unknown_service", "no worker has ever served ", "");
        request_free(q);
        return;
    }
    int64_t size = 0;
    for (int i = 0; i < nbody; i++)
        size += (int64_t)MSGN(&body[i]);
    if (queue_full(b, q, known, size)) {
        count(b, C_TOO_BUSY, 1);
        outcome(known, O_TOO_BUSY, 1);
        request_free(q);
        return;
    }
    q->size = size;
    b->trim_pending += size;
    q->svc = registry_service(&b->reg, sname, slen);
    q->body = malloc((size_t)(nbody ? nbody : 1) * sizeof(zmq_msg_t));
    if (q->body == NULL)
        abort();
    for (int i = 0; i < nbody; i++) {
        zmq_msg_init(&q->body[i]);
        zmq_msg_move(&q->body[i], &body[i]);
    }
    q->nbody = nbody;
    registry_enqueue(&b->reg, q, 0);
    q->svc->outcomes[O_REQUESTS]++;
    /* Watched from the start: leaving the queue takes it out of the heap in O(log n). */
    registry_arm(&b->reg, q);
    /* Made before the primary's dispatch, which may answer q and free it; sent after,
     * so the caller waits for nothing more (SPEC 2.14). */
    request *copy = b->shadows.n ? shadows_copy(b, q, now) : NULL;
    dispatch(b, q->svc);
    if (copy) {
        registry_enqueue(&b->reg, copy, 0);
        copy->svc->outcomes[O_REQUESTS]++; /* so the candidate's outcomes add up */
        registry_arm(&b->reg, copy);
        dispatch(b, copy->svc);
    }
}

/* ------------------------------------------------------------------- workers -- */

/* SPEC 2.3, 2.4: register, clamp credit to 1..1000, send the interval HEARTBEAT. */
static void on_ready(broker *b, zmq_msg_t *sender, zmq_msg_t *args, int nargs)
{
    ready_metadata meta = {0};
    if (nargs >= 2)
        metadata_read(MSGP(&args[1]), MSGN(&args[1]), &meta);
    int64_t credit = meta.ok && meta.has_credit ? meta.credit : 1;
    credit = credit < 1 ? 1 : credit > 1000 ? 1000 : credit;
    int64_t beat_ms = meta.ok && meta.heartbeat_ms > 0 ? meta.heartbeat_ms
                                                        : PLAIN_WORKER_HEARTBEAT_MS;
    int64_t longest = beat_ms > b->heartbeat_ms ? beat_ms : b->heartbeat_ms;
    int64_t liveness_us = LIVENESS * longest * 1000;
    service *svc = registry_service(&b->reg, MSGP(&args[0]), MSGN(&args[0]));
    worker *w = registry_add_worker(&b->reg, MSGP(sender), MSGN(sender), svc, (int)credit,
                                    mono_us() + liveness_us, liveness_us,
                                    meta.ok && meta.cancel);
    count(b, C_WORKERS_READY, 1);
    char hex[80];
    logf_(LOG_INFO, "worker %s ready for %.*s (credit %d)",
          hex_of(w->identity, w->identity_len, hex, sizeof hex), (int)svc->name_len,
          (const char *)svc->name, w->credit);
    send_heartbeat(b, w, b->heartbeat_ms, NULL);
    dispatch(b, svc);
}

/* SPEC 2.7: forward the part; only the part without "more" ends the request. */
static void on_reply(broker *b, worker *w, zmq_msg_t *args, int nargs)
{
    if (nargs < 2 || MSGN(&args[1]) != 0) {
        drop(b, D_MALFORMED, "REPLY without [client, empty]");
        return;
    }
    zmq_msg_t *client = &args[0], *body = args + 2;
    int nbody = nargs - 2;
    header_fields h = {0};
    int by_id = 0;
    /* The common case (one request in flight, a final reply) needs no parse at all:
     * canonical JSON has the bytes "more" only as a key. */
    if (w->inflight != 1) {
        if (nbody)
            header_read(MSGP(&body[0]), MSGN(&body[0]), &h);
        by_id = h.ok;
    } else if (nbody && memmem(MSGP(&body[0]), MSGN(&body[0]), "\"more\"", 6)) {
        header_read(MSGP(&body[0]), MSGN(&body[0]), &h);
    }
    int more = h.more;
    request *q = registry_match(w, MSGP(client), MSGN(client), h.id.p, h.id.len, by_id);
    header_free(&h);
    if (q == NULL) {
        drop(b, D_LATE_REPLY, "reply for a request the broker no longer holds");
        return;
    }
    count(b, C_REPLIES, 1);
    if (!q->replied) /* the first part tells whether the worker kept the deadline */
        outlier_replied(b, w, q, nbody ? (const void *)MSGP(&body[0]) : "",
                        nbody ? MSGN(&body[0]) : 0);
    q->replied = 1;
    /* The address the broker recorded, not the one the worker echoed back. */
    service *named = q->asked ? q->asked : w->svc; /* the client never sees a split */
    part parts[4] = {{q->client, q->client_len}, {"", 0}, {MDPC, 6},
                     {named->name, named->name_len}};
    if (!q->shadow) /* a copy's replies go to the comparison only */
        send_or_drop(b, parts, 4, body, nbody, "client gone");
    if (!more) {
        service *svc = w->svc;
        svc->outcomes[O_OK]++;
        if (q->shadow)
            shadows_end(b, q, body, nbody);
        else if (b->pairs.count)
            pairs_primary(&b->pairs, q, body, nbody);
        if (b->splits.n && !q->shadow) {
            service *side = q->asked ? q->asked : q->svc;
            splits_replied(&b->splits, side->name, side->name_len, q->asked != NULL,
                           nbody ? (const unsigned char *)MSGP(&body[0]) : NULL,
                           nbody ? MSGN(&body[0]) : 0);
        }
        registry_release(&b->reg, w, q);
        request_free(q);
        if (svc->queue_head)
            dispatch(b, svc);
    }
}

static void on_worker(broker *b, zmq_msg_t *sender, zmq_msg_t *command, zmq_msg_t *args,
                      int nargs)
{
    worker *w = registry_worker(&b->reg, MSGP(sender), MSGN(sender));
    int cmd = MSGN(command) == 1 ? MSGP(command)[0] : -1;
    if (w)
        w->expiry_us = mono_us() + w->liveness_us;
    if (cmd == CMD_REPLY && w) {
        on_reply(b, w, args, nargs);
    } else if (cmd == CMD_HEARTBEAT && w) {
        /* liveness refreshed above */
    } else if (cmd == CMD_READY) {
        if (w) { /* RFC 7: READY twice is a protocol error */
            lose_worker(b, w, "sent READY twice", 0);
            send_disconnect(b, MSGP(sender), MSGN(sender));
        } else if (nargs > 0) {
            on_ready(b, sender, args, nargs);
        } else {
            drop(b, D_MALFORMED, "READY without a service");
        }
    } else if (cmd == CMD_DISCONNECT) {
        /* A worker sends DISCONNECT only once it has answered everything it started
         * (SPEC 2.2), so what it still holds crossed the DISCONNECT on the wire. */
        if (w)
            lose_worker(b, w, "disconnected", 1);
    } else if (w == NULL) {
        /* An unknown worker (e.g. after a broker restart): RFC 7 says disconnect it, and
         * a conforming worker then registers again with READY. */
        drop(b, D_UNKNOWN_WORKER, "command from an unregistered worker");
        send_disconnect(b, MSGP(sender), MSGN(sender));
    } else {
        drop(b, D_MALFORMED, "unknown worker command");
    }
}

void handle_message(broker *b, zmq_msg_t *frames, int n)
{
    if (n < 4 || MSGN(&frames[1]) != 0) {
        drop(b, D_MALFORMED, "short or unframed message");
        return;
    }
    zmq_msg_t *proto = &frames[2];
    if (MSGN(proto) == 6 && memcmp(MSGP(proto), MDPC, 6) == 0)
        on_client(b, &frames[0], &frames[3], frames + 4, n - 4);
    else if (MSGN(proto) == 6 && memcmp(MSGP(proto), MDPW, 6) == 0)
        on_worker(b, &frames[0], &frames[3], frames + 4, n - 4);
    else
        drop(b, D_MALFORMED, "unknown protocol");
}

/* ----------------------------------------------------------------- timed work -- */

/* SPEC 2.5: only queued requests expire; one in flight is never expired by the broker. */
void expire_requests(broker *b)
{
    int64_t now = wall_ms() + EXPIRY_MARGIN_MS;
    request *q;
    while ((q = registry_next_deadline(&b->reg)) != NULL && q->deadline <= now) {
        registry_unqueue(&b->reg, q);
        unavailable(b, q);
    }
}

/* The identities of every worker, in registration order: losing one worker may
 * dispatch, and a failed dispatch loses another, so walks go by identity, as Python's
 * list(self.registry.workers) does. */
static sbuf *snapshot(broker *b, size_t *n)
{
    sbuf *ids = calloc(b->reg.nworkers ? b->reg.nworkers : 1, sizeof(sbuf));
    if (ids == NULL)
        abort();
    *n = 0;
    for (worker *w = b->reg.all_head; w; w = w->all_next)
        sb_put(&ids[(*n)++], w->identity, w->identity_len);
    return ids;
}

static void free_snapshot(sbuf *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_free(&ids[i]);
    free(ids);
}

/* SPEC 2.4: forget the silent workers, then a HEARTBEAT to every other one. */
void beat(broker *b)
{
    splits_changed(&b->splits); /* a missed mmi.split still takes effect within a beat */
    if (b->shadows.live)
        shadows_sweep(b, wall_ms());
    pairs_sweep(&b->pairs, wall_ms());
    size_t n;
    int64_t now = mono_us();
    sbuf *ids = snapshot(b, &n);
    for (size_t i = 0; i < n; i++) {
        worker *w = registry_worker(&b->reg, ids[i].p, ids[i].len);
        if (w && w->expiry_us < now) {
            count(b, C_WORKERS_EXPIRED, 1);
            lose_worker(b, w, "missed heartbeats", 0);
        }
    }
    free_snapshot(ids, n);
    /* SPEC 2.13: a worker back from ejection may take what waits for its service. */
    outlier_sweep(b);
    for (size_t i = 0; i < b->reg.nservices; i++)
        if (b->reg.services[i]->queue_head && b->reg.services[i]->idle_head)
            dispatch(b, b->reg.services[i]);
    ids = snapshot(b, &n);
    for (size_t i = 0; i < n; i++) {
        worker *w = registry_worker(&b->reg, ids[i].p, ids[i].len);
        if (w == NULL)
            continue;
        part parts[4] = {{w->identity, w->identity_len}, {"", 0}, {MDPW, 6}, {"\x04", 1}};
        if (!send_or_drop(b, parts, 4, NULL, 0, "heartbeat"))
            lose_worker(b, w, "unroutable", 0);
    }
    free_snapshot(ids, n);
}

/* One probe round (gateway/broker/probes.py): a HEARTBEAT to every worker; with
 * ROUTER_MANDATORY the ones whose connection closed are unroutable, so they are dead.
 * A full peer (EAGAIN) is full, not gone. */
void probe_workers(broker *b)
{
    size_t n;
    sbuf *ids = snapshot(b, &n);
    for (size_t i = 0; i < n; i++) {
        worker *w = registry_worker(&b->reg, ids[i].p, ids[i].len);
        if (w == NULL)
            continue;
        int err = 0;
        send_heartbeat(b, w, 0, &err);
        if (err == EHOSTUNREACH) {
            count(b, C_WORKERS_CLOSED, 1);
            lose_worker(b, w, "connection closed", 0);
        }
    }
    free_snapshot(ids, n);
}

/* Once a burst has drained, give freed pages back: libzmq's message buffers and our
 * bookkeeping come from glibc arenas that otherwise shrink only from the top. */
void trim_memory(broker *b)
{
    if (b->reg.queued_bytes != 0)
        return;
    int64_t now = mono_us();
    if (b->trim_pending >= TRIM_AFTER_BYTES) {
        /* Buffers libzmq's I/O thread still held at the drain are freed a moment
         * later: a second trim, one second on, catches them. */
        b->trim_pending = 0;
        b->trim_again_us = now + 1000000;
    } else if (b->trim_again_us == 0 || now < b->trim_again_us) {
        return;
    } else {
        b->trim_again_us = 0;
    }
    count(b, C_MEMORY_TRIMS, 1);
    malloc_trim(0);
}
