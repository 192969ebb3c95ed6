"""A private redis-server on a free loopback port, for tests and benchmarks.

::

    server = RedisServer(tmpdir)      # starts and waits until PING answers
    later = RedisServer(tmpdir, start=False)   # its port and URL now, the process on start()
    server.url                        # "redis://127.0.0.1:PORT/0"
    server.unix_url                   # the same server on its unix socket, as a default estate's
    server.restart()                  # same port, same data directory
    server.stop()
"""
from __future__ import absolute_import, division, print_function

import os
import socket

from tests.support.procs import ProcessGroup, free_port, wait_until


def _ping(port):
    # type: (int) -> bool
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except (OSError, socket.error):
        return False
    try:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    except (OSError, socket.error):
        return False
    finally:
        s.close()


class RedisServer(object):
    """One redis-server process owned by a test; ``appendfsync`` optional."""

    def __init__(self, directory, appendfsync=None, binary="redis-server", start=True):
        # type: (str, str, str, bool) -> None
        self.directory = directory
        self.port = free_port()
        self.appendfsync = appendfsync
        self.binary = binary
        self.procs = ProcessGroup()
        self.proc = None
        if start:
            self.start()

    @property
    def url(self):
        # type: () -> str
        """The redis:// URL of this server, database 0."""
        return "redis://127.0.0.1:%d/0" % self.port

    @property
    def unix_url(self):
        # type: () -> str
        """The same server on its unix socket (how a default estate's private Redis listens)."""
        return "unix://%s?db=0" % os.path.join(self.directory, "redis-%d.sock" % self.port)

    def start(self):
        # type: () -> None
        """Start the server and wait until it answers PING."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.directory, "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--loglevel", "warning",
                "--unixsocket", os.path.join(self.directory, "redis-%d.sock" % self.port),
                "--unixsocketperm", "700"]
        if self.appendfsync:
            argv += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        log = open(os.path.join(self.directory, "redis-%d.log" % self.port), "ab")
        try:
            self.proc = self.procs.spawn(argv, stdout=log, stderr=log)
        finally:
            log.close()
        wait_until(lambda: _ping(self.port) or self.proc.poll() is not None,
                   timeout=10, what="redis-server PING")
        if self.proc.poll() is not None:
            raise RuntimeError("redis-server exited with %s" % self.proc.returncode)

    def stop(self):
        # type: () -> None
        """Stop the server (SIGTERM, then SIGKILL) and reap it."""
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.procs.procs = [p for p in self.procs.procs if p is not self.proc]
            self.proc = None

    def restart(self):
        # type: () -> None
        """Stop and start again on the same port and directory."""
        self.stop()
        self.start()
