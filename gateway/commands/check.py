"""``gateway check``: validate a config beyond its schema, without starting anything.

::

    check_contracts("/srv/gw/contracts")     # ConfigError naming the bad file and key
"""

from __future__ import annotations

import os

from gateway.errors import ConfigError


def check_contracts(directory: str) -> None:
    """Every service contract in ``directory`` must load (protocol.contract checks it)."""
    from protocol import contract

    if not os.path.isdir(directory):
        raise ConfigError(f"http.contracts_dir: {directory} is not a directory")
    for name in contract.available(directory):
        try:
            contract.load(name, directory=directory)
        except contract.ContractError as exc:
            raise ConfigError(f"http.contracts_dir: {exc}") from None
