"""What a route backend declares to the config layer: its keys, their checks, its front.

::

    SPEC = RouteSpec("static", front="gateway.http.backends.static:FRONT",
                     load=load, to_file=to_file, validate=validate)

A :class:`RouteSpec` is plain data and validators, so :mod:`gateway.config`
(which sits below :mod:`gateway.http`) parses ``[[routes]]`` with it and
never imports the front. ``front`` names, as ``module:attribute``, the
object in the front that builds the backend and gives its OpenAPI paths;
:mod:`gateway.http.backends` imports it from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import ConfigError

# The [[routes]] keys every backend accepts; each backend declares its own beyond these.
COMMON_KEYS = ("prefix", "backend", "service", "target", "timeout_ms", "strip_prefix",
               "idle_timeout_ms", "max_concurrency", "queue_timeout_ms")


@dataclass(frozen=True)
class RouteContext:
    """What a backend's ``load`` sees besides its table: the parsed common keys and more.

    ``services`` maps the configured service names to their kind (``rpc``,
    ``wsgi``, ``command``); ``base_dir`` is the config file's directory.
    """

    service: str
    target: str
    strip_prefix: bool
    services: Mapping[str, str]
    base_dir: str


def _nothing(table: Mapping[str, Any], p: str, ctx: RouteContext) -> dict[str, Any]:
    return {}


def _accept(route: Any, where: str) -> None:
    """No checks beyond the common ones."""


def _refuse_nothing(table: Mapping[str, Any], p: str, strip_prefix: bool) -> None:
    """No keys of its own."""


def _write_nothing(route: Any) -> dict[str, Any]:
    """Nothing beyond the common keys."""
    return {}


@dataclass(frozen=True)
class RouteSpec:
    """One backend as the config layer sees it.

    ``keys``: the ``[[routes]]`` keys this backend reads beyond
    :data:`COMMON_KEYS`. ``load(table, "routes[i]", ctx)`` checks the table
    for this backend (errors name the key: ``routes[2].target: ...``) and
    returns the :class:`~gateway.config.routes.Route` fields it fills
    (``target`` as ``upstream``, its own keys); a value for a name that is
    not a Route field goes into ``Route.options``. ``to_file(route)`` is the
    inverse: the table's keys beyond the common ones.
    ``refuse(table, "routes[i]", strip_prefix)`` raises for this backend's
    own keys set on another backend's route. ``validate(route, where)``
    checks (and may normalise) a Route of this backend, however it was made.
    ``broker`` says it talks to the broker; ``front`` is ``module:attribute``
    of its front part (factory and OpenAPI paths).
    """

    name: str
    front: str
    keys: tuple[str, ...] = ()
    load: Callable[[Mapping[str, Any], str, RouteContext], dict[str, Any]] = _nothing
    refuse: Callable[[Mapping[str, Any], str, bool], None] = _refuse_nothing
    to_file: Callable[[Any], dict[str, Any]] = _write_nothing
    validate: Callable[[Any, str], None] = _accept
    broker: bool = False


def check_service_kind(ctx: RouteContext, p: str, backend: str) -> None:
    """A configured service behind an rpc or wsgi route must be of that kind."""
    kind = ctx.services.get(ctx.service)
    if kind is not None and kind != "command" and kind != backend:
        raise ConfigError(
            f"{p}.backend: service {ctx.service!r} is a {kind} service, not {backend}")
