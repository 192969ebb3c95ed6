"""Readiness for supervisors: sd_notify(3) datagrams, without libsystemd (2.7 and 3.x).

::

    callback = notify_from(os.environ)     # None without $NOTIFY_SOCKET
    Worker(..., on_registered=callback)    # READY=1 once the broker confirms us

Never raises: readiness is advice, and a supervisor that is not listening
must not stop a worker from serving.
"""
from __future__ import absolute_import, division, print_function

import os
import socket

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Mapping  # noqa: F401


def sd_notify(address, message=b"READY=1"):
    # type: (str, bytes) -> bool
    """Send one sd_notify(3) datagram to ``address``; False when nobody listens there.

    ``address`` is what ``$NOTIFY_SOCKET`` holds: a path, or ``@name`` for
    Linux's abstract namespace. Never raises: readiness is advice.
    """
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.sendto(message, target)
        return True
    except (OSError, socket.error):
        return False
    finally:
        sock.close()


def notify_from(environ):
    # type: (Mapping[str, str]) -> object
    """The ``on_registered`` callback for a worker started with ``$NOTIFY_SOCKET``, or None."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    message = ("READY=1\nMAINPID=%d" % os.getpid()).encode("ascii")
    return lambda: sd_notify(address, message)
