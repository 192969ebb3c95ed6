"""Who may bind where: loopback is open, anything else needs CURVE keys.

::

    check_bind("tcp://127.0.0.1:5555", None)            # fine
    check_bind("tcp://0.0.0.0:5555", None)              # BrokerError: needs CURVE keys
    keys = CurveKeys.load("broker.key_secret", clients_dir="clients/")
    apply_curve(socket, keys)                           # before bind

Keys are ZeroMQ certificate files as written by ``zmq.auth.create_certificates``.
With ``clients_dir`` only the public keys found there may connect (checked
by a ``zmq.auth`` authenticator thread); without it any client that knows the
broker's public key may.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from gateway.errors import BrokerError

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]", "lo"}


@dataclass(frozen=True)
class CurveKeys:
    """The broker's CURVE key pair and, optionally, a directory of allowed client keys."""

    public: bytes
    secret: bytes
    clients_dir: str | None = None

    @classmethod
    def load(cls, secret_file: str, clients_dir: str | None = None) -> CurveKeys:
        """Read a ``.key_secret`` certificate; raise BrokerError naming the file if unusable."""
        try:
            public, secret = zmq.auth.load_certificate(secret_file)
        except (OSError, ValueError) as exc:
            raise BrokerError(f"cannot read CURVE certificate {secret_file!r}: {exc}") from exc
        if not secret:
            raise BrokerError(f"{secret_file!r} holds no secret key (use the .key_secret file)")
        if clients_dir is not None and not os.path.isdir(clients_dir):
            raise BrokerError(f"CURVE clients directory {clients_dir!r} does not exist")
        return cls(public, secret, clients_dir)


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// endpoints bound to a loopback address."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0]
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname or interface name: could be anything


def check_bind(endpoint: str, keys: CurveKeys | None) -> None:
    """Refuse a non-loopback bind without CURVE keys, saying why."""
    if keys is None and not is_loopback(endpoint):
        raise BrokerError(
            f"refusing to bind {endpoint}: it is not a loopback address and no CURVE keys "
            "are configured; pass a broker certificate (zmq.auth) or bind 127.0.0.1 / ipc://")


def apply_curve(sock: zmq.Socket[bytes], keys: CurveKeys) -> None:
    """Make ``sock`` a CURVE server with the broker's keys (call before bind)."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True


def start_authenticator(ctx: zmq.Context[zmq.Socket[bytes]],
                        keys: CurveKeys) -> ThreadAuthenticator:
    """Start the ZAP handler that admits the clients whose keys are in ``clients_dir``."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    location = keys.clients_dir if keys.clients_dir else zmq.auth.CURVE_ALLOW_ANY
    auth.configure_curve(domain="*", location=location)
    return auth
