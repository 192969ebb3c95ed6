"""The front's process plumbing: listening sockets, CPU pinning and sd_notify.

::

    sock = listen_socket(("127.0.0.1", 8080))   # or socket_from_fd(fd), inherited
    pin_worker(1)                               # this process on one CPU
    notify("READY=1")                           # to $NOTIFY_SOCKET, if set

Each is a small, stateless function the front's master and workers
(:mod:`gateway.http.server`) call; none raises when there is nothing to do.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence


def pin_worker(worker_age: int, cpus: Sequence[int] | None = None) -> int | None:
    """Pin the calling process to one CPU chosen round-robin by ``worker_age``."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    available = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    if len(available) < 2:
        return None
    cpu = available[(worker_age - 1) % len(available)]
    os.sched_setaffinity(0, {cpu})
    return cpu


def notify(message: str) -> None:
    """Send one sd_notify datagram to ``$NOTIFY_SOCKET``, if set; never raises."""
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


def listen_socket(address: tuple[str, int] | str, backlog: int = 2048) -> socket.socket:
    """A listening TCP (``(host, port)``) or unix (path) socket, inheritable."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if os.path.exists(address):
            os.unlink(address)
        sock.bind(address)
    else:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def socket_from_fd(fd: int) -> socket.socket:
    """The listening socket behind an inherited descriptor (arbiter, systemd, supervisord)."""
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(True)
    return sock
