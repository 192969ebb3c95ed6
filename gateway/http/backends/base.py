"""A backend's front part, and the shared parts backends are built from.

::

    FRONT = BackendSpec(build)                     # in gateway/http/backends/static.py
    backend = FRONT.build(route, Parts(config))    # a Backend: (call, start_response) -> body

A backend's route keys and their checks are declared below the front, in
:mod:`gateway.config.backends` (a :class:`~gateway.config.backends.base.RouteSpec`,
whose ``front`` names the :class:`BackendSpec` here); the front part owns
its factory and its OpenAPI contribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.http import openapi
from gateway.http.forwarding import Forwarding
from gateway.http.rpccall import RpcCaller
from gateway.http.wsgitypes import Backend
from protocol.client import Client
from protocol.contract import SPEC_DIR, Contract

if TYPE_CHECKING:
    from gateway.http.config import GatewayHttpConfig, Route

Contracts = Mapping[str, Mapping[str, Any]]


def _no_paths(route: Route, contracts: Contracts) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class BackendSpec:
    """One backend's front part: ``build(route, parts)`` returns the backend,
    ``openapi(route, contracts)`` the OpenAPI ``paths`` it serves."""

    build: Callable[[Route, Parts], Backend]
    openapi: Callable[[Route, Contracts], dict[str, Any]] = _no_paths


class Parts:
    """What the backends of one front process share: made once, handed to every factory.

    ``forwarding`` is built here once; the broker ``client`` and the rpc
    ``contracts`` are made on first use, so a front without broker routes
    never opens a socket or reads a contract. ``rpc_caller`` is how the
    ``rpc`` backends make a call (:mod:`gateway.http.rpccall`), composed by
    the composition root; None: the plain broker call.
    """

    def __init__(self, config: GatewayHttpConfig, client: Client | None = None,
                 rpc_caller: RpcCaller | None = None) -> None:
        self.config = config
        self.limits = config.limits
        self.forwarding = Forwarding(config.trusted_proxies, config.via, config.preserve_host)
        self.rpc_caller = rpc_caller
        self._client = client
        self._contracts: dict[str, Contract] | None = None

    @property
    def client(self) -> Client:
        """The one broker client of this process."""
        if self._client is None:
            self._client = Client(self.config.broker, timeout=self.config.limits.timeout)
        return self._client

    @property
    def contracts(self) -> dict[str, Contract]:
        """The service contracts, by service (the rpc checks and the OpenAPI document)."""
        if self._contracts is None:
            contracts = openapi.load_contracts(self.config.contracts_dir or SPEC_DIR)
            settings = self.config.migration
            for m in settings.migrations if settings is not None else ():
                # The py3 port of an rpc migration answers to its py2 service's contract,
                # also when a client names the port itself.
                if m.kind == "rpc" and m.rpc_service in contracts:
                    contracts.setdefault(m.py3, contracts[m.rpc_service])
            self._contracts = contracts
        return self._contracts
