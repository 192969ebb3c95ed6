"""Plugging migrations into the HTTP front's backend factories.

::

    migrations = Migrations(config.migration, broker=config.broker)   # per front process
    factories = bridge_factories(config, migrations=migrations)   # rpc: migrated_methods(...)
    factories = migrating_factories(config, factories, migrations)
    app = make_app(config, factories, openapi, admin=AdminApi(migrations, config))

A migrated ``wsgi`` route gets four backends from the same factory: the
route's own service (py2), the port's service (py3), and both again with
``shadow_timeout_ms`` as their timeout for shadow copies. An ``http`` route
does the same with the port's URL. Routes without a migration are built as
before.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from gateway.http.config import GatewayHttpConfig, Route
from gateway.http.forwarding import Forwarding
from gateway.http.proxy import HttpBackend
from gateway.migration.router import Migrations

if TYPE_CHECKING:
    from gateway.http.app import Backend, BackendFactory


def migrating_factories(config: GatewayHttpConfig, factories: dict[str, BackendFactory],
                        migrations: Migrations) -> dict[str, BackendFactory]:
    """``factories`` (plus ``http``) with migrated routes wrapped; others unchanged."""
    forwarding = Forwarding(config.trusted_proxies, config.via, config.preserve_host)
    base: dict[str, BackendFactory] = {
        "http": lambda r: HttpBackend(r, config.limits, forwarding, config.pool_size),
        **factories}
    by_prefix = {m.route: m for m in migrations.settings.migrations if m.kind == "route"}
    out = dict(factories)

    def wrap(kind: str) -> BackendFactory:
        inner = base[kind]

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
        if kind in base:
            out[kind] = wrap(kind)
    return out


def migrated_methods(migrations: Migrations, contracts: dict[str, Any]) -> dict[tuple[str, str],
                                                                                Any]:
    """(service, method) -> :class:`~gateway.migration.rpc.MigratedMethod` for rpc migrations."""
    from gateway.migration.rpc import MigratedMethod
    out: dict[tuple[str, str], Any] = {}
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
        out[(m.rpc_service, m.rpc_method)] = MigratedMethod(migrations, m, safe)
    return out
