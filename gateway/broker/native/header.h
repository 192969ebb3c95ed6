/* The few header and metadata fields the broker routes by (SPEC 2.3, 2.6, 2.7, 2.11).
 *
 * A small strict JSON scanner: it validates the whole frame (UTF-8 and JSON, as
 * Python's json.loads does for gateway/broker/header.py), skips nested values such as
 * "http" without building them, and keeps only the top-level members it is asked for.
 * A repeated member counts by its last occurrence, as in Python.
 */
#ifndef MDB_HEADER_H
#define MDB_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "text.h"

/* What a request or reply header frame says; ok = 0 when it is not one of ours. */
/* Integers beyond this are clamped to it: a deadline or interval that far out means
 * "never" either way, and arithmetic on it cannot overflow. */
#define HEADER_INT_LIMIT ((int64_t)1 << 50)

typedef struct {
    int ok;            /* a JSON object with a non-empty text "id" */
    sbuf id;           /* the decoded id (UTF-8), what replies are matched by */
    int has_deadline;  /* "deadline" is an integer (not a boolean, not a float) */
    int64_t deadline;  /* clamped to +-HEADER_INT_LIMIT */
    int idem;          /* "idem" is exactly true */
    int more;          /* "more" is exactly true (read even when "id" is not valid) */
    int cancel;        /* "kind" is the text "cancel" */
    int error;         /* "kind" is the text "error" (read even when "id" is not valid) */
} header_fields;

/* The READY metadata keys the broker acts on. */
typedef struct {
    int ok;               /* the frame is a JSON object */
    int has_credit;
    int64_t credit;       /* clamped to +-HEADER_INT_LIMIT; the caller clamps to 1..1000 */
    int64_t heartbeat_ms; /* 0 when absent or not a positive integer; clamped */
    int cancel;           /* "cancel" is exactly true */
} ready_metadata;

void header_read(const unsigned char *frame, size_t n, header_fields *out);
void header_free(header_fields *h);
/* The split key of a request (SPEC 2.14): its "sticky", else "rid", else "id" text,
 * the first that is non-empty; 0 when there is none. */
int header_sticky(const unsigned char *frame, size_t n, sbuf *out);
/* One top-level member of a JSON object frame: its decoded key, its raw bytes (from the
 * key's opening quote to the value's end), and what its value is. */
typedef struct {
    const sbuf *key;
    const unsigned char *raw;
    size_t raw_len;
    int is_string, is_true;
    const sbuf *text; /* a string value, decoded */
} header_member;
typedef void (*header_member_fn)(void *ctx, const header_member *m);
/* Call fn for each top-level member, in order; 1 when the frame is one valid JSON object
 * (strict UTF-8, as header_read checks). Members seen before an error were passed. */
int header_members(const unsigned char *frame, size_t n, header_member_fn fn, void *ctx);
void metadata_read(const unsigned char *frame, size_t n, ready_metadata *out);

#endif
