"""gunicorn hooks for the HTTP front under the arbiter (``--config python:...``).

* ``when_ready`` / ``post_worker_init`` send sd_notify-style datagrams to
  ``NOTIFY_SOCKET`` (the arbiter's notify socket): the master says
  ``READY=1`` and each booted worker says ``WORKER_READY=1`` with its master's
  pid, so the arbiter routes to a new front only once its workers accept.
* CPU pinning of each worker is :func:`gateway.http.server.post_fork`, shared
  with the standalone front.

::

    gunicorn --bind fd://5 --config python:gateway.arbiter.gunicorn_conf 'gateway.cli:http_app()'
"""

from __future__ import annotations

import os
import socket
from typing import Any


def notify(message: str) -> None:
    """Send one datagram to ``$NOTIFY_SOCKET``, if set; never raises."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.sendto(message.encode("ascii"), path)
    except OSError:
        pass
    finally:
        sock.close()


def when_ready(server: Any) -> None:
    """The master has its sockets: READY=1 with its pid."""
    notify(f"READY=1\nMAINPID={os.getpid()}")


def post_worker_init(worker: Any) -> None:
    """A worker finished loading the app and is about to accept."""
    notify(f"WORKER_READY=1\nMAINPID={os.getppid()}")
