"""The HTTP front: path routing, a correct reverse proxy, static files, problem+json errors.

::

    from gateway.http import GatewayHttpConfig, HttpLimits, Route, make_app
    config = GatewayHttpConfig(routes=(Route("/", "http", upstream="http://127.0.0.1:9000"),))
    app = make_app(config)                                    # WSGI
    FrontServer(config, listen_socket(("127.0.0.1", 8080))).run()  # uvicorn workers, pinned

Modules, one concern each: ``config`` (frozen settings), ``paths`` (strict
request-target reading), ``routing`` (longest prefix), ``forwarding``
(intermediary headers), ``bodies`` (bounded request bodies), ``problems``
(RFC 9457), ``proxy`` / ``static`` / ``bridge`` (backends: http, static,
wsgi and rpc over ZeroMQ), ``openapi``, ``app`` (the front) and ``server``
(the uvicorn-based front server and the dev server), ``asgi`` (the
ASGI side of the front: raw request target, WSGI bridge).
"""

from gateway.http.app import GatewayApp, ProblemGuard, make_app
from gateway.http.config import GatewayHttpConfig, HttpLimits, Route
from gateway.http.problems import Problem
from gateway.http.server import FrontServer, build_app, listen_socket, serve_dev

__all__ = [
    "FrontServer", "GatewayApp", "GatewayHttpConfig", "HttpLimits", "Problem",
    "ProblemGuard", "Route", "build_app", "listen_socket", "make_app", "serve_dev",
]
