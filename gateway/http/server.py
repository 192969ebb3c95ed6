"""Serving the front: gunicorn (gthread, CPU-pinned workers) in production, werkzeug for --dev.

::

    from gateway.http.server import GatewayApplication, build_app
    GatewayApplication(config, bind=["127.0.0.1:8080"], workers=2, threads=8).run()
    # or, for --dev only:
    serve_dev(config, "127.0.0.1", 8080)

Three things make gunicorn fit the front:

- ``post_fork`` pins each worker to its own CPU (``os.sched_setaffinity``):
  unpinned gthread workers sometimes all land on one core's keep-alive
  connections and fight over the GIL (DESIGN, "the gthread collapse").
- the request limits of :class:`~gateway.http.config.HttpLimits` become
  gunicorn's parser limits, so an oversized request line or header is
  refused while parsing (414, 431), before any app code runs;
- gunicorn's own error pages (400 for CL+TE, 414, 431, ...) are replaced by
  problem+json bodies with a request id, so every error has one shape.
- forwarded headers are never trusted by gunicorn itself
  (``forwarded_allow_ips = ""``); :mod:`gateway.http.forwarding` decides.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication

from gateway.http.app import BackendFactory, ProblemGuard, make_app
from gateway.http.config import GatewayHttpConfig
from gateway.http.openapi import build_openapi
from gateway.http.problems import gunicorn_error_page

log = logging.getLogger(__name__)


def build_app(config: GatewayHttpConfig) -> ProblemGuard:
    """The front with every backend its routes need (broker client made here, per process).

    With ``config.migration``, migrated routes and methods are wrapped
    (:mod:`gateway.migration.wiring`) and the admin API and dashboard are
    served under ``/_gateway/``.
    """
    factories: dict[str, BackendFactory] = {}
    migrations = admin = None
    if config.migration is not None:
        from gateway.migration.admin import AdminApi
        from gateway.migration.router import Migrations
        migrations = Migrations(config.migration)
        admin = AdminApi(migrations, config)
    if any(r.backend in ("wsgi", "rpc") for r in config.routes):
        from gateway.http.bridge import bridge_factories
        factories = bridge_factories(config, migrations=migrations)
    if migrations is not None:
        from gateway.migration.wiring import migrating_factories
        factories = migrating_factories(config, factories, migrations)
    return make_app(config, factories, build_openapi(config), admin=admin)


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


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook: pin the new worker to its own CPU."""
    cpu = pin_worker(int(worker.age))
    if cpu is not None:
        server.log.info("worker %s pinned to CPU %d", worker.pid, cpu)


def _problem_write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    page = gunicorn_error_page(status_int, reason, mesg or reason, uuid.uuid4().hex)
    gunicorn_util.write_nonblock(sock, page)


def install_problem_errors() -> None:
    """Make gunicorn's parser-level error answers problem+json (idempotent)."""
    gunicorn_util.write_error = _problem_write_error


def gunicorn_options(config: GatewayHttpConfig, bind: Sequence[str], workers: int = 2,
                     threads: int = 8, **extra: Any) -> dict[str, Any]:
    """The gunicorn settings for ``config``: gthread, limits, pinning, no forwarded trust."""
    limits = config.limits
    options: dict[str, Any] = {
        "bind": list(bind),
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "keepalive": 5,
        "timeout": max(30, int(limits.timeout) + 10),
        "graceful_timeout": 10,
        "limit_request_line": min(limits.max_uri, 8190),
        "limit_request_fields": min(limits.max_header_count, 32768),
        "limit_request_field_size": limits.max_header_line,
        "forwarded_allow_ips": "",
        "post_fork": post_fork,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
    }
    options.update(extra)
    return options


class GatewayApplication(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving :func:`build_app` of one config.

    The app (and with it every ZeroMQ socket and connection pool) is built
    in each worker after the fork, never in the master.
    """

    def __init__(self, config: GatewayHttpConfig, bind: Sequence[str], workers: int = 2,
                 threads: int = 8, **extra: Any) -> None:
        self.config = config
        self.options = gunicorn_options(config, bind, workers, threads, **extra)
        super().__init__()

    def load_config(self) -> None:
        """Copy :func:`gunicorn_options` into gunicorn's config."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> ProblemGuard:
        """Build the app inside the worker process."""
        install_problem_errors()
        return build_app(self.config)


def serve_dev(config: GatewayHttpConfig, host: str, port: int) -> None:
    """The werkzeug development server (``--dev`` only; no pinning, one process)."""
    from werkzeug.serving import run_simple
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(host, port, build_app(config), threaded=True, use_reloader=False)
