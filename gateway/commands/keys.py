"""``gateway keys DIR [NAME ...]``: CURVE key pairs for a multi-host estate (SPEC 2.15).

::

    gateway keys keys/ broker worker1 worker2
    # keys/broker.key, keys/broker.key_secret            -> every gateway host
    # keys/worker1.key, keys/worker1.key_secret          -> worker host 1
    # keys/clients/worker1.key, keys/clients/worker2.key -> [broker] curve_clients_dir

Each pair is a zmq.auth certificate (``zmq.auth.create_certificates``, made
with ``zmq.curve_keypair``). The public halves of every name but ``broker``
are copied into ``DIR/clients``, the directory a gateway host's broker admits
clients from. An existing pair is kept, never overwritten: a key already
deployed on a host must not silently change.
"""

from __future__ import annotations

import argparse
import os
import shutil
from typing import Any

import zmq.auth

from gateway.errors import ConfigError


def make_keys(directory: str, names: list[str]) -> list[str]:
    """Create the missing pairs of ``names`` in ``directory``; return the files written."""
    for name in names:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ConfigError(f"keys: {name!r}: names use letters, digits, '-', '_', '.'")
    clients = os.path.join(directory, "clients")
    os.makedirs(clients, mode=0o700, exist_ok=True)
    written: list[str] = []
    for name in names:
        public = os.path.join(directory, f"{name}.key")
        if not os.path.exists(public):
            public, secret = zmq.auth.create_certificates(directory, name)
            os.chmod(secret, 0o600)
            written += [public, secret]
        if name != "broker":
            admitted = os.path.join(clients, f"{name}.key")
            if not os.path.exists(admitted):
                shutil.copyfile(public, admitted)
                written.append(admitted)
    return written


def cmd_keys(args: argparse.Namespace) -> int:
    """Write the key pairs and print each file written."""
    for path in make_keys(args.directory, ["broker", *args.names]):
        print(path)
    return 0


def add_parser(sub: Any) -> None:
    """Register ``gateway keys`` (it needs no config)."""
    p = sub.add_parser("keys", help="make CURVE key pairs for a multi-host estate")
    p.add_argument("directory", help="where to write them (made if missing)")
    p.add_argument("names", nargs="*", help="a pair per worker host (the broker's is "
                                            "always made)")
    p.set_defaults(local_command=cmd_keys)
