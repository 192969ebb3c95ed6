/* gateway-broker: the compiled Majordomo broker (MDP/0.1, ZeroMQ RFC 7 and RFC 8, with
 * the extensions of protocol/SPEC.md section 2).
 *
 *   gateway-broker --bind tcp://127.0.0.1:5555 [--bind ipc://...] [--heartbeat-ms 1000]
 *       [--default-timeout-ms 30000] [--max-msg-size N] [--events-pub EP --events-sub EP]
 *       [--curve-secret FILE [--curve-clients DIR]] [--log-level LEVEL]
 *       [--startup-grace-ms 5000] [--max-deadline-ms 300000] [--max-queued 10000]
 *       [--max-queued-total 50000] [--max-queued-bytes N] [--max-queued-bytes-total N]
 *       [--outlier-consecutive 5] [--outlier-base-ejection-ms 30000]
 *       [--outlier-max-ejection-ms 300000] [--outlier-max-ejection-percent 50]
 *       [--outlier-count-errors] [--splits FILE] [--shadow-max-inflight 8]
 *       [--shadow-timeout-ms 2000] [--shadow-pub ENDPOINT] [--shadow-pub-hwm 1000]
 *
 * The same command line, behaviour and exit statuses as `python -m gateway.broker`
 * (the reference implementation): prints "broker ready <endpoints>" once bound;
 * SIGTERM/SIGINT exit 0; a refused bind, or a non-loopback bind without CURVE keys,
 * exits 2 with a message on stderr.
 *
 * Files, one concern each: mdbroker.c (command line, sockets), loop.c (the event loop),
 * handlers.c (what each message does, expiry, heartbeats, probes), wire.c (sends and
 * broker-made errors), registry.c (services, workers, requests), outlier.c (outlier
 * ejection), header.c (the header scanner), splits.c, shadow.c, copyhead.c and pairs.c
 * (splits, shadow copies, their headers and pairs: SPEC 2.14),
 * text.c (UTF-8 and JSON strings), security.c (loopback rule, CURVE, ZAP), events.c
 * (the event proxy).
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "broker.h"
#include "events.h"
#include "loop.h"
#include "security.h"
#include "text.h"

#define MAX_ENDPOINTS 64

int log_level = LOG_WARNING;
static volatile sig_atomic_t stopping;

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void logf_(int level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    static const char *names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"};
    char stamp[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s,%03ld gateway.broker %s ", stamp, ts.tv_nsec / 1000000,
            names[level / 10 - 1 < 0 ? 0 : level / 10 - 1 > 4 ? 4 : level / 10 - 1]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void count(broker *b, enum counter c, int64_t n)
{
    b->counters[c] += n;
    b->touched[c] = 1;
}

void drop(broker *b, enum drop d, const char *detail)
{
    static const char *const names[N_DROPS] = {"hwm", "late_reply", "malformed",
                                               "unknown_worker", "unroutable"};
    b->drops[d]++;
    logf_(LOG_WARNING, "drop (%s): %s [total %lld]", names[d], detail, (long long)b->drops[d]);
}

/* ------------------------------------------------------------- command line -- */

typedef struct {
    const char *binds[MAX_ENDPOINTS];
    int nbinds;
    /* --bind-local: bound before the CURVE keys are applied, so plain (SPEC 2.15). */
    const char *local_binds[MAX_ENDPOINTS];
    int nlocal, events_local;
    long long heartbeat_ms, default_timeout_ms, max_msg_size, startup_grace_ms;
    long long max_deadline_ms, max_queued, max_queued_total, max_queued_bytes,
        max_queued_bytes_total;
    long long outlier_consecutive, outlier_base_ejection_ms, outlier_max_ejection_ms,
        outlier_max_ejection_percent;
    int outlier_count_errors;
    long long shadow_max_inflight, shadow_timeout_ms, shadow_pub_hwm;
    const char *events_pub, *events_sub, *curve_secret, *curve_clients, *splits, *shadow_pub;
} options;

static void usage_error(const char *fmt, const char *arg)
{
    fputs("usage: gateway-broker --bind ENDPOINT [--bind ENDPOINT ...] [--heartbeat-ms MS]\n"
          "       [--bind-local ENDPOINT ...] [--events-local]\n"
          "       [--default-timeout-ms MS] [--max-msg-size BYTES] [--events-pub ENDPOINT]\n"
          "       [--events-sub ENDPOINT] [--curve-secret FILE] [--curve-clients DIR]\n"
          "       [--log-level LEVEL] [--startup-grace-ms MS] [--max-deadline-ms MS]\n"
          "       [--max-queued N] [--max-queued-total N] [--max-queued-bytes BYTES]\n"
          "       [--max-queued-bytes-total BYTES] [--outlier-consecutive N]\n"
          "       [--outlier-base-ejection-ms MS] [--outlier-max-ejection-ms MS]\n"
          "       [--outlier-max-ejection-percent N] [--outlier-count-errors] [--splits FILE]\n"
          "       [--shadow-max-inflight N] [--shadow-timeout-ms MS] [--shadow-pub ENDPOINT]\n"
          "       [--shadow-pub-hwm N]\n", stderr);
    fputs("gateway-broker: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

/* An integer option; beyond +-2^50 it is clamped, which means "never" for any time in
 * ms and keeps every sum with a clock reading far from overflow. */
static long long int_arg(const char *name, const char *value)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if ((errno && errno != ERANGE) || end == value || *end)
        usage_error("argument %s: invalid int value", name);
    const long long limit = 1LL << 50;
    return v > limit ? limit : v < -limit ? -limit : v;
}

static void parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 1000;
    o->default_timeout_ms = 30000;
    o->max_msg_size = 64LL * 1024 * 1024 + 4096;
    o->startup_grace_ms = 5000;
    /* The defaults of gateway/broker/broker.py BrokerConfig. */
    o->max_deadline_ms = 300000;
    o->max_queued = 10000;
    o->max_queued_total = 50000;
    o->max_queued_bytes = 128LL * 1024 * 1024;
    o->max_queued_bytes_total = 512LL * 1024 * 1024;
    /* The defaults of gateway/broker/outlier.py OutlierPolicy. */
    o->outlier_consecutive = 5;
    o->outlier_base_ejection_ms = 30000;
    o->outlier_max_ejection_ms = 300000;
    o->outlier_max_ejection_percent = 50;
    /* The defaults of BrokerConfig's shadow fields. */
    o->shadow_max_inflight = 8;
    o->shadow_timeout_ms = 2000;
    o->shadow_pub_hwm = 1000;
    for (int i = 1; i < argc; i++) {
        char *name = argv[i], *value = NULL;
        char *eq = strncmp(name, "--", 2) == 0 ? strchr(name, '=') : NULL;
        if (eq) { /* --name=value, as argparse allows */
            *eq = '\0';
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[i + 1];
        }
        int took = eq ? 0 : 1;
        if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
            puts("usage: gateway-broker --bind ENDPOINT [...] (see python -m gateway.broker -h)");
            exit(0);
        }
        if (strcmp(name, "--outlier-count-errors") == 0 && !eq) { /* a flag, as argparse's */
            o->outlier_count_errors = 1;
            continue;
        }
        if (strcmp(name, "--events-local") == 0 && !eq) {
            o->events_local = 1;
            continue;
        }
        if (value == NULL)
            usage_error("argument %s: expected one argument", name);
        if (strcmp(name, "--bind") == 0) {
            if (o->nbinds == MAX_ENDPOINTS)
                usage_error("too many %s endpoints", name);
            o->binds[o->nbinds++] = value;
        } else if (strcmp(name, "--bind-local") == 0) {
            if (o->nlocal == MAX_ENDPOINTS)
                usage_error("too many %s endpoints", name);
            o->local_binds[o->nlocal++] = value;
        } else if (strcmp(name, "--heartbeat-ms") == 0) {
            o->heartbeat_ms = int_arg(name, value);
        } else if (strcmp(name, "--default-timeout-ms") == 0) {
            o->default_timeout_ms = int_arg(name, value);
        } else if (strcmp(name, "--max-msg-size") == 0) {
            o->max_msg_size = int_arg(name, value);
        } else if (strcmp(name, "--startup-grace-ms") == 0) {
            o->startup_grace_ms = int_arg(name, value);
        } else if (strcmp(name, "--max-deadline-ms") == 0) {
            o->max_deadline_ms = int_arg(name, value);
        } else if (strcmp(name, "--max-queued") == 0) {
            o->max_queued = int_arg(name, value);
        } else if (strcmp(name, "--max-queued-total") == 0) {
            o->max_queued_total = int_arg(name, value);
        } else if (strcmp(name, "--max-queued-bytes") == 0) {
            o->max_queued_bytes = int_arg(name, value);
        } else if (strcmp(name, "--max-queued-bytes-total") == 0) {
            o->max_queued_bytes_total = int_arg(name, value);
        } else if (strcmp(name, "--outlier-consecutive") == 0) {
            o->outlier_consecutive = int_arg(name, value);
        } else if (strcmp(name, "--outlier-base-ejection-ms") == 0) {
            o->outlier_base_ejection_ms = int_arg(name, value);
        } else if (strcmp(name, "--outlier-max-ejection-ms") == 0) {
            o->outlier_max_ejection_ms = int_arg(name, value);
        } else if (strcmp(name, "--outlier-max-ejection-percent") == 0) {
            o->outlier_max_ejection_percent = int_arg(name, value);
        } else if (strcmp(name, "--events-pub") == 0) {
            o->events_pub = value;
        } else if (strcmp(name, "--events-sub") == 0) {
            o->events_sub = value;
        } else if (strcmp(name, "--curve-secret") == 0) {
            o->curve_secret = value;
        } else if (strcmp(name, "--splits") == 0) {
            o->splits = value;
        } else if (strcmp(name, "--shadow-max-inflight") == 0) {
            o->shadow_max_inflight = int_arg(name, value);
        } else if (strcmp(name, "--shadow-timeout-ms") == 0) {
            o->shadow_timeout_ms = int_arg(name, value);
        } else if (strcmp(name, "--shadow-pub-hwm") == 0) {
            o->shadow_pub_hwm = int_arg(name, value);
        } else if (strcmp(name, "--shadow-pub") == 0) {
            o->shadow_pub = value;
        } else if (strcmp(name, "--curve-clients") == 0) {
            o->curve_clients = value;
        } else if (strcmp(name, "--log-level") == 0) {
            static const char *const levels[] = {"DEBUG", "INFO", "WARNING", "ERROR",
                                                 "CRITICAL"};
            int found = 0;
            for (int k = 0; k < 5; k++)
                if (strcasecmp(value, levels[k]) == 0) {
                    log_level = (k + 1) * 10;
                    found = 1;
                }
            if (!found)
                usage_error("argument --log-level: unknown level %s", value);
        } else {
            usage_error("unrecognized arguments: %s", name);
        }
        i += took;
    }
    if (o->nbinds == 0 && o->nlocal == 0)
        usage_error("the following arguments are required: %s", "--bind");
    if (o->heartbeat_ms <= 0 || o->default_timeout_ms <= 0)
        usage_error("%s", "--heartbeat-ms and --default-timeout-ms must be positive");
    if (o->startup_grace_ms < 0)
        usage_error("%s", "--startup-grace-ms must not be negative");
    if (o->max_deadline_ms <= 0 || o->max_queued <= 0 || o->max_queued_total <= 0
        || o->max_queued_bytes <= 0 || o->max_queued_bytes_total <= 0)
        usage_error("%s", "--max-deadline-ms and the --max-queued* limits must be positive");
    if (o->outlier_consecutive < 0 || o->outlier_max_ejection_percent < 0
        || o->outlier_max_ejection_percent > 100)
        usage_error("%s", "--outlier-consecutive must not be negative and "
                    "--outlier-max-ejection-percent must be within 0..100");
    if (o->outlier_base_ejection_ms <= 0 || o->outlier_max_ejection_ms <= 0)
        usage_error("%s", "--outlier-base-ejection-ms and --outlier-max-ejection-ms must be "
                    "positive");
}

/* ------------------------------------------------------------------- signals -- */

static void on_signal(int signum)
{
    (void)signum;
    stopping = 1;
}

static void close0(void *sock)
{
    int zero = 0;
    if (sock) {
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(sock);
    }
}

int main(int argc, char **argv)
{
    options o;
    parse_args(argc, argv, &o);
    static curve_keys keys;
    int curve = 0;
    char err[600];
    if (o.curve_secret) {
        if (curve_load(&keys, o.curve_secret, o.curve_clients, err, sizeof err) < 0) {
            fprintf(stderr, "broker: %s\n", err);
            return 2;
        }
        curve = 1;
    }
    /* SPEC 2.10: loopback is open; anything else needs CURVE keys. */
    const char *all[MAX_ENDPOINTS + 2];
    int nall = 0;
    for (int i = 0; i < o.nbinds; i++)
        all[nall++] = o.binds[i];
    if (o.events_pub && o.events_sub) {
        all[nall++] = o.events_pub;
        all[nall++] = o.events_sub;
    }
    /* Plain endpoints (--bind-local, --events-local) must be loopback whatever the keys. */
    for (int i = 0; i < o.nlocal; i++)
        if (!is_loopback(o.local_binds[i])) {
            fprintf(stderr, "broker: refusing to bind %s: it is not a loopback address and "
                    "--bind-local endpoints have no CURVE\n", o.local_binds[i]);
            return 2;
        }
    for (int i = 0; i < nall; i++)
        if ((!curve || (o.events_local && i >= o.nbinds)) && !is_loopback(all[i])) {
            fprintf(stderr, "broker: refusing to bind %s: it is not a loopback address and "
                    "no CURVE keys are configured; pass a broker certificate (zmq.auth) or "
                    "bind 127.0.0.1 / ipc://\n", all[i]);
            return 2;
        }
    /* Pairs carry whole requests and answers in the clear, keys or not. */
    if (o.shadow_pub && !is_loopback(o.shadow_pub)) {
        fprintf(stderr, "broker: refusing to bind %s: shadow pairs are published on "
                "loopback or ipc:// only\n", o.shadow_pub);
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll(2) returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* SPEC 2.5: memory comes back after a burst. A fixed mmap threshold turns off glibc's
     * dynamic one, which after the first large frame is freed would serve every later
     * one from the arenas (where a straggler pins it); from 1 MiB up, a frame is its own
     * mapping and goes back to the kernel when it is freed. */
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    static broker b;
    registry_init(&b.reg);
    b.heartbeat_ms = o.heartbeat_ms;
    b.default_timeout_ms = o.default_timeout_ms;
    b.startup_grace_ms = o.startup_grace_ms;
    b.max_deadline_ms = o.max_deadline_ms;
    b.max_queued = o.max_queued;
    b.max_queued_total = o.max_queued_total;
    b.max_queued_bytes = o.max_queued_bytes;
    b.max_queued_bytes_total = o.max_queued_bytes_total;
    b.outlier_consecutive = o.outlier_consecutive;
    b.outlier_base_ejection_ms = o.outlier_base_ejection_ms;
    b.outlier_max_ejection_ms = o.outlier_max_ejection_ms;
    b.outlier_max_ejection_percent = o.outlier_max_ejection_percent;
    b.outlier_count_errors = o.outlier_count_errors;
    b.shadows.max_inflight = o.shadow_max_inflight;
    b.shadows.timeout_ms = o.shadow_timeout_ms;
    b.pairs.endpoint = o.shadow_pub;
    b.pairs.hwm = o.shadow_pub_hwm > INT_MAX ? INT_MAX : (int)o.shadow_pub_hwm;
    b.splits.shadows = &b.shadows;
    b.splits.path = o.splits;
    splits_reload(&b.splits);

    void *ctx = zmq_ctx_new();
    zap_handler zap = {0};
    event_proxy ev = {0};
    void *monitor = NULL;
    int status = 0;
    if (curve && zap_start(&zap, ctx, &keys) < 0) {
        fprintf(stderr, "broker: cannot start the ZAP handler: %s\n", zmq_strerror(errno));
        return 2;
    }
    b.sock = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hwm = 100000;
    int64_t maxmsg = o.max_msg_size;
    zmq_setsockopt(b.sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(b.sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(b.sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(b.sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(b.sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    sbuf ready = {0};
    sb_puts(&ready, "broker ready");
    /* libzmq copies the security options into each listener at bind time: the local
     * endpoints bound before curve_apply stay plain (NULL mechanism). */
    for (int i = 0; i < o.nlocal; i++) {
        if (zmq_bind(b.sock, o.local_binds[i]) < 0) {
            fprintf(stderr, "broker: cannot bind %s: %s\n", o.local_binds[i],
                    zmq_strerror(errno));
            sb_free(&ready);
            status = 2;
            goto out;
        }
        char last[1024];
        size_t len = sizeof last;
        zmq_getsockopt(b.sock, ZMQ_LAST_ENDPOINT, last, &len);
        sb_putc(&ready, ' ');
        sb_puts(&ready, last);
    }
    if (curve && curve_apply(b.sock, &keys) < 0) {
        fprintf(stderr, "broker: cannot use the CURVE keys: %s\n", zmq_strerror(errno));
        sb_free(&ready);
        status = 2;
        goto out;
    }
    for (int i = 0; i < o.nbinds; i++) {
        if (zmq_bind(b.sock, o.binds[i]) < 0) {
            fprintf(stderr, "broker: cannot bind %s: %s\n", o.binds[i], zmq_strerror(errno));
            sb_free(&ready);
            status = 2;
            goto out;
        }
        char last[1024];
        size_t len = sizeof last;
        zmq_getsockopt(b.sock, ZMQ_LAST_ENDPOINT, last, &len);
        sb_putc(&ready, ' ');
        sb_puts(&ready, last);
    }
    if (o.events_pub && o.events_sub
        && events_start(&ev, ctx, o.events_pub, o.events_sub,
                        curve && !o.events_local ? &keys : NULL, err,
                        sizeof err) < 0) {
        fprintf(stderr, "broker: %s\n", err);
        sb_free(&ready);
        status = 2;
        goto out;
    }
    if (pairs_open(&b.pairs, ctx) < 0) {
        fprintf(stderr, "broker: cannot bind %s: %s\n", o.shadow_pub, zmq_strerror(errno));
        sb_free(&ready);
        status = 2;
        goto out;
    }
    char monitor_ep[64];
    snprintf(monitor_ep, sizeof monitor_ep, "inproc://broker-monitor-%p", (void *)&b);
    if (zmq_socket_monitor(b.sock, monitor_ep, ZMQ_EVENT_DISCONNECTED) < 0) {
        fprintf(stderr, "broker: cannot monitor the socket: %s\n", zmq_strerror(errno));
        sb_free(&ready);
        status = 1;
        goto out;
    }
    monitor = zmq_socket(ctx, ZMQ_PAIR);
    zmq_setsockopt(monitor, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(monitor, monitor_ep);
    b.started_us = mono_us();
    logf_(LOG_INFO, "broker ready on %s", ready.p + strlen("broker ready "));
    puts(ready.p);
    fflush(stdout);
    sb_free(&ready);
    broker_run(&b, monitor, &stopping);
out:
    if (monitor) {
        zmq_socket_monitor(b.sock, NULL, 0);
        close0(monitor);
    }
    close0(b.sock);
    pairs_close(&b.pairs);
    events_stop(&ev);
    /* Ends the ZAP handler's blocking read with ETERM; then the context can go. */
    zmq_ctx_shutdown(ctx);
    zap_join(&zap);
    zmq_ctx_term(ctx);
    return status;
}
