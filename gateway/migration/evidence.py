"""Evidence restarts: a reloaded py3 port of a migration in shadow starts a new epoch.

The comparisons gathered so far judged the old port; the gate must judge the
new one. This is ``gateway migrate shadow NAME`` done on the estate's behalf,
audited as actor ``gateway:reload``. The arbiter calls it once the old
replicas of the reloaded program have drained (so no answer of the old port
lands in the new epoch). In canary or py3 the evidence stays: restart it with
``gateway migrate shadow`` if wanted::

    restart_evidence(config, "notes3", log=print)
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config import GatewayConfig
from gateway.migration import stores
from gateway.migration.store import StoreError


def restart_evidence(config: GatewayConfig, service: str, log: Callable[[str], None]) -> None:
    """Start a new evidence epoch for each migration in shadow whose py3 side is ``service``.

    Never raises for a store problem: the reload is done either way, so the
    failure is logged and the old evidence stays.
    """
    settings = config.migration_settings
    names = [m.name for m in settings.migrations if m.py3 == service]
    if not names or not stores.exists(settings):
        return
    store: stores.Store | None = None
    try:
        store = stores.open_store(settings, config.gateway.run_dir)
        for name in names:
            state = store.get(name)
            if state.mode != "shadow":
                continue
            store.transition(name, "shadow", actor="gateway:reload",
                             reason=f"{service} reloaded: evidence restarts",
                             expect_version=state.version)
            log(f"migration {name}: {service} reloaded, evidence restarts")
    except (StoreError, KeyError) as exc:
        log(f"migrations: evidence not restarted after reloading {service}: {exc}")
    finally:
        if store is not None:
            store.close()
