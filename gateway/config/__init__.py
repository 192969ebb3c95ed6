"""The gateway's configuration: one frozen dataclass tree, parsed from TOML.

This module owns the schema, its defaults and its validation. It never reads
files, argv or the environment; :mod:`gateway.cli` does and passes text in::

    from gateway.config import parse, DEFAULT_TOML
    cfg = parse(DEFAULT_TOML, base_dir="/srv/gw")          # GatewayConfig
    cfg.service("highlight").replicas                      # -> 2
    parse('[gateway]\\nworkers = 0\\n')                     # ConfigError:
    #   gateway.workers: must be >= 1

Relative paths resolve against the config file's directory (``base_dir``). The
arbiter hands its children the resolved config as JSON (``GatewayConfig.to_dict``,
with a top-level ``base_dir`` key that :func:`from_dict` honours).

Every error is a :class:`gateway.errors.ConfigError` whose message starts with
the dotted path of the offending key (``services.highlight.replicas: ...``).

Schema (every table and key is optional; shown with its default)::

    [gateway]
    listen = "127.0.0.1:8080"   # HTTP front: "HOST:PORT" or "unix:/path"; the arbiter
                                # owns this socket and hands it to the front as a descriptor
    workers = 2                 # front worker processes (uvicorn, each pinned to a CPU)
    threads = 8                 # threads per worker for the WSGI side of the front
    run_dir = "var/run"         # control socket, pid file, state file, ipc endpoints;
                                # relative paths are relative to the config file's dir
    log_format = "text"         # "text" (colour-prefixed, foreman style) or "json"
    stop_grace_s = 10.0         # SIGTERM -> SIGKILL grace for every process
    front = true                # run the HTTP front (false: supervise services only)
    role = "all"                # on several hosts: "gateway" (front + broker, no services)
                                # or "workers" (services only, on [broker] connect); see
                                # gateway.config.hosts and `gateway up --role`
    ready_timeout_s = 60.0      # a replica not ready this long after its start is killed
                                # (like systemd's TimeoutStartSec); a reload whose new
                                # replicas are not all ready by then is abandoned

    [runtimes]                  # interpreters that services pick with runtime = "<name>"
    py2 = ".venv2/bin/python"   # interpreter of runtime = "py2"
    py3 = ""                    # interpreter of runtime = "py3"; "" = the gateway's own
    # legacy = "/srv/legacy/venv/bin/python"   # any other name: a service's own virtualenv
                                # (the broker and the HTTP front always run on the
                                # gateway's own interpreter, whatever py3 says)

    [broker]
    enabled = true              # run the broker
    implementation = "native"   # "native": the compiled broker, build/gateway-broker
                                # (built by `make setup`); "python": python -m gateway.broker,
                                # the reference implementation; same options, same behaviour
    endpoint = ""               # "" = ipc://<run_dir>/broker.ipc; tcp:// must be loopback
                                # and needs allow_insecure_tcp (below)
    allow_insecure_tcp = false  # a tcp:// endpoint (broker or events) has no CURVE here, so
                                # any local user could register as a worker for any service
                                # and get its traffic; only with this set to true (the
                                # arbiter logs a warning) is loopback TCP accepted
    heartbeat_ms = 1000
    startup_grace_ms = 5000     # until up this long, a request for a service no worker has
                                # served waits for one; after it, unknown_service at once
    max_deadline_ms = 300000    # a request deadline further out counts as now + this
    max_queued = 10000          # waiting requests per service; beyond: too_busy (503)
    max_queued_total = 50000    # waiting requests over all services
    max_queued_bytes = 134217728        # body bytes waiting per service (128 MiB)
    max_queued_bytes_total = 536870912  # body bytes waiting over all services (512 MiB)
    outlier_consecutive = 5     # a worker that misses this many deadlines in a row gets no
                                # new requests for a while (ejected); 0 = never eject
    outlier_base_ejection_ms = 30000    # an ejection lasts this x times ejected so far
    outlier_max_ejection_ms = 300000    # ... but never longer than this
    outlier_max_ejection_percent = 50   # at most this share of a service's workers out at
                                # once (one of two or more always may be; never the last)
    outlier_count_errors = false        # an "internal" error reply is a failure too
    events_pub = ""             # XSUB side (publishers connect); "" = ipc in run_dir
    events_sub = ""             # XPUB side (subscribers connect); "" = ipc in run_dir
                                # Several hosts (README "Running on several hosts"):
    public_endpoint = ""        # gateway host: also bind this tcp:// for worker hosts,
                                # with CURVE (needs the two keys below); "" = none
    curve_secret_file = ""      # the broker's zmq.auth .key_secret (`gateway keys`)
    curve_clients_dir = ""      # public keys (.key) of the hosts allowed to connect
    connect = []                # worker host: the brokers services register with,
                                # every one of them; [] = this host's own broker
    curve_server_key = ""       # worker host: the brokers' public key (broker.key)
    curve_client_secret = ""    # worker host: its own .key_secret (its .key is in
                                # every gateway host's curve_clients_dir)

    [redis]
    url = ""                    # "" = a private redis-server on a unix socket in run_dir,
                                # started only when some service declares queues
    appendonly = true           # the private server keeps an append-only file in run_dir,
                                # so a crash (kill -9) of it loses no acknowledged job
                                # beyond what appendfsync allows; false = memory only
    appendfsync = "everysec"    # "everysec": fsync once a second, a crash of the machine
                                # can lose up to ~1 s of acknowledged writes; "always":
                                # fsync every write, loses none, costs throughput; "no":
                                # leave it to the kernel (~30 s on Linux). A kill -9 of
                                # redis-server alone (the machine stays up) loses nothing
                                # unless a slow disk made Redis postpone a write

    [http]                      # options of the HTTP front, checked by gateway.http:
                                # limits = {max_body = ..., timeout = ...}, trusted_proxies,
                                # via, preserve_host, contracts_dir, retry_after, pool_size
    # allowed_hosts = ["example.com", "*.example.com"]   # Host names the front answers
                                # (port ignored; "*." = any subdomain); others get 400
                                # host_not_allowed on every route and /_gateway/ (but
                                # /_gateway/health), against DNS rebinding; [] = any
    limits.client_header_timeout = 10.0   # s to send a whole request head: 408, close
    limits.client_body_timeout = 30.0     # s between two body reads: 408 (or close)
    limits.max_connections_per_client = 1024  # per client address, per front (0 = no cap);
                                # each of the N workers allows ceil(cap / N): 429, close
    access_log = ""             # "" = <run_dir>/logs/access.log, "-" = the front's stdout,
                                # "off", or a path (relative to the config file's dir)
    access_log_format = "combined"  # nginx combined + the gateway's fields, or "json"
    broker_link = "auto"        # wsgi fast path to the broker: "zmtp" (ZMTP from the event
                                # loop), "libzmq", or "auto" (zmtp for ipc/loopback tcp)

    [[routes]]                  # matched by longest prefix; each backend's own keys are
                                # declared in gateway/config/backends/<backend>.py
    prefix = "/api/highlight"
    backend = "rpc"             # "rpc" | "wsgi" (service over the broker),
                                # "http" (target = base URL), "static" (target = directory),
                                # "redirect" (target = new URL or path prefix)
    service = "highlight"       # rpc / wsgi: a [services.<name>] or any broker service;
                                # http: the supervised service behind target (optional),
                                # so the route answers 503 at once while it is FATAL
    target = ""                 # http: base URL; static: directory; redirect: where to
    status = 308                # redirect: 301, 302, 307 or 308
    timeout_ms = 10000          # wsgi / rpc: the deadline; for a streamed wsgi reply it
                                # bounds the wait for the response head only
    idle_timeout_ms = 60000     # wsgi: the longest gap between two parts of a streamed
                                # reply (as nginx's proxy_read_timeout)
    strip_prefix = false        # http: forward the path below the mount
    rewrite_redirects = false   # http (default: = strip_prefix): put the mount back into
                                # the upstream's Location, Content-Location and Refresh
                                # (an absolute path, or a URL at the upstream's origin or
                                # at the Host it was sent), like nginx proxy_redirect default
    rewrite_cookie_path = false # http (default: = strip_prefix): put the mount back into
                                # Set-Cookie Path, like nginx proxy_cookie_path
    max_concurrency = 0         # admission control (0 = none): requests in progress at
                                # once per front worker, per service behind the route
                                # (per route for http/static); beyond it a request waits
    queue_timeout_ms = 0        # ... this long for a slot, then 503 + Retry-After, before
                                # anything reaches the broker or the upstream

    [services.highlight]
    runtime = "py2"             # "py2" | "py3" | a [runtimes] name | "command"
    module = "py2_services.highlight:TABLE"   # py2/py3: hosted by protocol.worker
    app = ""                    # py2/py3: a WSGI app hosted by protocol.wsgi
    command = []                # runtime = "command": argv (list) or a shell-split string;
                                # "{fd}" and "{port}" expand to the service's socket
    replicas = 1
    ready = "broker"            # "broker" (mmi.service answers 200), "http:URL",
                                # "tcp:HOST:PORT", or "none"; default "broker" for
                                # module/app services, "none" for commands
    listen = ""                 # optional arbiter-owned socket passed to every replica
    queues = []                 # Redis queues it consumes (turns on the private redis)
    env = {}                    # extra environment; env.PYTHONPATH is put in front of
                                # what the gateway sets (the protocol library, the
                                # config's dir), it does not replace it
    cwd = ""                    # working directory ("" = the config file's dir)
    untyped = false             # rpc: no contract on purpose; /rpc passes its JSON as is
                                # and `gateway check` does not warn about it
    stop_grace_s = 0.0          # 0 = [gateway].stop_grace_s
    start_limit_burst = 5       # this many starts within start_limit_interval_s -> FATAL
    start_limit_interval_s = 10.0
    ready_timeout_s = 0.0       # 0 = [gateway].ready_timeout_s

    [metrics]
    enabled = true              # count requests; serve /_gateway/metrics (README)

    [tracing]
    otlp_endpoint = ""          # an OTLP/HTTP traces URL: one span per request (README)

    [migration]                 # the admin API and the migration store; and one
    [migrations.legacy]         # table per migrated route or RPC method: see
                                # gateway.config.sections.migration for every key

The package's modules: ``parse`` (:func:`parse`, :func:`from_dict`),
``schema`` (the dataclasses), ``values`` (the checks every section uses),
``routes`` and ``backends`` (``[[routes]]`` and the backend registry), and
``sections`` (``[migration]``, ``[metrics]``, ``[tracing]``). Nothing here
imports the HTTP front, the migration stores or the metrics machinery.
"""

from __future__ import annotations

from gateway.config.backends import BACKENDS
from gateway.config.parse import LIMITS, OUTLIER, from_dict, parse
from gateway.config.routes import Route
from gateway.config.schema import (
    DEFAULT_TOML,
    FRONT_ONLY_HTTP_KEYS,
    HTTP_KEYS,
    LOG_FORMATS,
    RESERVED,
    RUNTIMES,
    BrokerConfig,
    FrontConfig,
    GatewayConfig,
    RedisConfig,
    RuntimesConfig,
    ServiceConfig,
)
from gateway.config.values import parse_listen

__all__ = ["BACKENDS", "DEFAULT_TOML", "FRONT_ONLY_HTTP_KEYS", "HTTP_KEYS", "LIMITS",
           "LOG_FORMATS", "OUTLIER", "RESERVED", "RUNTIMES", "BrokerConfig", "FrontConfig",
           "GatewayConfig", "RedisConfig", "Route", "RuntimesConfig", "ServiceConfig",
           "from_dict", "parse", "parse_listen"]
