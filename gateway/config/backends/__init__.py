"""Every route backend, by name: one module each, one line in :data:`REGISTRY`.

::

    from gateway.config.backends import REGISTRY, names
    REGISTRY["redirect"].load(table, "routes[2]", ctx)   # ConfigError: routes[2].target: ...
    names()                                               # ("rpc", "wsgi", "http", ...)

A backend module here declares a :class:`~gateway.config.backends.base.RouteSpec`:
its ``[[routes]]`` keys and their checks, what the front's route gets, and
(by ``module:attribute``) its front part, which builds it and gives its
OpenAPI paths. To add a backend: write its module (and its front part,
unless an existing one serves) and add its ``SPEC`` to the tuple below.
"""

from __future__ import annotations

from gateway.config.backends import http, redirect, rpc, static, wsgi
from gateway.config.backends.base import COMMON_KEYS, RouteContext, RouteSpec
from gateway.errors import ConfigError

REGISTRY: dict[str, RouteSpec] = {
    s.name: s for s in (rpc.SPEC, wsgi.SPEC, http.SPEC, static.SPEC, redirect.SPEC)}
# The built-in names, in the order error messages list them.
BACKENDS: tuple[str, ...] = tuple(REGISTRY)


def names() -> tuple[str, ...]:
    """Every backend name a route may use, built-in and registered."""
    return tuple(REGISTRY)


def register(spec: RouteSpec) -> None:
    """Add a backend that lives outside this package (a plugin's, a test's)."""
    if spec.name in REGISTRY:
        raise ConfigError(f"backend: {spec.name!r} is registered already")
    REGISTRY[spec.name] = spec


def unregister(name: str) -> None:
    """Remove a backend added with :func:`register`; the built-in ones stay."""
    if name in BACKENDS:
        raise ConfigError(f"backend: {name!r} is built in")
    REGISTRY.pop(name, None)


__all__ = ["BACKENDS", "COMMON_KEYS", "REGISTRY", "RouteContext", "RouteSpec", "names",
           "register", "unregister"]
