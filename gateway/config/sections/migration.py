"""Migration settings: the ``[migration]`` table and one ``[migrations.<name>]`` per migration.

Nothing here reads files or imports a store; :mod:`gateway.config` hands the TOML
tables in (:mod:`gateway.migration.config` re-exports these names)::

    settings = parse_settings(toml["migration"], toml["migrations"], run_dir="/srv/gw/var/run")
    m = settings.get("legacy")            # MigrationConfig
    m.kind, m.target, m.py3               # ("route", "/", "legacy3")

Schema (every key optional except a migration's target and ``py3``)::

    [migration]
    db = ""                     # SQLite file of states, audit and evidence ("" = run_dir)
    token_file = ""             # the admin API token ("" = <run_dir>/admin.token, made 0600)
    allow_remote_admin = false  # the admin API answers loopback clients only unless true
    parity_file = "build/parity.json"   # the contract suite's py2/py3 parity table
    store = "sqlite"            # "sqlite" (db above, one machine) or "redis": states, audit
                                # and evidence shared by several gateways
    redis_url = ""              # with store = "redis" ("" = the [redis] url, which must then
                                # name an external Redis all the gateways share)
    redis_prefix = "gw:mig:"    # the store's Redis keys start with this

    [migrations.legacy]
    route = "/"                 # a wsgi or http route: its service (or target) is the py2 side
    # rpc = "htmldiff/diff"     # or one RPC method behind the rpc routes: SERVICE/METHOD
    # service = "tax"           # or every call of a broker service, from the gateway or
                                # from other services: the broker splits them (canary)
    py3 = "legacy3"             # the port: a broker service (wsgi, rpc) or a URL (http)
    state = "py2"               # the state a new migration starts in
    percent = 0                 # with state = "canary"
    sample = 1.0                # share of eligible requests that are shadowed
    noise = true                # on a difference, ask the primary again to learn noise (Diffy)
    shadow_safe = false         # also shadow unsafe HTTP methods (copies carry X-Shadow: 1);
                                # rpc: default from the contract's shadow_safe
    shadow_timeout_ms = 5000    # time cap of one shadow copy
    shadow_concurrency = 4      # copies in flight per front process; more are skipped
    capture_bytes = 1048576     # request and response bytes kept for comparison
    ignore_headers = []         # extra response headers never compared
    ignore_pointers = []        # JSON pointers never compared ("/generated_at", "/items/*/id")
    sticky = "cookie"           # canary bucket: "cookie" (the gateway's gw_canary cookie),
                                # "cookie:NAME", "header:NAME" or "addr" (client address)
    min_samples = 50            # promote gate: comparisons since shadow started ...
    max_diff_rate = 0.01        # ... and regressions / comparisons at most this
    error_budget = 0.05         # canary / py3: py3 error rate that rolls back at once ...
    min_error_samples = 20      # ... once py3 answered this many requests ...
    window_s = 300.0            # ... within this window (also the report's window)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ConfigError

# A migration's states (gateway.migration.model draws their legal moves).
MODES = ("py2", "shadow", "canary", "py3", "retired")

ROUTE_KEYS = {"route", "rpc", "service", "py3", "state", "percent", "sample", "noise",
              "shadow_safe", "shadow_timeout_ms", "shadow_concurrency", "capture_bytes",
              "ignore_headers", "ignore_pointers", "sticky", "min_samples", "max_diff_rate",
              "error_budget", "min_error_samples", "window_s"}


@dataclass(frozen=True)
class Thresholds:
    """What the promote gate and the error budget demand (gateway.migration.gates)."""

    min_samples: int = 50
    max_diff_rate: float = 0.01
    error_budget: float = 0.05
    min_error_samples: int = 20
    window_s: float = 300.0


@dataclass(frozen=True)
class MigrationConfig:
    """One ``[migrations.<name>]`` table (see the module docstring for each key)."""

    name: str
    py3: str
    route: str = ""
    rpc: str = ""
    service: str = ""
    state: str = "py2"
    percent: int = 0
    sample: float = 1.0
    noise: bool = True
    shadow_safe: bool | None = None
    shadow_timeout_ms: int = 5000
    shadow_concurrency: int = 4
    capture_bytes: int = 1 << 20
    ignore_headers: tuple[str, ...] = ()
    ignore_pointers: tuple[str, ...] = ()
    sticky: str = "cookie"
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def kind(self) -> str:
        """``"route"``, ``"rpc"`` or ``"service"`` (split inside the broker)."""
        return "route" if self.route else "rpc" if self.rpc else "service"

    @property
    def target(self) -> str:
        """The route prefix, ``SERVICE/METHOD`` or the broker service."""
        return self.route or self.rpc or self.service

    @property
    def rpc_service(self) -> str:
        """The py2 side's broker service of an rpc migration."""
        return self.rpc.partition("/")[0]

    @property
    def rpc_method(self) -> str:
        """The migrated method of an rpc migration."""
        return self.rpc.partition("/")[2]

    def to_json(self) -> dict[str, Any]:
        """The identifying fields, as the admin API shows them."""
        return {"name": self.name, "kind": self.kind, "target": self.target, "py3": self.py3}


@dataclass(frozen=True)
class MigrationSettings:
    """``[migration]`` plus every migration; what the HTTP front and the CLI need."""

    db: str
    token_file: str
    parity_file: str = ""
    allow_remote_admin: bool = False
    state_file: str = ""
    migrations: tuple[MigrationConfig, ...] = ()
    # The broker's split file of service migrations (gateway.migration.brokersplits).
    splits_file: str = ""
    # Where the broker publishes shadow pairs for the comparer (gateway.migration.comparer).
    pairs_endpoint: str = ""
    store: str = "sqlite"
    redis_url: str = ""
    redis_prefix: str = "gw:mig:"

    def get(self, name: str) -> MigrationConfig:
        """The migration called ``name``; ``KeyError`` if there is none."""
        for m in self.migrations:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain values :func:`from_dict` turns back into equal settings."""
        import dataclasses
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MigrationSettings:
        """The inverse of :meth:`to_dict`."""
        values = dict(data)
        migrations = []
        for m in values.pop("migrations", ()):
            m = dict(m)
            m["thresholds"] = Thresholds(**m.get("thresholds", {}))
            m["ignore_headers"] = tuple(m.get("ignore_headers", ()))
            m["ignore_pointers"] = tuple(m.get("ignore_pointers", ()))
            migrations.append(MigrationConfig(**m))
        return cls(migrations=tuple(migrations), **values)


def parse_settings(table: Mapping[str, Any], migrations: Mapping[str, Any], run_dir: str,
                   base_dir: str = "", state_file: str = "",
                   redis_url: str = "") -> MigrationSettings:
    """Validate ``[migration]`` and ``[migrations.*]``; errors name the offending key.

    ``redis_url`` is ``[redis] url``, the default of ``migration.redis_url``.
    """
    if not isinstance(table, Mapping):
        raise ConfigError("migration: must be a table")
    if not isinstance(migrations, Mapping):
        raise ConfigError("migrations: must be a table of tables ([migrations.NAME])")
    for key in table:
        if key not in ("db", "token_file", "allow_remote_admin", "parity_file", "store",
                       "redis_url", "redis_prefix"):
            raise ConfigError(f"migration.{key}: unknown key")
    base = base_dir or os.getcwd()

    def path(key: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"migration.{key}: must be a string")
        value = value or default
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(base, value))

    allow = table.get("allow_remote_admin", False)
    if not isinstance(allow, bool):
        raise ConfigError("migration.allow_remote_admin: must be true or false")
    store, url, prefix = _store(table, redis_url)
    parsed = tuple(_migration(name, t) for name, t in sorted(migrations.items()))
    targets: dict[str, str] = {}
    for m in parsed:
        if m.target in targets:
            raise ConfigError(f"migrations.{m.name}: {m.kind} {m.target!r} is already "
                              f"migrated by migrations.{targets[m.target]}")
        targets[m.target] = m.name
    return MigrationSettings(
        db=path("db", os.path.join(run_dir, "migrations.sqlite3")),
        token_file=path("token_file", os.path.join(run_dir, "admin.token")),
        parity_file=path("parity_file", "build/parity.json"),
        allow_remote_admin=allow, state_file=state_file, migrations=parsed,
        splits_file=os.path.join(run_dir, "broker-splits"),
        pairs_endpoint="ipc://" + os.path.join(run_dir, "shadow-pairs.ipc"), store=store,
        redis_url=url, redis_prefix=prefix)


def _store(table: Mapping[str, Any], default_url: str) -> tuple[str, str, str]:
    """``(store, redis_url, redis_prefix)`` of ``[migration]``, checked."""
    for key in ("store", "redis_url", "redis_prefix"):
        if not isinstance(table.get(key, ""), str):
            raise ConfigError(f"migration.{key}: must be a string")
    store = table.get("store", "sqlite") or "sqlite"
    if store not in ("sqlite", "redis"):
        raise ConfigError('migration.store: must be "sqlite" or "redis"')
    prefix = table.get("redis_prefix", "gw:mig:")
    if not prefix or any(c.isspace() for c in prefix):
        raise ConfigError("migration.redis_prefix: must be a non-empty string without spaces")
    if store == "sqlite":
        return store, "", prefix
    url = table.get("redis_url", "") or default_url
    if not url:
        # The private redis-server lives in one gateway's run dir: no other gateway sees it.
        raise ConfigError('migration.redis_url: store = "redis" needs a Redis that every '
                          "gateway shares: set migration.redis_url or [redis] url")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"migration.redis_url: expected redis://, rediss:// or unix://, "
                          f"got {url!r}")
    return store, url, prefix


def _migration(name: str, t: Any) -> MigrationConfig:
    p = f"migrations.{name}"
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"{p}: migration names use letters, digits, '-', '_', '.'")
    if not isinstance(t, Mapping):
        raise ConfigError(f"{p}: must be a table")
    for key in t:
        if key not in ROUTE_KEYS:
            raise ConfigError(f"{p}.{key}: unknown key")

    def get(key: str, kinds: type | tuple[type, ...], default: Any, what: str) -> Any:
        value = t.get(key, default)
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple)
                                                    else (kinds,)):
            raise ConfigError(f"{p}.{key}: must be {what}")
        if value is not None and not isinstance(value, kinds):
            raise ConfigError(f"{p}.{key}: must be {what}")
        return value

    route = get("route", str, "", "a route prefix")
    rpc = get("rpc", str, "", "SERVICE/METHOD")
    service = get("service", str, "", "a broker service name")
    if [bool(route), bool(rpc), bool(service)].count(True) != 1:
        raise ConfigError(f"{p}.route: give exactly one of route (a prefix), rpc "
                          "(SERVICE/METHOD) or service (a broker service)")
    if route and not route.startswith("/"):
        raise ConfigError(f"{p}.route: must be a route prefix starting with '/'")
    if rpc and (rpc.count("/") != 1 or not all(rpc.split("/"))):
        raise ConfigError(f"{p}.rpc: expected SERVICE/METHOD, got {rpc!r}")
    py3 = get("py3", str, "", "a service name or URL")
    if not py3:
        raise ConfigError(f"{p}.py3: required: the port's broker service (or URL for an "
                          "http route)")
    if service:
        # Both names go into the broker's split file, one line of words (SPEC 2.14).
        for key, word in (("service", service), ("py3", py3)):
            if any(c.isspace() or c == "#" for c in word) or word.startswith("mmi."):
                raise ConfigError(f"{p}.{key}: a broker service name without spaces or '#' "
                                  "that does not start with 'mmi.'")
        if service == py3:
            raise ConfigError(f"{p}.py3: the port must be another service than {service!r}")
    state = get("state", str, "py2", "a state")
    if state not in MODES:
        raise ConfigError(f"{p}.state: must be one of {', '.join(MODES)}")
    percent = get("percent", int, 0, "an integer")
    if not 0 <= percent <= 100 or (state == "canary" and not 1 <= percent <= 99):
        raise ConfigError(f"{p}.percent: must be 1..99 with state = \"canary\" (0..100 else)")
    sample = float(get("sample", (int, float), 1.0, "a number"))
    if not 0.0 <= sample <= 1.0:
        raise ConfigError(f"{p}.sample: must be between 0 and 1")
    sticky = get("sticky", str, "cookie", "a string")
    if not (sticky in ("cookie", "addr") or
            (sticky.startswith(("cookie:", "header:")) and sticky.partition(":")[2])):
        raise ConfigError(f"{p}.sticky: must be cookie, cookie:NAME, header:NAME or addr")

    def positive(key: str, default: Any, kinds: type | tuple[type, ...] = int) -> Any:
        value = get(key, kinds, default, "a positive number")
        if value <= 0:
            raise ConfigError(f"{p}.{key}: must be a positive number")
        return value

    def rate(key: str, default: float) -> float:
        value = float(get(key, (int, float), default, "a number"))
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{p}.{key}: must be between 0 and 1")
        return value

    def strings(key: str) -> tuple[str, ...]:
        value = t.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{p}.{key}: must be a list of strings")
        return tuple(value)

    pointers = strings("ignore_pointers")
    for ptr in pointers:
        if not ptr.startswith("/"):
            raise ConfigError(f"{p}.ignore_pointers: {ptr!r} is not a JSON pointer (starts "
                              "with '/')")
    thresholds = Thresholds(
        min_samples=positive("min_samples", 50),
        max_diff_rate=rate("max_diff_rate", 0.01),
        error_budget=rate("error_budget", 0.05),
        min_error_samples=positive("min_error_samples", 20),
        window_s=float(positive("window_s", 300.0, (int, float))),
    )
    return MigrationConfig(
        name=name, py3=py3, route=(route.rstrip("/") or "/") if route else "", rpc=rpc,
        service=service,
        state=state,
        percent=percent, sample=sample, noise=get("noise", bool, True, "true or false"),
        shadow_safe=get("shadow_safe", bool, None, "true or false"),
        shadow_timeout_ms=positive("shadow_timeout_ms", 5000),
        shadow_concurrency=positive("shadow_concurrency", 4),
        capture_bytes=positive("capture_bytes", 1 << 20),
        ignore_headers=tuple(h.lower() for h in strings("ignore_headers")),
        ignore_pointers=pointers, sticky=sticky, thresholds=thresholds)
