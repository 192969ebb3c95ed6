"""Listening sockets owned by the arbiter, bound here or taken from systemd.

The arbiter binds each listening socket once and keeps it open for its whole
life. Children inherit the descriptor (gunicorn as ``--bind fd://N``), so a
restarted or replaced child finds connections waiting in the backlog instead
of refusing them. Under systemd socket activation (``LISTEN_FDS`` /
``LISTEN_PID``) the sockets come from fd 3 on and are matched by address::

    pool = SocketPool(inherited=systemd_fds(env, os.getpid()))
    sock = pool.get("127.0.0.1:8080")     # the same socket on every call
    sock.fileno()                         # what children receive
    argv, fds = pool.hand_over("127.0.0.1:8080", argv, env)   # {fd}, {port}, env
    pool.close()
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from gateway.config import parse_listen
from gateway.errors import SpawnError

SD_LISTEN_FDS_START = 3
BACKLOG = 2048


def systemd_fds(env: Mapping[str, str], pid: int) -> list[int]:
    """The descriptors passed by systemd socket activation, if they are meant for ``pid``."""
    try:
        count = int(env.get("LISTEN_FDS", "0"))
        listen_pid = int(env.get("LISTEN_PID", "0"))
    except ValueError:
        return []
    if listen_pid != pid or count <= 0:
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def _key(addr: object) -> str:
    if isinstance(addr, str):
        return "unix:" + addr
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return repr(addr)


def _normalise(listen: str) -> str:
    addr = parse_listen(listen, "listen")
    if isinstance(addr, tuple) and addr[0] == "localhost":
        addr = ("127.0.0.1", addr[1])
    return _key(addr)


class SocketPool:
    """Every listening socket of the estate, keyed by its configured address."""

    def __init__(self, inherited: list[int] | None = None) -> None:
        self.sockets: dict[str, socket.socket] = {}
        self.inherited: dict[str, socket.socket] = {}
        for fd in inherited or []:
            sock = socket.socket(fileno=fd)
            self.inherited[_key(sock.getsockname())] = sock

    def get(self, listen: str) -> socket.socket:
        """The socket for ``listen`` (``HOST:PORT`` or ``unix:/path``), bound on first use."""
        key = _normalise(listen)
        if key in self.sockets:
            return self.sockets[key]
        sock = self.inherited.pop(key, None) or self._bind(listen)
        sock.set_inheritable(True)
        self.sockets[key] = sock
        return sock

    def _bind(self, listen: str) -> socket.socket:
        addr = parse_listen(listen, "listen")
        sock: socket.socket | None = None
        try:
            if isinstance(addr, str):
                if os.path.exists(addr):
                    os.unlink(addr)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(addr)
            else:
                host = "127.0.0.1" if addr[0] == "localhost" else addr[0]
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, addr[1]))
            sock.listen(BACKLOG)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise SpawnError(f"cannot listen on {listen}: {exc.strerror}") from None
        return sock

    def hand_over(self, listen: str, argv: list[str],
                  env: dict[str, str]) -> tuple[list[str], tuple[int, ...]]:
        """Argv with ``{fd}`` / ``{port}`` filled in, and the descriptors a child inherits.

        Sets ``GATEWAY_LISTEN_FD`` in ``env``. SpawnError when the socket cannot be bound.
        """
        sock = self.get(listen)
        fd = sock.fileno()
        port = sock.getsockname()[1] if sock.family != socket.AF_UNIX else 0
        env["GATEWAY_LISTEN_FD"] = str(fd)
        return [a.replace("{fd}", str(fd)).replace("{port}", str(port)) for a in argv], (fd,)

    def address(self, listen: str) -> str:
        """The bound address as ``HOST:PORT`` (resolves port 0) or ``unix:/path``."""
        return _key(self.get(listen).getsockname())

    def close(self) -> None:
        """Close every socket (children keep their own copies until they exit)."""
        for sock in list(self.sockets.values()) + list(self.inherited.values()):
            sock.close()
        self.sockets.clear()
        self.inherited.clear()
