/* Shadow copies of migrated services' calls (SPEC 2.14; the Python twin is
 * gateway/broker/shadow.py, whose docstring gives the rules).
 *
 * A split-file line "shadow SERVICE CANDIDATE METHODS [sample=F] [timeout_ms=N]
 * [max_inflight=N]" makes the broker send a copy of each listed call that stays on
 * SERVICE to CANDIDATE (a counted share of them with sample), flagged "shadow" and
 * with a deadline of at most the shadow timeout. Copies are capped per service, never reach
 * the caller, and end at their deadline even while a hung worker holds them.
 */
#ifndef MDB_SHADOW_H
#define MDB_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#include "registry.h"
#include "text.h"

/* The client address of a copy: no ROUTER peer has it (generated identities start with
 * a zero byte), and the caller's address follows, so two callers' ids never mix. */
#define SHADOW_CLIENT "\x01shadow:"
#define SHADOW_CLIENT_LEN 8
#define SAMPLE_ONE 10000 /* sample=F is kept in 10000ths */
#define SHADOW_MAX_WORDS 7 /* the four words and three options */

typedef struct {
    char *service, *candidate;
    size_t service_len, candidate_len;
    sbuf *methods; /* sorted; NULL with all = 1 ("*") */
    size_t nmethods;
    int all;
    int64_t sample, accrued;             /* in 10000ths: the share, and its accumulator */
    int64_t timeout_ms, max_inflight;    /* 0: the broker's default */
    int64_t inflight, sent, answered, failed, skipped_cap, skipped_down;
} shadow_rule;

typedef struct {
    shadow_rule *rules; /* sorted by service name (mmi.stats lists them so) */
    size_t n;
    int64_t max_inflight, timeout_ms;
    request *live; /* copies not ended yet, linked by shadow_next */
} shadow_table;

struct broker_s;

/* 1 for a "shadow" line of four words or more, which the split parser leaves to this file. */
int shadows_is_line(const char *p, const char *end);
/* Take the shadow lines of a freshly read split file; the number of bad ones. Counts
 * survive a reload of the same rule. */
int shadows_load(shadow_table *t, const char *text, size_t n, const char *path);
shadow_rule *shadows_find(shadow_table *t, const void *service, size_t n);
/* The copy of q (queued, not yet dispatched) for its service's candidate, or NULL;
 * the copy is counted as sent and its pair expected. Call it before q is dispatched:
 * the dispatch may answer q and free it. */
request *shadows_copy(struct broker_s *b, request *q, int64_t now_ms);
/* A copy ended: its final reply (body, nbody) or a broker-made error (body NULL). Once
 * per copy; later calls (a late reply after the sweep) do nothing. */
void shadows_end(struct broker_s *b, request *copy, zmq_msg_t *body, int nbody);
/* End the copies past their deadline, held by a worker or not (once per beat). */
void shadows_sweep(struct broker_s *b, int64_t now_ms);
/* copyhead.c: the header of a copy (SPEC 2.14): for a JSON object with "kind": "call", a
 * text "method" and no "shadow": true, the object with "deadline" set to deadline and
 * "shadow": true, into out, and the method into method; 0 for any other frame. */
int header_shadow_copy(const unsigned char *frame, size_t n, int64_t deadline, sbuf *out,
                       sbuf *method);
/* ", \"shadows\": {...}" in the bytes of json.dumps(sort_keys=True); nothing without rules. */
void shadows_json(const shadow_table *t, sbuf *out);

#endif
