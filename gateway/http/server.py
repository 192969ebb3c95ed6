"""Serving the front: uvicorn's C-parsed HTTP (llhttp, uvloop) in pinned worker processes.

::

    from gateway.http.server import FrontServer, build_app
    FrontServer(config, listen_socket(("127.0.0.1", 8080)), workers=2, threads=8).run()
    serve_dev(config, "127.0.0.1", 8080)          # werkzeug, --dev only

Why this server: HTTP is parsed in compiled code and the
Python front only routes, applies migration state and builds the envelope.
granian parses in Rust too, but it hands the application a percent-decoded
path (no raw request target, so ``/a%2Fb`` and ``/a/b`` look alike) and
answers malformed requests itself with plain-text pages; uvicorn keeps
``raw_path`` and lets the front answer every error as problem+json.

- :class:`FrontServer` is the master: it owns (or inherits) the listening
  socket, forks ``workers`` processes, pins each to its own CPU (unpinned, two
  busy workers on two cores can end up sharing one, and a run's throughput
  collapses to a fraction of its median), restarts one that dies, and on SIGTERM lets each finish
  its requests within ``grace`` seconds. With ``NOTIFY_SOCKET`` set it sends
  ``READY=1`` once its workers are forked and each worker ``WORKER_READY=1``
  once it accepts, so the arbiter routes to a new front only when it serves.
- :class:`ProblemProtocol` is uvicorn's httptools protocol with every
  parser-level refusal (CL+TE, bad chunking, a bad request line, a header
  block past the cap) answered as problem+json with a request id, and with
  what uvicorn lacks against slow clients: nginx's ``client_header_timeout``
  and ``client_body_timeout`` (408) and a cap on connections per client
  address (429).
- each worker builds its own app after the fork (ZeroMQ sockets, pools).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import math
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, cast

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.http.admission import Admission
from gateway.http.app import GatewayApp, ProblemGuard, make_app
from gateway.http.asgi import WsgiBridge
from gateway.http.backends import build_openapi
from gateway.http.config import GatewayHttpConfig
from gateway.http.disconnect import KEY as DISCONNECT
from gateway.http.disconnect import Disconnect
from gateway.http.fastpath import FastWsgi
from gateway.http.problems import Problem, error_page
from gateway.http.tracing import install_log_context

log = logging.getLogger(__name__)


def build_app(config: GatewayHttpConfig) -> ProblemGuard:
    """The WSGI front with every backend its routes need (broker client made here, per process).

    Routes and backends only; the composition root (:mod:`gateway.assemble`)
    adds the FATAL guards and migrations, and is what a :class:`FrontServer`
    is given as ``build`` to serve them.
    """
    return make_app(config, openapi=build_openapi(config))


def pin_worker(worker_age: int, cpus: Sequence[int] | None = None) -> int | None:
    """Pin the calling process to one CPU chosen round-robin by ``worker_age``."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    available = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    if len(available) < 2:
        return None
    cpu = available[(worker_age - 1) % len(available)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def notify(message: str) -> None:
    """Send one sd_notify datagram to ``$NOTIFY_SOCKET``, if set; never raises."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.sendto(message.encode("ascii"), path)
    except OSError:
        pass
    finally:
        sock.close()


# How long a draining front keeps an idle keep-alive connection open for one last request.
DRAIN_IDLE = 1.0


class ProblemProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; refusals are problem+json, slow clients are cut off.

    llhttp refuses what a strict intermediary must (Content-Length with
    Transfer-Encoding, bad chunk sizes, obs-fold, bare CR, control
    characters); its refusals become 400 problems. A request line or header
    block that grows past ``header_cap`` bytes is refused with 414 or 431
    before it is buffered whole.

    Slow clients (slowloris) hold a connection, never a thread, and not for
    long (the settings are :class:`gateway.http.config.HttpLimits`):

    - ``header_timeout``: from a connection's start, or from the first byte
      of a request head on a kept-alive connection, the whole head must
      arrive within it, else 408 and close (nginx ``client_header_timeout``);
    - ``body_timeout``: the longest gap between two reads of a request body,
      else 408 and close, or only close once the response has started (nginx
      ``client_body_timeout``). A gap while the front itself does not read
      (flow control, a request waiting for admission or ``100-continue``) is
      not the client's and does not count;
    - ``per_client``: the connections one client address may hold open in
      this worker process (0: any); one more is answered 429 on its first
      bytes and closed, without parsing it.

    The timers are armed only for heads and bodies that do not arrive in one
    read, so a request that comes whole costs no timer at all.
    """

    header_cap = 64 * 1024 + 8192
    uri_cap = 8192
    header_timeout = 10.0
    body_timeout = 30.0
    per_client = 0
    retry_after = 1
    # client address -> open connections in this worker process (each worker counts its own)
    clients: dict[str, int] = {}
    # Called with each refusal made here, the client's (host, port) and the request id
    # answered (gateway.metrics counts and logs them); None: neither.
    on_refusal: Any = None

    def _refuse(self, problem: Problem) -> None:
        """Answer ``problem`` and close: the request never reaches the app."""
        rid = uuid.uuid4().hex
        if self.on_refusal is not None:
            self.on_refusal(problem, self.client, rid)
        self.transport.write(error_page(problem, rid))
        self.transport.close()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._in_head = False
        self._in_body = False
        self._body_seen = 0.0
        self._body_timer: asyncio.TimerHandle | None = None
        self._counted: str | None = None
        self._refused = False
        host = self.client[0] if self.client else ""
        if self.per_client and host:
            held = self.clients.get(host, 0)
            if held >= self.per_client:
                self._refused = True
            else:
                self.clients[host] = held + 1
                self._counted = host
        # The first head is awaited from the connection's start: an idle connection counts.
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # The request being served hears of it by callback (gateway.http.disconnect).
            hook = self.cycle.scope["extensions"].get(DISCONNECT)
            if isinstance(hook, Disconnect):
                hook.fire()
        host = self._counted
        if host is not None:
            self._counted = None
            held = self.clients.get(host, 1) - 1
            if held > 0:
                self.clients[host] = held
            else:
                self.clients.pop(host, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._refuse_connection()
            return
        super().data_received(data)
        # Lazily: only a head or body left unfinished by this read needs a timer.
        if self._in_head and self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        if self._in_body and self._body_timer is None and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def _refuse_connection(self) -> None:
        """429 for a connection past the per-client cap, before anything is parsed."""
        self._refused = False
        problem = Problem(429, "too many connections from this client address",
                          code="too_many_connections",
                          headers=[("Retry-After", str(self.retry_after))])
        self._refuse(problem)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not (self._in_head or self.cycle is None):
            return
        busy = self.cycle is not None and not self.cycle.response_complete
        if busy or self.flow.read_paused:
            # A pipelined head waits on the front, not on the client: look again later.
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
            return
        problem = Problem(408, f"the request head did not arrive within "
                               f"{self.header_timeout:g} s", code="request_timeout")
        self._refuse(problem)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._in_body or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self._body_seen = now  # the front is not reading: the gap is not the client's
        gap = now - self._body_seen
        if gap < self.body_timeout:
            self._body_timer = self.loop.call_later(self.body_timeout - gap,
                                                    self._body_timed_out)
            return
        started = cycle is None or cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The app's next receive() sees a disconnect; anything it still sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if not started:
            problem = Problem(408, f"the request body stalled for {self.body_timeout:g} s",
                              code="request_timeout")
            self._refuse(problem)
            return
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._refusal: Problem | None = None
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.uri_cap:
            self._refusal = Problem(414, f"the request target exceeds {self.uri_cap} bytes",
                                    code="uri_too_long")
            raise ValueError("request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.header_cap:
            self._refusal = Problem(431, "too many or too large header fields",
                                    code="headers_too_large")
            raise ValueError("header block too large")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._in_body = True
        self._body_seen = self.loop.time()
        # The request target exactly as sent (a bare "?" and absolute-form included), for
        # the front's one strict reading of it (gateway.http.asgi, RAW_URI).
        scope: dict[str, Any] = self.scope  # type: ignore[assignment]
        scope["extensions"] = {"gateway.target": bytes(self.url), DISCONNECT: Disconnect()}
        super().on_headers_complete()
        if getattr(self, "_draining", False) and self.cycle is not None:
            self.cycle.keep_alive = False  # the last answer on this connection
        if scope.get("http_version") == "1.0" and self.cycle is not None:
            _close_delimited(self.cycle)

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def shutdown(self) -> None:
        """Graceful stop (the front drains): an idle keep-alive connection is not cut at once.

        uvicorn closes it on the spot, which resets a request the client sent a
        moment before (it sits unread in the socket). Here the connection answers
        whatever comes within ``DRAIN_IDLE`` seconds with ``Connection: close``,
        and is closed after that if nothing came; a busy one closes after its
        current answer, as uvicorn does.
        """
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            self.loop.call_later(DRAIN_IDLE, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if (self.cycle is None or self.cycle.response_complete) \
                and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer a parser-level refusal as problem+json and close the connection."""
        problem = getattr(self, "_refusal", None) or Problem(
            400, "the request is not valid HTTP/1.1 (RFC 9112)", code="bad_request")
        self._refuse(problem)


def _close_delimited(cycle: Any) -> None:
    """Frame an HTTP/1.0 response without Content-Length by closing the connection.

    uvicorn answers such a response with ``Transfer-Encoding: chunked``, which an
    HTTP/1.0 client cannot read (RFC 9112 6.1: a server MUST NOT send
    Transfer-Encoding unless the request is HTTP/1.1). The body is sent as it
    comes and the connection closes after it (uvicorn closes HTTP/1.0 connections).
    """
    send = cycle.send

    async def close_delimited_send(message: Any) -> None:
        if message["type"] == "http.response.start":
            names = {bytes(name).lower() for name, _ in message.get("headers", ())}
            if b"content-length" not in names and b"transfer-encoding" not in names:
                cycle.chunked_encoding = False
                cycle.expected_content_length = 1 << 62
        elif message["type"] == "http.response.body" and not message.get("more_body") \
                and cycle.chunked_encoding is False and cycle.expected_content_length >= 1 << 61:
            cycle.expected_content_length = len(message.get("body", b""))
        await send(message)

    cycle.send = close_delimited_send


class _Server(uvicorn.Server):
    """uvicorn's server, announcing its worker once it accepts."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        notify(f"WORKER_READY=1\nMAINPID={os.getppid()}")


def listen_socket(address: tuple[str, int] | str, backlog: int = 2048) -> socket.socket:
    """A listening TCP (``(host, port)``) or unix (path) socket, inheritable."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(address):
            os.unlink(address)
        sock.bind(address)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def socket_from_fd(fd: int) -> socket.socket:
    """The listening socket behind an inherited descriptor (arbiter, systemd, supervisord)."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(True)
    return sock


class FrontServer:
    """The front's master process: workers, pinning, restarts, graceful stop."""

    RESPAWN_DELAY = 0.5

    def __init__(self, config: GatewayHttpConfig, sock: socket.socket, workers: int = 2,
                 threads: int = 8, grace: float = 10.0, keepalive: int = 5,
                 wrap: Any = None, app_factory: Any = None,
                 build: Callable[[GatewayHttpConfig], ProblemGuard] = build_app) -> None:
        self.config = config
        # build(config) -> the WSGI front of one worker (gateway.assemble.build_front for
        # the supervised front: FATAL guards and migrations).
        self.build = build
        # app_factory() -> ASGI app: serve something other than the front (the
        # benchmarks' floors run on exactly this server that way).
        self.app_factory = app_factory
        self.sock = sock
        self.workers = max(1, workers)
        self.threads = max(1, threads)
        self.grace = grace
        self.keepalive = keepalive
        # wrap(wsgi_app) -> wsgi_app: middleware around the whole front.
        self.wrap = wrap
        self.children: dict[int, int] = {}   # pid -> worker number (1-based)
        self.stopping = False
        # gateway.metrics.config.ObservabilityConfig: metrics and access log (None: neither)
        self.observability: Any = None
        self.metrics_path = ""

    # -- the master ----------------------------------------------------------------------------

    def run(self) -> int:
        """Fork the workers and supervise them until SIGTERM/SIGINT; the exit code."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGQUIT, self._on_stop)
        obs = self.observability
        if obs is not None and obs.metrics:
            from gateway.metrics.multiproc import prepare_metrics_dir
            self.metrics_path = prepare_metrics_dir(obs.metrics_dir)
        try:
            return self.supervise()
        finally:
            if self.metrics_path:
                from gateway.metrics.multiproc import remove_metrics_dir
                remove_metrics_dir(self.metrics_path)

    def supervise(self) -> int:
        """Fork the workers, restart those that die, until stopped; the exit code."""
        for number in range(1, self.workers + 1):
            self.spawn(number)
        notify(f"READY=1\nMAINPID={os.getpid()}")
        deadline = 0.0
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                now = time.monotonic()
                if self.stopping:
                    if not deadline:
                        deadline = now + self.grace + 1.0
                    elif now > deadline:  # the workers' own grace is over: no more waiting
                        for child in list(self.children):
                            _kill(child, signal.SIGKILL)
                        deadline = now + 5.0
                time.sleep(0.05)
                continue
            number = self.children.pop(pid, 0)
            if self.metrics_path:
                from gateway.metrics.multiproc import process_dead
                process_dead(self.metrics_path, pid)
            if self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("front worker %d (pid %d) exited with %d; restarting", number, pid, code)
            time.sleep(self.RESPAWN_DELAY)
            if not self.stopping:
                self.spawn(number)
        return 0

    def _on_stop(self, signum: int, frame: Any) -> None:
        first = not self.stopping
        self.stopping = True
        sig = signal.SIGTERM if first and signum != signal.SIGQUIT else signal.SIGKILL
        for pid in list(self.children):
            _kill(pid, sig)

    def spawn(self, number: int) -> None:
        """Fork worker ``number``; the child never returns from here."""
        pid = os.fork()
        if pid:
            self.children[pid] = number
            return
        code = 1
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)
            code = self.serve_worker(number)
        except BaseException:
            log.exception("front worker %d failed", number)
        finally:
            os._exit(code)

    # -- one worker ----------------------------------------------------------------------------

    def asgi_app(self) -> Any:
        """The ASGI app of one worker: the WSGI front (behind ``wrap``) in a thread pool,
        with plain ``wsgi`` routes served on the event loop (:mod:`gateway.http.fastpath`)."""
        if self.app_factory is not None:
            return self.app_factory()
        guard = self.build(self.config)
        app: Any = guard if self.wrap is None else self.wrap(guard)
        fast = None
        gateway = cast(GatewayApp, guard.app)
        if self.config.broker and any(r.backend == "wsgi" for r in self.config.routes):
            # A route its guard refuses is left to the WSGI front, which answers the problem.
            fast = FastWsgi(gateway, self.config.broker, self.config.retry_after,
                            fatal=gateway.refuses if gateway.guards else None,
                            link=self.config.broker_link)
        admission = Admission(self.config.routes, self.config.retry_after)
        bridge = WsgiBridge(app, threads=self.threads, fast=fast, gateway=gateway,
                            admission=admission, chunked_cap=self.config.limits.max_body)
        obs = self.observability
        if obs is None or not obs.enabled:
            return bridge
        from gateway.metrics.observe import Observed
        observed = Observed(bridge, obs, self.config,
                            estate=getattr(self, "gateway_config", None))
        ProblemProtocol.on_refusal = observed.refused
        return observed

    def serve_worker(self, number: int) -> int:
        """Pin, build the app, serve the shared socket until told to stop."""
        install_log_context()  # the front's log lines name the request's ids
        cpu = pin_worker(number)
        if cpu is not None:
            log.info("front worker %d pinned to CPU %d", os.getpid(), cpu)
        limits = self.config.limits
        ProblemProtocol.header_cap = limits.max_header_total + limits.max_uri + 8192
        ProblemProtocol.uri_cap = max(limits.max_uri, 8190) + 16
        ProblemProtocol.header_timeout = limits.client_header_timeout
        ProblemProtocol.body_timeout = limits.client_body_timeout
        # The cap is the front's: each worker process counts its own connections and takes
        # an equal share of it, so one client holds at most about ``cap`` in all.
        cap = limits.max_connections_per_client
        ProblemProtocol.per_client = math.ceil(cap / self.workers) if cap else 0
        ProblemProtocol.retry_after = self.config.retry_after
        config = uvicorn.Config(
            self.asgi_app(), http=ProblemProtocol, loop="uvloop", lifespan="on",
            access_log=False, log_level="warning", timeout_keep_alive=self.keepalive,
            timeout_graceful_shutdown=max(1, int(self.grace)), proxy_headers=False,
            server_header=False, date_header=True)
        config.load()
        # Everything made so far (modules, the app, its routes) lives as long as the worker:
        # out of the collector's reach, a full collection no longer walks it, and the first
        # generation fills with the request path's short-lived objects only.
        gc.collect()
        gc.freeze()
        _Server(config).run(sockets=[self.sock])
        return 0


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def serve_dev(config: GatewayHttpConfig, host: str, port: int) -> None:
    """The werkzeug development server (``--dev`` only; no pinning, one process)."""
    from werkzeug.serving import run_simple
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(host, port, build_app(config), threaded=True, use_reloader=False)
