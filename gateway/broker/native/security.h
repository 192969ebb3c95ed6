/* Who may bind where, CURVE keys and the ZAP handler (gateway/broker/security.py).
 *
 * Loopback (ipc://, inproc://, tcp:// on a loopback address) is open; anything else
 * needs the broker's CURVE keys (SPEC 2.10). Keys are ZeroMQ certificate files as
 * zmq.auth writes them: `public-key = "<Z85>"` and `secret-key = "<Z85>"` lines. With
 * a clients directory, only the public keys of its `*.key` files may connect, checked
 * by a ZAP handler (RFC 27) on inproc://zeromq.zap.01; without one, any client that
 * knows the broker's public key may.
 */
#ifndef MDB_SECURITY_H
#define MDB_SECURITY_H

#include <pthread.h>
#include <stddef.h>

typedef struct {
    char public_z85[41];
    char secret_z85[41];
    unsigned char (*allowed)[32]; /* NULL: any client key */
    size_t nallowed;
    int restrict_clients;
} curve_keys;

int is_loopback(const char *endpoint);
/* 0, or -1 with a message (for stderr) in err. */
int curve_load(curve_keys *keys, const char *secret_file, const char *clients_dir, char *err,
               size_t errlen);
int curve_apply(void *sock, const curve_keys *keys);

typedef struct {
    void *ctx;
    void *sock;
    const curve_keys *keys;
    pthread_t thread;
    int running;
} zap_handler;

int zap_start(zap_handler *zap, void *ctx, const curve_keys *keys);
void zap_join(zap_handler *zap); /* after zmq_ctx_shutdown() */

#endif
