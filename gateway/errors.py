"""The gateway's exceptions.

::

    GatewayError
     +-- ConfigError (ValueError)   the TOML or a contract is invalid; names the key
     +-- BrokerError                the broker cannot start or lost its sockets
     +-- SpawnError                 a supervised process could not be started

Protocol-level failures (timeouts, unavailable services, remote errors) are
``protocol.errors`` exceptions; the HTTP front maps both trees to problem
responses at the edge.
"""


class GatewayError(Exception):
    """Base class of every error raised by the gateway."""


class ConfigError(GatewayError, ValueError):
    """The configuration is invalid; the message names the offending key."""


class BrokerError(GatewayError):
    """The broker cannot start, or cannot keep running, as configured."""


class SpawnError(GatewayError):
    """A supervised process could not be started."""
