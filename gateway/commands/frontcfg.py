"""The HTTP front's own config (gateway.http.config.GatewayHttpConfig), built from ours::

    from gateway.commands.frontcfg import http_config
    http_config(cfg).routes          # what the front's router sees
"""

from __future__ import annotations

from typing import Any

from gateway.config import FRONT_ONLY_HTTP_KEYS, GatewayConfig


def http_config(cfg: GatewayConfig) -> Any:
    """The HTTP front's own config (gateway.http.config.GatewayHttpConfig) from ours."""
    from gateway.http.config import GatewayHttpConfig

    routes = []
    for r in cfg.routes:
        route: dict[str, Any] = {"prefix": r.prefix, "backend": r.backend,
                                 "timeout": r.timeout_ms / 1000.0,
                                 "idle_timeout": r.idle_timeout_ms / 1000.0,
                                 "max_concurrency": r.max_concurrency,
                                 "queue_timeout": r.queue_timeout_ms / 1000.0}
        if r.backend == "http":
            route.update(upstream=r.target, strip_prefix=r.strip_prefix,
                         rewrite_redirects=r.rewrite_redirects,
                         rewrite_cookie_path=r.rewrite_cookie_path)
        elif r.backend == "static":
            route["directory"] = r.target
        elif r.backend == "redirect":
            route.update(target=r.target, status=r.status)
        elif r.backend in ("wsgi", "rpc"):
            # An rpc route with a service serves POST <prefix>/<method> of that one.
            route["service"] = r.service
        routes.append(route)
    # The access-log keys are the front's own (gateway.metrics), not gateway.http's.
    http = {k: v for k, v in cfg.http.items() if k not in FRONT_ONLY_HTTP_KEYS}
    return GatewayHttpConfig.from_dict(
        {"routes": routes, "broker": cfg.broker.endpoint, **http,
         "migration": cfg.migration_settings,
         "rpc_services": tuple(s.name for s in cfg.services if s.kind == "rpc")})
