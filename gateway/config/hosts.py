"""Several hosts, one estate: host roles, remote brokers and CURVE keys (SPEC 2.15).

Each gateway host runs the HTTP front and its own broker; worker hosts run
only services, registered with every gateway host's broker. This module owns
the ``[broker]`` keys for that and the roles ``gateway up --role`` and
``gateway export --role`` take::

    [broker]                                   # on every gateway host
    public_endpoint = "tcp://10.0.0.1:5555"    # CURVE, for the worker hosts
    curve_secret_file = "keys/broker.key_secret"
    curve_clients_dir = "keys/clients"         # the worker hosts' public keys

    [broker]                                   # on a worker host
    connect = ["tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"]
    curve_server_key = "keys/broker.key"
    curve_client_secret = "keys/worker1.key_secret"

    cfg = apply_role(cfg, "workers")   # services only, connected to broker.connect

Roles: ``all`` (the default: front, broker and services), ``gateway`` (front,
broker, the control plane, a private Redis if one is wanted; no services) and
``workers`` (the services only, no front, no broker, no private Redis: their
queues need ``[redis] url``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway.config.schema import GatewayConfig
from gateway.errors import ConfigError
from protocol.brokers import ENV_SECRET, ENV_SERVER_KEY, is_loopback

ROLES = ("all", "gateway", "workers")
# The [broker] keys this module parses (gateway.config accepts them in [broker]).
KEYS = ("public_endpoint", "curve_secret_file", "curve_clients_dir", "connect",
        "curve_server_key", "curve_client_secret")


def _text(t: Mapping[str, Any], key: str) -> str:
    value = t.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"broker.{key}: expected a string, got {type(value).__name__}")
    return value


def _path(t: Mapping[str, Any], key: str, base_dir: str, kind: str) -> str:
    value = _text(t, key)
    if not value:
        return ""
    path = value if os.path.isabs(value) else os.path.normpath(os.path.join(base_dir, value))
    if kind == "dir" and not os.path.isdir(path):
        raise ConfigError(f"broker.{key}: {path!r} is not a directory")
    if kind == "file" and not os.path.isfile(path):
        raise ConfigError(f"broker.{key}: {path!r} does not exist (make keys with "
                          "`gateway keys DIR`)")
    return path


def _tcp(value: str, where: str) -> str:
    scheme, sep, rest = value.partition("://")
    host, colon, port = rest.rpartition(":")
    if scheme != "tcp" or not sep or not colon or not host or not port.isdigit():
        raise ConfigError(f"{where}: expected tcp://HOST:PORT, got {value!r}")
    return value


def parse(t: Mapping[str, Any], base_dir: str) -> dict[str, Any]:
    """The BrokerConfig fields of :data:`KEYS`, checked; paths made absolute.

    CURVE is required off loopback (SPEC 2.10): a ``public_endpoint`` needs
    the broker's secret key and the directory of admitted client keys, and a
    non-loopback ``connect`` entry needs the broker's public key and this
    host's key pair.
    """
    public = _text(t, "public_endpoint")
    if public:
        _tcp(public, "broker.public_endpoint")
    secret = _path(t, "curve_secret_file", base_dir, "file")
    clients = _path(t, "curve_clients_dir", base_dir, "dir")
    if public and not (secret and clients):
        raise ConfigError("broker.public_endpoint: needs curve_secret_file and "
                          "curve_clients_dir (CURVE is required off loopback; without a "
                          "clients directory any host could register as a worker)")
    raw = t.get("connect", [])
    if isinstance(raw, str):
        raw = [e.strip() for e in raw.split(",") if e.strip()]
    if not isinstance(raw, (list, tuple)) or not all(isinstance(e, str) for e in raw):
        raise ConfigError("broker.connect: expected a list of endpoints")
    connect = tuple(_tcp(e, "broker.connect") if e.startswith("tcp") else e for e in raw)
    server_key = _path(t, "curve_server_key", base_dir, "file")
    client_secret = _path(t, "curve_client_secret", base_dir, "file")
    if bool(server_key) != bool(client_secret):
        raise ConfigError("broker.curve_server_key and broker.curve_client_secret: "
                          "give both or neither")
    remote = [e for e in connect if not is_loopback(e)]
    if remote and not server_key:
        raise ConfigError(f"broker.connect: {remote[0]} is not loopback, so it needs CURVE: "
                          "set curve_server_key and curve_client_secret")
    return {"public_endpoint": public, "curve_secret_file": secret,
            "curve_clients_dir": clients, "connect": connect,
            "curve_server_key": server_key, "curve_client_secret": client_secret}


def service_brokers(config: GatewayConfig) -> str:
    """What services connect to: ``connect`` (comma-separated), else the local broker."""
    b = config.broker
    return ",".join(b.connect) if b.connect else b.endpoint


def curve_env(config: GatewayConfig) -> dict[str, str]:
    """The CURVE variables of a service's environment (protocol.brokers reads them)."""
    b = config.broker
    if not b.curve_server_key:
        return {}
    return {ENV_SERVER_KEY: b.curve_server_key, ENV_SECRET: b.curve_client_secret}


def broker_binds(config: GatewayConfig) -> tuple[str, ...]:
    """The bind and CURVE arguments of the broker's command line."""
    b = config.broker
    if not b.public_endpoint:
        return ("--bind", b.endpoint)
    return ("--bind-local", b.endpoint, "--bind", b.public_endpoint,
            "--curve-secret", b.curve_secret_file, "--curve-clients", b.curve_clients_dir,
            "--events-local")


def apply_role(config: GatewayConfig, role: str | None = None) -> GatewayConfig:
    """The part of ``config`` a host of ``role`` runs (see the module docstring).

    ``role`` None means ``[gateway] role``. A gateway host keeps its
    ``[services.*]`` in the config (the front learns which rpc services may go
    untyped from them) but runs none of them.
    """
    role = role or config.gateway.role
    if role == "all":
        return config
    if role == "gateway":
        return replace(config, gateway=replace(config.gateway, role=role))
    if role == "workers":
        if not config.services:
            raise ConfigError("--role workers: the config has no [services.*] to run")
        if not config.broker.connect:
            raise ConfigError("--role workers: set [broker] connect to the gateway hosts' "
                              "brokers (their public_endpoint)")
        if config.wants_private_redis:
            raise ConfigError("--role workers: services with queues need [redis] url (the "
                              "estate's shared Redis); a worker host runs no private one")
        return replace(config, broker=replace(config.broker, enabled=False),
                       gateway=replace(config.gateway, front=False, role=role))
    raise ConfigError(f"--role: expected one of {', '.join(ROLES)}, got {role!r}")
