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
- :class:`~gateway.http.parsing.ProblemProtocol` is uvicorn's httptools
  protocol with every parser-level refusal answered as problem+json, and
  nginx's limits against slow clients;
- the sockets, CPU pinning and sd_notify are in :mod:`gateway.http.sockets`;
- each worker builds its own app after the fork (ZeroMQ sockets, pools);
- an :class:`Observer` handed in (``observer``; the composition root's
  :func:`gateway.assemble.observer`) measures the front: the master tells it
  when it starts, stops and loses a worker, and each worker lets it wrap its app.
"""

from __future__ import annotations

import errno
import gc
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

import uvicorn

from gateway.http.admission import Admission
from gateway.http.app import GatewayApp, ProblemGuard, make_app
from gateway.http.asgi import WsgiBridge
from gateway.http.backends import build_openapi
from gateway.http.config import GatewayHttpConfig
from gateway.http.fastpath import FastWsgi
from gateway.http.onepass import OnePass
from gateway.http.parsing import DRAIN_IDLE, ProblemProtocol
from gateway.http.sockets import listen_socket, notify, pin_worker, socket_from_fd
from gateway.http.tracing import install_log_context

# Names that lived here before the parser and the sockets had modules of their own.
__all__ = ["DRAIN_IDLE", "FrontServer", "Observer", "ProblemProtocol", "build_app",
           "listen_socket", "notify", "pin_worker", "serve_dev", "socket_from_fd"]

log = logging.getLogger(__name__)


class Observer(Protocol):
    """Measures a front (metrics, access log); :func:`gateway.assemble.observer` makes one."""

    def master_started(self) -> None:
        """In the master, before it forks its workers."""

    def master_stopped(self) -> None:
        """In the master, after its last worker is gone."""

    def worker_exited(self, pid: int) -> None:
        """In the master, for each worker that exited."""

    def wrap(self, app: Any, config: GatewayHttpConfig) -> Any:
        """In each worker: the ASGI app that measures ``app`` (or ``app`` itself)."""


def build_app(config: GatewayHttpConfig) -> ProblemGuard:
    """The WSGI front with every backend its routes need (broker client made here, per process).

    Routes and backends only; the composition root (:mod:`gateway.assemble`)
    adds the FATAL guards and migrations, and is what a :class:`FrontServer`
    is given as ``build`` to serve them.
    """
    return make_app(config, openapi=build_openapi(config))


class _Server(uvicorn.Server):
    """uvicorn's server, announcing its worker once it accepts."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        notify(f"WORKER_READY=1\nMAINPID={os.getppid()}")



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
        # measures the front (metrics and access log); None: nothing is measured
        self.observer: Observer | None = None

    # -- the master ----------------------------------------------------------------------------

    def run(self) -> int:
        """Fork the workers and supervise them until SIGTERM/SIGINT; the exit code."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGQUIT, self._on_stop)
        if self.observer is not None:
            self.observer.master_started()
        try:
            return self.supervise()
        finally:
            if self.observer is not None:
                self.observer.master_stopped()

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
            if self.observer is not None:
                self.observer.worker_exited(pid)
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
        cap = self.config.limits.max_body
        onepass = OnePass(fast, gateway, admission, cap) if fast is not None else None
        bridge = WsgiBridge(app, threads=self.threads, fast=fast, gateway=gateway,
                            admission=admission, chunked_cap=cap, onepass=onepass)
        if self.observer is None:
            return bridge
        return self.observer.wrap(bridge, self.config)

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

