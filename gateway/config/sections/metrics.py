"""The keys of ``[metrics]``, ``[tracing]`` and the access log in ``[http]``, checked.

Parsing a config checks them here, below :mod:`gateway.metrics`, which builds
the front's :class:`~gateway.metrics.config.ObservabilityConfig` from them::

    check_keys(http={"access_log_format": "xml"}, metrics={})   # ConfigError:
    #   http.access_log_format: one of ('combined', 'json'), got 'xml'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError

ACCESS_LOG_FORMATS = ("combined", "json")
METRICS_KEYS = {"enabled"}
TRACING_KEYS = {"otlp_endpoint"}


def check_otlp(endpoint: Any) -> None:
    """Raise :class:`ConfigError` unless ``endpoint`` is "" or an http(s) URL."""
    if not isinstance(endpoint, str) or (
            endpoint and not endpoint.startswith(("http://", "https://"))):
        raise ConfigError("tracing.otlp_endpoint: an OTLP/HTTP URL such as "
                          f"http://127.0.0.1:4318/v1/traces, got {endpoint!r}")


def check_keys(http: Mapping[str, Any], metrics: Mapping[str, Any],
               tracing: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` for a bad ``[metrics]``, ``[tracing]`` or ``[http]
    access_log*`` value."""
    for key in tracing or {}:
        if key not in TRACING_KEYS:
            raise ConfigError(f"tracing.{key}: unknown key (known: otlp_endpoint)")
    check_otlp((tracing or {}).get("otlp_endpoint", ""))
    for key in metrics:
        if key not in METRICS_KEYS:
            raise ConfigError(f"metrics.{key}: unknown key (known: enabled)")
    if not isinstance(metrics.get("enabled", True), bool):
        raise ConfigError("metrics.enabled: must be true or false")
    log = http.get("access_log", "")
    if not isinstance(log, str):
        raise ConfigError("http.access_log: a path, \"-\" (stdout) or \"off\"")
    fmt = http.get("access_log_format", "combined")
    if fmt not in ACCESS_LOG_FORMATS:
        raise ConfigError(f"http.access_log_format: one of {ACCESS_LOG_FORMATS}, got {fmt!r}")
