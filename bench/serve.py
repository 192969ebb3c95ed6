"""Serve any WSGI or ASGI app on the gateway's own front server (benchmark floors only).

::

    python -m bench.serve --port 8000 [--asgi] [--workers 2] bench.floors:bare_proxy

The app runs exactly where the front runs: uvicorn's C parser in pinned worker
processes (:class:`gateway.http.server.FrontServer`); a WSGI app goes through
the same thread-pool bridge as the WSGI side of the front.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from gateway.http.asgi import WsgiBridge
from gateway.http.config import GatewayHttpConfig
from gateway.http.server import FrontServer, listen_socket


def load(spec: str) -> Any:
    """``module:name`` -> the object."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> int:
    """Serve the app until SIGTERM."""
    p = argparse.ArgumentParser(prog="python -m bench.serve")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--asgi", action="store_true", help="the app is ASGI (else WSGI)")
    p.add_argument("app")
    args = p.parse_args(argv)

    def factory() -> Any:
        app = load(args.app)
        return app if args.asgi else WsgiBridge(app, threads=args.threads)

    sock = listen_socket(("127.0.0.1", args.port))
    return FrontServer(GatewayHttpConfig(), sock, workers=args.workers,
                       app_factory=factory).run()


if __name__ == "__main__":
    sys.exit(main())
