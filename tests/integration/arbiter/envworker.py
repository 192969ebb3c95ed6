"""A ``runtime = "command"`` worker that finds everything in its environment (2.7 and 3.x).

    python envworker.py [--fd N]

It connects to ``$GATEWAY_BROKER`` as ``$GATEWAY_SERVICE``, reports
readiness on ``$NOTIFY_SOCKET`` once registered, and answers ``env`` with the
variables the supervisor set (SPEC 2.12), plus the port of the socket that
``$GATEWAY_LISTEN_FD`` names and the ``--fd`` its command line was given.
"""
# This file also runs on Python 2.7.
# ruff: noqa: UP010, UP025
from __future__ import absolute_import, division, print_function

import os
import socket
import sys

from protocol.worker import Worker, notify_from

NAMES = ("GATEWAY_BROKER", "GATEWAY_SERVICE", "GATEWAY_REPLICA", "GATEWAY_REDIS_URL",
         "NOTIFY_SOCKET", "GATEWAY_LISTEN_FD")


def env():
    """The supervisor's variables as this process sees them (None when unset)."""
    out = {name: os.environ.get(name) for name in NAMES}
    out["argv_fd"] = sys.argv[2] if sys.argv[1:2] == ["--fd"] else None
    fd = os.environ.get("GATEWAY_LISTEN_FD")
    out["listen_port"] = None
    if fd:
        sock = socket.fromfd(int(fd), socket.AF_INET, socket.SOCK_STREAM)  # a dup of it
        try:
            out["listen_port"] = sock.getsockname()[1]
        finally:
            sock.close()
    return out


def main():
    worker = Worker(os.environ["GATEWAY_BROKER"], os.environ["GATEWAY_SERVICE"],
                    table={u"env": env}, on_registered=notify_from(os.environ))
    worker.install_signal_handlers()
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
