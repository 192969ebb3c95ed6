"""``[metrics]``, ``[tracing]`` and the access-log keys of ``[http]``, as the front uses them.

The keys are checked by :mod:`gateway.config.sections.metrics` when a config is parsed.

::

    [metrics]
    enabled = true                 # count requests; serve /_gateway/metrics

    [tracing]
    otlp_endpoint = ""             # "" = off; http://127.0.0.1:4318/v1/traces = one
                                   # span per request, to an OTLP/HTTP collector

    [http]
    access_log = ""                # "" = <run_dir>/logs/access.log; "-" = the front's
                                   # stdout (the arbiter's log); "off"; or a file path
    access_log_format = "combined" # "combined" (nginx combined + the gateway's fields)
                                   # or "json" (one object per line)

    obs = observability(gateway_config)   # ObservabilityConfig; ConfigError names the key
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.config import GatewayConfig
from gateway.config.sections.metrics import ACCESS_LOG_FORMATS, check_keys, check_otlp
from gateway.errors import ConfigError


@dataclass(frozen=True)
class ObservabilityConfig:
    """What the front measures and where it writes it.

    ``access_log`` is an absolute path, ``"-"`` (stdout) or ``""`` (off).
    ``metrics_dir`` is the parent of the per-front multi-process directories.
    ``runtimes`` maps each configured service to its runtime (py2, py3,
    command), for the ``runtime`` label of routes that are not migrated.
    ``token_file`` holds the admin token that opens ``/_gateway/metrics`` to
    non-loopback clients (the admin API's; "" accepts no token).
    """

    metrics: bool = True
    access_log: str = ""
    access_log_format: str = "combined"
    metrics_dir: str = ""
    runtimes: Mapping[str, str] = field(default_factory=dict)
    token_file: str = ""
    otlp_endpoint: str = ""

    def __post_init__(self) -> None:
        check_otlp(self.otlp_endpoint)
        if self.metrics and not self.metrics_dir:
            # Without the shared directory each front worker would count for itself and a
            # scrape would see one worker's numbers.
            raise ConfigError("metrics: a metrics directory is required when metrics are on")
        if self.access_log_format not in ACCESS_LOG_FORMATS:
            raise ConfigError(f"http.access_log_format: one of {ACCESS_LOG_FORMATS}")

    @property
    def enabled(self) -> bool:
        """True when the front measures anything at all."""
        return self.metrics or bool(self.access_log) or bool(self.otlp_endpoint)


def observability(cfg: GatewayConfig) -> ObservabilityConfig:
    """The front's :class:`ObservabilityConfig` from a parsed gateway config."""
    http, metrics = cfg.http, cfg.metrics
    check_keys(http, metrics, cfg.tracing)
    run_dir = cfg.gateway.run_dir
    log = str(http.get("access_log", ""))
    if log == "":
        log = os.path.join(run_dir, "logs", "access.log")
    elif log == "off":
        log = ""
    elif log != "-":
        log = log if os.path.isabs(log) else os.path.join(cfg.base_dir, log)
    return ObservabilityConfig(
        metrics=bool(metrics.get("enabled", True)),
        access_log=log,
        access_log_format=str(http.get("access_log_format", "combined")),
        metrics_dir=os.path.join(run_dir, "metrics"),
        runtimes={s.name: s.runtime for s in cfg.services},
        token_file=cfg.migration_settings.token_file,
        otlp_endpoint=str(cfg.tracing.get("otlp_endpoint", "")))
