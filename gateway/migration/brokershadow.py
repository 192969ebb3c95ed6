"""Which calls of a service migration the broker copies to the port (SPEC 2.14).

A service migration in ``shadow``, or in ``canary`` for the calls that stay on
the py2 service, makes the control plane write one ``shadow`` line into the
broker's split file next to the split line::

    tax tax3 0
    shadow tax tax3 quote,total sample=1 timeout_ms=5000 max_inflight=4

The copy really runs on the port, so only methods that may run twice are
listed, decided as RPC shadowing over ``/rpc`` decides
(:mod:`gateway.migration.rpc`): the contract's idempotent methods and its
``shadow_safe`` ones; ``shadow_safe = true`` in the migration lists ``*``
(every method), ``shadow_safe = false`` only the idempotent ones. A service
without a contract gets no line unless ``shadow_safe = true``.

The migration's ``sample``, ``shadow_timeout_ms`` and ``shadow_concurrency``
become the line's ``sample``, ``timeout_ms`` and ``max_inflight``: the broker
counts copies per service, so ``shadow_concurrency`` caps the copies out at once
across every caller, not per front process as for routes.

    methods = shadowable(settings.migrations, contracts_dir)   # {"tax": "quote,total"}
    shadow_line(cfg, methods["tax"])                           # the line, with "\\n"
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.errors import ConfigError
from gateway.http.openapi import load_contracts
from gateway.migration.config import MigrationConfig
from gateway.migration.model import MigrationState
from protocol.contract import SPEC_DIR

log = logging.getLogger(__name__)

SHADOWED_MODES = ("shadow", "canary")


def shadow_methods(m: MigrationConfig, contract: Any | None) -> str | None:
    """The METHODS word of ``m``'s shadow line, or None when no method may be copied."""
    if m.shadow_safe is True:
        return "*"
    if contract is None:
        return None
    names = [n for n in contract.method_names() if contract.is_idempotent(n)
             or (m.shadow_safe is None and contract.is_shadow_safe(n))]
    # A name the file's words cannot carry is never copied (contracts allow any text).
    names = [n for n in names if n and not any(c.isspace() or c in ",#" for c in n)]
    return ",".join(names) or None


def shadowable(migrations: Iterable[MigrationConfig], contracts_dir: str) -> dict[str, str]:
    """{service: METHODS} for the service migrations whose calls may be copied."""
    services = [m for m in migrations if m.kind == "service"]
    if not services:
        return {}
    try:
        contracts = load_contracts(contracts_dir or SPEC_DIR)
    except ConfigError as exc:
        log.warning("service migrations: contracts unreadable (%s); only migrations with "
                    "shadow_safe = true are shadowed", exc)
        contracts = {}
    out: dict[str, str] = {}
    for m in services:
        methods = shadow_methods(m, contracts.get(m.service))
        if methods is None:
            log.warning("migrations.%s: no contract of %r marks a method idempotent or "
                        "shadow_safe, so the broker copies none of its calls; set "
                        "shadow_safe = true to copy every call", m.name, m.service)
            continue
        out[m.service] = methods
    return out


def sample_text(sample: float) -> str:
    """``0.25`` as ``"0.25"``: at most four places, as the broker reads it."""
    text = f"{round(sample * 10000) / 10000:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def shadow_line(m: MigrationConfig, methods: str) -> str:
    """The split-file line that copies ``m``'s calls to its port."""
    return (f"shadow {m.service} {m.py3} {methods} sample={sample_text(m.sample)} "
            f"timeout_ms={m.shadow_timeout_ms} max_inflight={m.shadow_concurrency}\n")


def shadow_lines(migrations: Iterable[MigrationConfig], states: Mapping[str, MigrationState],
                 methods: Mapping[str, str]) -> list[str]:
    """The shadow lines the states ask for, sorted by service."""
    return [shadow_line(m, methods[m.service])
            for m in sorted(migrations, key=lambda m: m.service)
            if m.kind == "service" and m.name in states and m.service in methods
            and states[m.name].mode in SHADOWED_MODES]
