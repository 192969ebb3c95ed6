/* Outlier ejection (SPEC 2.13), the C twin of gateway/broker/outlier.py: a worker that
 * keeps missing deadlines gets no new requests for a while, as Envoy's outlier detection
 * (consecutive_gateway_failure, base_ejection_time, max_ejection_percent) does.
 *
 * A worker fails a request when the request's deadline passes while that worker holds
 * it with no reply part sent (the sweep, once per heartbeat, notices) or when its first
 * reply part comes after the deadline; with --outlier-count-errors an "internal" error
 * reply is a failure too. A first reply part in time resets the count (a stream may
 * outlive its deadline, SPEC 2.7). After --outlier-consecutive failures in a row the
 * worker leaves its service's LRU line for base x (times ejected) ms, at most the maximum;
 * it stays registered and keeps what it holds. Never the last routable worker, nor more
 * than the allowed share of a service's workers (though one of two or more always may).
 */
#include <string.h>

#include "broker.h"
#include "wire.h"

/* Canonical JSON sorts keys, so an error envelope's header starts with its error object. */
static const char INTERNAL_ERROR[] = "{\"error\":{\"code\":\"internal\"";

static int may_eject(broker *b, service *svc)
{
    int routable = svc->workers - svc->ejected;
    if (routable < 2)
        return 0;
    return svc->ejected == 0
           || (int64_t)(svc->ejected + 1) * 100 <= (int64_t)svc->workers
                                                        * b->outlier_max_ejection_percent;
}

static void eject(broker *b, worker *w, int64_t now_us)
{
    /* Healthy for longer than the longest ejection: the multiplier starts over. */
    if (w->returned_at_us && (now_us - w->returned_at_us) / 1000 > b->outlier_max_ejection_ms)
        w->ejections = 0;
    w->ejections++;
    int64_t cap = b->outlier_max_ejection_ms > b->outlier_base_ejection_ms
                      ? b->outlier_max_ejection_ms
                      : b->outlier_base_ejection_ms;
    int64_t span_ms = b->outlier_base_ejection_ms * w->ejections;
    if (span_ms > cap)
        span_ms = cap;
    registry_eject(w, now_us + span_ms * 1000);
    count(b, C_EJECTIONS, 1);
    char hex[80];
    logf_(LOG_WARNING, "worker %s of %.*s ejected for %lld ms after %lld failures in a row "
          "(ejection %d)", hex_of(w->identity, w->identity_len, hex, sizeof hex),
          (int)w->svc->name_len, (const char *)w->svc->name, (long long)span_ms,
          (long long)b->outlier_consecutive, w->ejections);
}

static void failed(broker *b, worker *w, int64_t now_us)
{
    count(b, C_WORKER_FAILURES, 1);
    w->failures++;
    if (w->failures < b->outlier_consecutive || w->ejected_until_us)
        return;
    if (may_eject(b, w->svc))
        eject(b, w, now_us);
}

void outlier_replied(broker *b, worker *w, request *q, const void *head, size_t n)
{
    if (b->outlier_consecutive <= 0 || q->failed)
        return;
    size_t m = sizeof INTERNAL_ERROR - 1;
    if (q->deadline <= wall_ms() /* SPEC 3.5: passed when deadline <= now */
        || (b->outlier_count_errors && n >= m && memcmp(head, INTERNAL_ERROR, m) == 0)) {
        q->failed = 1;
        failed(b, w, mono_us());
    } else {
        w->failures = 0;
    }
}

/* Return the workers whose ejection is over, then count the requests held past their
 * deadline. The caller dispatches the services that got a worker back. */
void outlier_sweep(broker *b)
{
    if (b->outlier_consecutive <= 0)
        return;
    int64_t now_us = mono_us(), now_ms = wall_ms();
    for (worker *w = b->reg.all_head; w; w = w->all_next)
        if (w->ejected_until_us && w->ejected_until_us <= now_us) {
            registry_return(w, now_us);
            char hex[80];
            logf_(LOG_INFO, "worker %s of %.*s is back from ejection",
                  hex_of(w->identity, w->identity_len, hex, sizeof hex),
                  (int)w->svc->name_len, (const char *)w->svc->name);
        }
    for (worker *w = b->reg.all_head; w; w = w->all_next)
        for (request *q = w->held_head; q; q = q->next)
            if (!q->failed && !q->replied && q->deadline <= now_ms) {
                q->failed = 1;
                failed(b, w, now_us);
            }
}

int outlier_ejected(broker *b)
{
    int n = 0;
    for (size_t i = 0; i < b->reg.nservices; i++)
        n += b->reg.services[i]->ejected;
    return n;
}
