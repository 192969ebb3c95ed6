"""Broker lists and CURVE client keys for workers and clients (2.7 and 3.x; SPEC 2.15).

::

    from protocol.brokers import split_endpoints, load_curve, curve_from_env

    split_endpoints("tcp://10.0.0.1:5555, tcp://10.0.0.2:5555")
    # -> ["tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"]
    curve = load_curve("keys/broker.key", "keys/worker.key_secret")
    # -> (server_public, public, secret), what Worker(curve=...) and Client(curve=...) take
    curve_from_env(os.environ)     # the same from $GATEWAY_CURVE_SERVER_KEY / _SECRET

A service calling another one builds its client from the same variables with
:func:`protocol.client.client_from_env`.

A host that talks to several brokers (one per gateway host) is given them as
a comma-separated list wherever one endpoint was accepted before:
``--broker``, ``$GATEWAY_BROKER``, ``Client(endpoint)``. One endpoint keeps
meaning exactly what it meant.

Off loopback, CURVE is required (SPEC 2.10): :func:`check_curve` refuses a
non-loopback endpoint without keys instead of sending requests, cookies
included, in clear over a network.

:func:`tune` turns on ZeroMQ's own connection heartbeats (ZMTP PING/PONG) so
that a link that goes silent (a cable pulled, a host gone without a FIN) is
reported by the socket monitor within a few heartbeats rather than by TCP's
retransmission timeout, which is minutes.
"""
from __future__ import absolute_import, division, print_function

import os
import socket

import zmq

from protocol._compat import string_types

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any  # noqa: F401

# Environment of a worker host (set by the arbiter; SPEC 2.15).
ENV_BROKER = "GATEWAY_BROKER"
ENV_SERVER_KEY = "GATEWAY_CURVE_SERVER_KEY"
ENV_SECRET = "GATEWAY_CURVE_SECRET"

_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1", "lo")


def split_endpoints(value):
    # type: (object) -> list
    """The endpoints of ``value``: a list, or text with commas; blanks dropped.

    Raises ValueError when nothing is left, so a caller never connects nowhere.
    """
    if isinstance(value, bytes) and not isinstance(value, string_types):
        value = value.decode("ascii")  # py3 bytes; on 2.7 a str is already text enough
    if isinstance(value, string_types):
        items = value.split(",")
    else:
        items = list(value)  # type: ignore[call-overload]
    out = [item.strip() for item in items if item and item.strip()]
    if not out:
        raise ValueError("no broker endpoint given (expected tcp://HOST:PORT or ipc://PATH, "
                         "several separated by commas)")
    return out


def is_loopback(endpoint):
    # type: (str) -> bool
    """True for ipc://, inproc:// and tcp:// endpoints on a loopback address."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host in _LOCAL_NAMES:
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (socket.error, ValueError, OSError):
            continue
        if family == socket.AF_INET:
            return packed[:1] == b"\x7f"
        return packed == b"\0" * 15 + b"\x01"
    return False  # a host name: could be anything


def load_curve(server_key_file, secret_file):
    # type: (str, str) -> tuple
    """``(server_public, public, secret)`` from zmq.auth certificate files.

    ``server_key_file`` is the broker's public certificate (``broker.key``);
    ``secret_file`` is this host's own ``.key_secret``. Raises ValueError naming
    the file that cannot be used.
    """
    import zmq.auth
    try:
        server_public, _ = zmq.auth.load_certificate(server_key_file)
    except (IOError, OSError, ValueError) as exc:
        raise ValueError("cannot read the broker's public key %r: %s" % (server_key_file, exc))
    try:
        public, secret = zmq.auth.load_certificate(secret_file)
    except (IOError, OSError, ValueError) as exc:
        raise ValueError("cannot read the CURVE key pair %r: %s" % (secret_file, exc))
    if not secret:
        raise ValueError("%r holds no secret key (give the .key_secret file)" % (secret_file,))
    return server_public, public, secret


def curve_from_env(environ):
    # type: (dict) -> tuple
    """The CURVE triple named by ``$GATEWAY_CURVE_SERVER_KEY`` and ``_SECRET``, or None."""
    server, own = environ.get(ENV_SERVER_KEY, ""), environ.get(ENV_SECRET, "")
    if not server and not own:
        return None
    if not (server and own):
        raise ValueError("set both %s and %s (or neither)" % (ENV_SERVER_KEY, ENV_SECRET))
    return load_curve(server, own)


def check_curve(endpoints, curve):
    # type: (list, tuple) -> None
    """Refuse a non-loopback endpoint without CURVE keys (SPEC 2.10), naming it."""
    if curve is not None:
        return
    for endpoint in endpoints:
        if not is_loopback(endpoint):
            raise ValueError("refusing to connect to %s without CURVE keys: it is not a "
                             "loopback address (give the broker's public key and this "
                             "host's key pair)" % (endpoint,))


def tune(sock, interval_s):
    # type: (zmq.Socket, float) -> None
    """Connection heartbeats and a bounded connect: a dead link is noticed in ~3 beats."""
    ivl = max(100, int(interval_s * 1000))
    sock.setsockopt(zmq.HEARTBEAT_IVL, ivl)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * ivl)
    sock.setsockopt(zmq.HEARTBEAT_TTL, 3 * ivl)
    sock.setsockopt(zmq.CONNECT_TIMEOUT, 3 * ivl)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 4 * ivl)


def apply_curve(sock, curve):
    # type: (zmq.Socket, tuple) -> None
    """Make ``sock`` a CURVE client of the broker whose public key ``curve`` names."""
    if curve is not None:
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = curve


ENV_LINK = "GATEWAY_BROKER_LINK"
LINKS = ("auto", "zmtp", "libzmq")


def choose_link(endpoint, curve, link=None):
    # type: (str, tuple, str) -> str
    """How to reach ``endpoint``: ``zmtp`` (speak ZMTP on a plain socket) or ``libzmq``.

    ``link`` (default ``$GATEWAY_BROKER_LINK``, else ``auto``) is ``auto``,
    ``zmtp`` or ``libzmq``; ``auto`` takes zmtp for a broker on this host
    (``ipc://``, loopback ``tcp://``) with no CURVE, which a plain socket
    cannot speak.
    """
    link = link or os.environ.get(ENV_LINK) or "auto"
    if link not in LINKS:
        raise ValueError("the broker link must be one of %s, not %r" % (", ".join(LINKS), link))
    local = endpoint.startswith(("ipc://", "tcp://")) and is_loopback(endpoint)
    if link == "zmtp" and (curve is not None or not endpoint.startswith(("ipc://", "tcp://"))):
        raise ValueError("a zmtp link speaks ipc:// or tcp:// with no CURVE; "
                         "use libzmq for %s" % (endpoint,))
    if link == "auto":
        return "zmtp" if local and curve is None else "libzmq"
    return link
