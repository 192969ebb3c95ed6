"""Every backend the front can mount, by name: one module each, one registry line each.

::

    from gateway.http.backends import REGISTRY, NAMES, spec
    spec("redirect").validate(route, "http.routes['/old']")
    backend = spec(route.backend).build(route, Parts(config))
    doc = build_openapi(config)         # /_gateway/openapi.json: every backend's paths

A backend module declares a :class:`~gateway.http.backends.base.BackendSpec`:
its route keys, their validation, its factory and its OpenAPI paths. To add
a backend, write its module, add it to the tuple below and its name to
:data:`gateway.config.BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config import BACKENDS
from gateway.errors import ConfigError
from gateway.http import openapi
from gateway.http.backends import http, redirect, rpc, static, wsgi
from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.config import BACKEND_CHECKS, GatewayHttpConfig
from protocol.contract import SPEC_DIR

REGISTRY: dict[str, BackendSpec] = {
    s.name: s for s in (http.SPEC, wsgi.SPEC, rpc.SPEC, static.SPEC, redirect.SPEC)}
# The names are gateway.config's (it parses [[routes]] below this layer); a name without
# a module here, or a module without a name there, fails at import, not on a request.
if sorted(REGISTRY) != sorted(BACKENDS):
    raise ImportError(f"backend modules {sorted(REGISTRY)} != gateway.config.BACKENDS")
NAMES: tuple[str, ...] = BACKENDS
BACKEND_CHECKS.update({name: (s.validate, s.broker) for name, s in REGISTRY.items()})


def spec(name: str) -> BackendSpec:
    """The backend called ``name``; ConfigError for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"backend: one of {NAMES}, got {name!r}") from None


def build_openapi(config: GatewayHttpConfig,
                  contracts: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``config``: each route's backend contributes its paths."""
    if contracts is None:
        loaded = openapi.load_contracts(config.contracts_dir or SPEC_DIR)
        contracts = {name: c.data for name, c in loaded.items()}
    paths: dict[str, Any] = {}
    for route in config.routes:
        paths.update(REGISTRY[route.backend].openapi(route, contracts))
    return {
        "openapi": "3.1.0",
        "info": {"title": "gateway rpc", "version": "1"},
        "paths": paths,
    }


__all__ = ["NAMES", "REGISTRY", "BackendSpec", "Parts", "build_openapi", "spec"]
