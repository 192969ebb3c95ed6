"""The HTTP front's own config (gateway.http.config.GatewayHttpConfig), built from ours::

    from gateway.commands.frontcfg import http_config
    http_config(cfg).routes          # what the front's router sees

Each route's backend says what its front route gets
(:func:`gateway.config.routes.front_route`); nothing here knows a backend.
"""

from __future__ import annotations

from gateway.config import FRONT_ONLY_HTTP_KEYS, GatewayConfig
from gateway.config.routes import front_route
from gateway.http.config import GatewayHttpConfig


def http_config(cfg: GatewayConfig) -> GatewayHttpConfig:
    """The HTTP front's own config (gateway.http.config.GatewayHttpConfig) from ours."""
    routes = tuple(front_route(r) for r in cfg.routes)
    # The access-log keys are the front's own (gateway.metrics), not gateway.http's.
    http = {k: v for k, v in cfg.http.items() if k not in FRONT_ONLY_HTTP_KEYS}
    return GatewayHttpConfig.from_dict(
        {"routes": routes, "broker": cfg.broker.endpoint, **http,
         "migration": cfg.migration_settings,
         "rpc_services": tuple(s.name for s in cfg.services if s.kind == "rpc")})
