/* Shared declarations of the compiled Majordomo broker (mdbroker.c: command line and
 * loop; handlers.c: what each message does). The Python twin is gateway/broker/. */
#ifndef MDB_BROKER_H
#define MDB_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "pairs.h"
#include "registry.h"
#include "shadow.h"
#include "splits.h"

#define MDPC "MDPC01"
#define MDPW "MDPW01"
#define CMD_READY 0x01
#define CMD_REQUEST 0x02
#define CMD_REPLY 0x03
#define CMD_HEARTBEAT 0x04
#define CMD_DISCONNECT 0x05

/* SPEC 2.4: liveness is 3 intervals; a worker that announced no heartbeat_ms is taken to
 * beat every 2500 ms, the customary RFC 7 interval. */
#define LIVENESS 3
#define PLAIN_WORKER_HEARTBEAT_MS 2500
/* SPEC 2.5: queued requests expire this much before their deadline, so the broker's
 * typed answer reaches the client before the client's own clock runs out. */
#define EXPIRY_MARGIN_MS 50
#define BATCH 256

/* In the order of their names: mmi.stats lists them as json.dumps(sort_keys=True) does. */
enum counter {
    C_CANCELLED, C_CANCELS_FORWARDED, C_CANCELS_IGNORED, C_DEADLINES_CLAMPED, C_DISCONNECTS,
    C_DISPATCHED, C_EJECTIONS, C_EXPIRED, C_MEMORY_TRIMS, C_REPLIES, C_REQUESTS, C_RETRIED,
    C_TOO_BUSY, C_UNKNOWN_SERVICE, C_WORKER_FAILURES, C_WORKER_LOST, C_WORKERS_CLOSED,
    C_WORKERS_EXPIRED, C_WORKERS_READY, N_COUNTERS
};
/* Trimming walks every arena: only worth it after a burst of at least this many bytes. */
#define TRIM_AFTER_BYTES (4LL * 1024 * 1024)
enum drop { D_HWM, D_LATE_REPLY, D_MALFORMED, D_UNKNOWN_WORKER, D_UNROUTABLE, N_DROPS };

enum { LOG_DEBUG = 10, LOG_INFO = 20, LOG_WARNING = 30, LOG_ERROR = 40, LOG_CRITICAL = 50 };

typedef struct broker_s {
    void *sock; /* the ROUTER every client and worker talks to */
    registry reg;
    int64_t heartbeat_ms, default_timeout_ms, startup_grace_ms;
    /* SPEC 2.5 memory bounds: the furthest deadline believed, and the queue caps. */
    int64_t max_deadline_ms, max_queued, max_queued_total, max_queued_bytes,
        max_queued_bytes_total;
    /* SPEC 2.13 outlier ejection; consecutive 0 turns it off. */
    int64_t outlier_consecutive, outlier_base_ejection_ms, outlier_max_ejection_ms,
        outlier_max_ejection_percent;
    int outlier_count_errors;
    int64_t trim_pending; /* bytes queued since the last malloc_trim */
    int64_t trim_again_us; /* monotonic time of the follow-up trim, or 0 */
    int64_t started_us; /* monotonic, when the endpoints were bound */
    int64_t counters[N_COUNTERS];
    int touched[N_COUNTERS]; /* a counter appears in mmi.stats once it was counted */
    int64_t drops[N_DROPS];
    split_table splits; /* SPEC 2.14 */
    shadow_table shadows; /* SPEC 2.14: copies to a candidate, read with the splits */
    pair_table pairs;     /* SPEC 2.14: their pairs, published for the comparer */
} broker;

int64_t wall_ms(void);
int64_t mono_us(void);
void logf_(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
extern int log_level;

void count(broker *b, enum counter c, int64_t n);
void drop(broker *b, enum drop d, const char *detail);

/* handlers.c */
void handle_message(broker *b, zmq_msg_t *frames, int n);
void expire_requests(broker *b);
void beat(broker *b);
void probe_workers(broker *b);
void trim_memory(broker *b);

/* outlier.c */
void outlier_replied(broker *b, worker *w, request *q, const void *head, size_t n);
void outlier_sweep(broker *b);
int outlier_ejected(broker *b);

#endif
