"""The migration settings, under the name the migration package has always used.

They are parsed by :mod:`gateway.config.sections.migration`, below this
package, so that parsing a config imports no store::

    from gateway.migration.config import MigrationConfig, MigrationSettings
"""

from __future__ import annotations

from gateway.config.sections.migration import (
    ROUTE_KEYS,
    MigrationConfig,
    MigrationSettings,
    Thresholds,
    parse_settings,
)

__all__ = ["ROUTE_KEYS", "MigrationConfig", "MigrationSettings", "Thresholds",
           "parse_settings"]
