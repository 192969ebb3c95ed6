"""Every backend the front can mount, by name: the front parts of :mod:`gateway.config.backends`.

::

    from gateway.http.backends import REGISTRY, NAMES, spec
    backend = spec(route.backend).build(route, Parts(config))
    doc = build_openapi(config)         # /_gateway/openapi.json: every backend's paths

A backend is declared once, below the front, in :mod:`gateway.config.backends`
(its route keys, their checks, and the ``module:attribute`` of its front
part); this registry imports each front part from there, so it holds no
list of its own. A name whose front part cannot be imported fails here, at
import, not on a request.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.config.backends import BACKENDS
from gateway.config.backends import REGISTRY as ROUTE_SPECS
from gateway.errors import ConfigError
from gateway.http import openapi
from gateway.http.backends.base import BackendSpec, Parts
from gateway.http.config import GatewayHttpConfig
from protocol.contract import SPEC_DIR


def _front(name: str) -> BackendSpec:
    module, _, attr = ROUTE_SPECS[name].front.partition(":")
    front = getattr(importlib.import_module(module), attr)
    if not isinstance(front, BackendSpec):
        raise TypeError(f"backend {name!r}: {ROUTE_SPECS[name].front} is not a BackendSpec")
    return front


class _Registry(Mapping[str, BackendSpec]):
    """Name -> front part, for every backend :mod:`gateway.config.backends` knows now."""

    def __init__(self) -> None:
        self._built = {name: _front(name) for name in BACKENDS}

    def __getitem__(self, name: str) -> BackendSpec:
        if name in self._built:
            return self._built[name]
        if name not in ROUTE_SPECS:
            raise KeyError(name)
        # A backend registered after this import (a plugin's): its front part, imported now.
        return _front(name)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(ROUTE_SPECS))

    def __len__(self) -> int:
        return len(ROUTE_SPECS)


REGISTRY: Mapping[str, BackendSpec] = _Registry()
NAMES: tuple[str, ...] = BACKENDS


def spec(name: str) -> BackendSpec:
    """The front part of the backend called ``name``; ConfigError for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"backend: one of {tuple(ROUTE_SPECS)}, got {name!r}") from None


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
