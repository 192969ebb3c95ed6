/* Traffic splits of migrated services (SPEC 2.14; the Python twin is
 * gateway/broker/splits.py, whose docstring gives the file format and the rules).
 *
 * The split file is the single source of truth: the broker reads it at start, on an
 * mmi.split request, and when its mtime or size changes (checked once per beat).
 */
#ifndef MDB_SPLITS_H
#define MDB_SPLITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shadow.h"
#include "text.h"

typedef struct {
    char *service, *candidate; /* UTF-8, no NUL inside */
    size_t service_len, candidate_len;
    int percent;
    int64_t sent, kept;
    int64_t sent_errors, kept_errors; /* final replies that were error envelopes */
} split_entry;

typedef struct {
    const char *path; /* NULL: no split file, no splits */
    split_entry *entries; /* sorted by service name (mmi.stats lists them so) */
    size_t n;
    int errors; /* lines skipped at the last reload */
    shadow_table *shadows; /* given the file's "shadow" lines at each reload */
    int seen;   /* the file existed at the last reload */
    int64_t seen_mtime_ns;
    off_t seen_size;
} split_table;

/* Read the file again (missing = no splits). 0 when unreadable: the table is kept. */
int splits_reload(split_table *t);
/* Reload when the file's mtime or size moved. */
void splits_changed(split_table *t);
split_entry *splits_find(split_table *t, const void *service, size_t n);
/* 1 when this call (its header frame) falls in the candidate's share. */
int splits_pick(const split_entry *e, const unsigned char *frame, size_t n);
/* Count a final reply to a call of a split service that failed (moved: the candidate
 * answered it); the control plane's error budget reads these. */
void splits_replied(split_table *t, const void *service, size_t n, int moved,
                    const unsigned char *head, size_t head_len);
/* ", \"splits\": {...}" in the bytes of json.dumps(sort_keys=True). */
void splits_json(const split_table *t, sbuf *out);

#endif
