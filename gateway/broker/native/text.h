/* Byte buffers, UTF-8 and JSON text: everything the broker writes or reads as text.
 *
 * The rules mirror the Python reference so both brokers put the same bytes
 * on the wire:
 *   - json_canonical()  SPEC 4.8 strings (raw UTF-8, lowercase \u00XX for controls),
 *                       the form of broker-made error envelopes (SPEC 2.8);
 *   - json_ascii()      Python's json.dumps default (ensure_ascii), for mmi.stats;
 *   - text_replace()    Python's bytes.decode("utf-8", "replace"), for service names
 *                       quoted in error messages;
 *   - utf8_valid()      Python's strict UTF-8 decoder (no surrogates, no overlongs).
 */
#ifndef MDB_TEXT_H
#define MDB_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

void sb_put(sbuf *b, const void *data, size_t n);
void sb_putc(sbuf *b, char c);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(sbuf *b);

int utf8_valid(const unsigned char *s, size_t n);
void text_replace(sbuf *out, const unsigned char *s, size_t n);
void json_canonical(sbuf *out, const char *utf8, size_t n);
void json_ascii(sbuf *out, const char *utf8, size_t n);
void utf8_put(sbuf *out, uint32_t cp);

#endif
