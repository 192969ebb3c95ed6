/* Loopback rule, CURVE certificates and the ZAP handler (see security.h). */
#include "security.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

int is_loopback(const char *endpoint)
{
    const char *sep = strstr(endpoint, "://");
    if (sep == NULL)
        return 0;
    size_t scheme = (size_t)(sep - endpoint);
    if ((scheme == 3 && strncmp(endpoint, "ipc", 3) == 0)
        || (scheme == 6 && strncmp(endpoint, "inproc", 6) == 0))
        return 1;
    if (scheme != 3 || strncmp(endpoint, "tcp", 3) != 0)
        return 0;
    /* host = everything before the last ':' (Python: rest.rsplit(":", 1)[0]) */
    const char *rest = sep + 3;
    const char *colon = strrchr(rest, ':');
    size_t hlen = colon ? (size_t)(colon - rest) : strlen(rest);
    char host[256];
    if (hlen >= sizeof host)
        return 0;
    memcpy(host, rest, hlen);
    host[hlen] = '\0';
    static const char *const names[] = {"localhost", "127.0.0.1", "::1", "[::1]", "lo"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(host, names[i]) == 0)
            return 1;
    /* Python strips brackets and asks ipaddress whether it is a loopback address. */
    char *h = host;
    while (*h == '[' || *h == ']')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == '[' || h[n - 1] == ']'))
        h[--n] = '\0';
    unsigned char addr[16];
    if (inet_pton(AF_INET, h, addr) == 1)
        return addr[0] == 127;
    if (inet_pton(AF_INET6, h, addr) == 1) {
        static const unsigned char one[16] = {[15] = 1};
        return memcmp(addr, one, 16) == 0;
    }
    return 0; /* a hostname or interface name: could be anything */
}

/* zmq.auth.load_certificate: `name = "value"` lines, quotes and blanks stripped. */
static int cert_value(const char *line, const char *name, char *out)
{
    size_t n = strlen(name);
    if (strncmp(line, name, n) != 0)
        return 0;
    const char *eq = strchr(line, '=');
    if (eq == NULL)
        return 0;
    const char *v = eq + 1;
    while (*v == ' ' || *v == '\t' || *v == '"' || *v == '\'')
        v++;
    size_t len = strlen(v);
    while (len && strchr(" \t\r\n\"'", v[len - 1]))
        len--;
    if (len != 40)
        return -1;
    memcpy(out, v, 40);
    out[40] = '\0';
    return 1;
}

static int read_cert(const char *path, char *public_z85, char *secret_z85, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read CURVE certificate '%s': %s", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int bad = 0;
    while (fgets(line, sizeof line, f)) {
        char *l = line;
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l == '#')
            continue;
        if (public_z85 && cert_value(l, "public-key", public_z85) < 0)
            bad = 1;
        if (secret_z85 && cert_value(l, "secret-key", secret_z85) < 0)
            bad = 1;
    }
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "cannot read CURVE certificate '%s': a key is not 40 Z85 "
                 "characters", path);
        return -1;
    }
    return 0;
}

int curve_load(curve_keys *keys, const char *secret_file, const char *clients_dir, char *err,
               size_t errlen)
{
    memset(keys, 0, sizeof *keys);
    if (read_cert(secret_file, keys->public_z85, keys->secret_z85, err, errlen) < 0)
        return -1;
    unsigned char raw[32];
    if (!keys->secret_z85[0] || zmq_z85_decode(raw, keys->secret_z85) == NULL) {
        snprintf(err, errlen, "'%s' holds no secret key (use the .key_secret file)",
                 secret_file);
        return -1;
    }
    if (!keys->public_z85[0] || zmq_z85_decode(raw, keys->public_z85) == NULL) {
        snprintf(err, errlen, "cannot read CURVE certificate '%s': no public key",
                 secret_file);
        return -1;
    }
    if (clients_dir == NULL)
        return 0;
    struct stat st;
    DIR *d = stat(clients_dir, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(clients_dir) : NULL;
    if (d == NULL) {
        snprintf(err, errlen, "CURVE clients directory '%s' does not exist", clients_dir);
        return -1;
    }
    keys->restrict_clients = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".key") != 0)
            continue;
        char path[4096], pub[41] = "";
        snprintf(path, sizeof path, "%s/%s", clients_dir, e->d_name);
        if (read_cert(path, pub, NULL, err, errlen) < 0 || !pub[0])
            continue; /* zmq.auth skips what it cannot read, too */
        keys->allowed = realloc(keys->allowed, (keys->nallowed + 1) * sizeof *keys->allowed);
        if (keys->allowed == NULL)
            abort();
        if (zmq_z85_decode(keys->allowed[keys->nallowed], pub) != NULL)
            keys->nallowed++;
    }
    closedir(d);
    return 0;
}

int curve_apply(void *sock, const curve_keys *keys)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0
        || zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, keys->secret_z85, 40) < 0
        || zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, keys->public_z85, 40) < 0)
        return -1;
    return 0;
}

static int allowed(const curve_keys *keys, const zmq_msg_t *key)
{
    if (!keys->restrict_clients)
        return 1;
    if (zmq_msg_size((zmq_msg_t *)key) != 32)
        return 0;
    for (size_t i = 0; i < keys->nallowed; i++)
        if (memcmp(keys->allowed[i], zmq_msg_data((zmq_msg_t *)key), 32) == 0)
            return 1;
    return 0;
}

/* RFC 27: request [version, request_id, domain, address, identity, mechanism, creds...],
 * reply [version, request_id, status, text, user_id, metadata]. */
static void *zap_main(void *arg)
{
    zap_handler *zap = arg;
    for (;;) {
        zmq_msg_t parts[8];
        int n = 0, more = 1, failed = 0;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, zap->sock, 0) < 0) {
                zmq_msg_close(&m);
                failed = 1;
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 8)
                parts[n++] = m;
            else
                zmq_msg_close(&m);
        }
        if (failed) {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&parts[i]);
            if (errno == ETERM)
                break;
            continue;
        }
        int ok = n >= 7 && zmq_msg_size(&parts[5]) == 5
                 && memcmp(zmq_msg_data(&parts[5]), "CURVE", 5) == 0 && allowed(zap->keys,
                                                                                &parts[6]);
        zmq_send(zap->sock, "1.0", 3, ZMQ_SNDMORE);
        if (n >= 2)
            zmq_send(zap->sock, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), ZMQ_SNDMORE);
        else
            zmq_send(zap->sock, "", 0, ZMQ_SNDMORE);
        zmq_send(zap->sock, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(zap->sock, ok ? "OK" : "Unknown key", ok ? 2 : 11, ZMQ_SNDMORE);
        zmq_send(zap->sock, "", 0, ZMQ_SNDMORE);
        zmq_send(zap->sock, "", 0, 0);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
    }
    int zero = 0;
    zmq_setsockopt(zap->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(zap->sock);
    return NULL;
}

int zap_start(zap_handler *zap, void *ctx, const curve_keys *keys)
{
    zap->ctx = ctx;
    zap->keys = keys;
    zap->sock = zmq_socket(ctx, ZMQ_REP);
    if (zap->sock == NULL || zmq_bind(zap->sock, "inproc://zeromq.zap.01") < 0)
        return -1;
    if (pthread_create(&zap->thread, NULL, zap_main, zap) != 0)
        return -1;
    zap->running = 1;
    return 0;
}

void zap_join(zap_handler *zap)
{
    if (zap->running)
        pthread_join(zap->thread, NULL);
    zap->running = 0;
}
