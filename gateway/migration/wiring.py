"""Migrations as per-route wrappers: what the composition root puts around backends.

::

    migrations = Migrations(config.migration, broker=config.broker, health=states)
    methods = migrated_methods(migrations, parts.contracts, parts.client)  # rpc methods
    factories = migrating_factories(config, parts, migrations)           # http and wsgi routes
    app = make_app(config, factories, openapi, admin=AdminApi(migrations, config), parts=parts)

A migrated ``wsgi`` route gets four backends from its registered factory
(:mod:`gateway.http.backends`): the route's own service (py2), the port's
service (py3), and both again with ``shadow_timeout_ms`` as their timeout
for shadow copies. An ``http`` route does the same with the port's URL.
Routes without a migration are built as before. A migrated rpc method is
the call (:class:`~gateway.http.rpccall.RpcCall`) the root composes into the
rpc backends' caller instead of the plain broker call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.http.backends import REGISTRY, Parts
from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.rpccall import RpcCall
from gateway.http.wsgitypes import Backend, BackendFactory
from gateway.migration.lab import Migrations
from gateway.migration.rpc import MigratedMethod
from protocol.client import Client


def migrating_factories(config: GatewayHttpConfig, parts: Parts,
                        migrations: Migrations) -> dict[str, BackendFactory]:
    """Factories for the ``http`` and ``wsgi`` backends that wrap migrated routes."""
    by_prefix = {m.route: m for m in migrations.settings.migrations if m.kind == "route"}
    out: dict[str, BackendFactory] = {}

    def wrap(kind: str) -> BackendFactory:
        spec = REGISTRY[kind]

        def inner(route: Route) -> Backend:
            return spec.build(route, parts)

        def build(route: Route) -> Backend:
            m = by_prefix.get(route.prefix)
            if m is None:
                return inner(route)
            changes: dict[str, Any] = ({"service": m.py3} if kind == "wsgi"
                                       else {"upstream": m.py3})
            port = dataclasses.replace(route, **changes)
            cap = m.shadow_timeout_ms / 1000.0
            services = {"py2": route.service, "py3": m.py3} if kind == "wsgi" else {}
            return migrations.wrap_route(
                m, inner(route), inner(port), inner(dataclasses.replace(route, timeout=cap)),
                inner(dataclasses.replace(port, timeout=cap)), services)
        return build

    for kind in ("http", "wsgi"):
        out[kind] = wrap(kind)
    return out


def migrated_methods(migrations: Migrations, contracts: dict[str, Any],
                     client: Client) -> dict[tuple[str, str], RpcCall]:
    """(service, method) -> :class:`~gateway.migration.rpc.MigratedMethod` for rpc migrations."""
    out: dict[tuple[str, str], RpcCall] = {}
    for m in migrations.settings.migrations:
        if m.kind != "rpc":
            continue
        contract = contracts.get(m.rpc_service)
        safe = False
        if contract is not None:
            try:
                safe = bool(contract.is_shadow_safe(m.rpc_method))
            except Exception:
                safe = False
        out[(m.rpc_service, m.rpc_method)] = MigratedMethod(migrations, m, client, safe)
    return out
