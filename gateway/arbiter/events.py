"""The main loop's one wait: replicas' output, control requests, notices, wake-ups.

gunicorn's arbiter sleeps on a pipe that its signal handlers write to; this
does the same with ``signal.set_wakeup_fd`` and a selector that also watches
every replica's output pipe, the control socket with its connections, and the
NOTIFY_SOCKET. :meth:`Events.wait` returns what happened, already reduced to
what the arbiter acts on::

    events = Events()
    events.open(control_sock, notify_sock)
    for what, obj in events.wait(0.05):
        # ("output", replica) | ("notify", None) | ("request", (conn, request))
        ...
    events.wake()      # from any thread: end the current wait now
    events.close()

A malformed control request is answered here (``bad request: ...``); only
whole, valid requests reach the arbiter.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
from typing import Any

from gateway.arbiter import control
from gateway.arbiter.child import Child
from gateway.arbiter.units import Replica


class Events:
    """The selector, the wake-up pipe and the control connections of one arbiter."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.wake_r = self.wake_w = -1
        self.control: socket.socket | None = None

    def open(self, control_sock: socket.socket, notify_sock: socket.socket) -> None:
        """Watch the control and notify sockets; route signal wake-ups into the wait."""
        self.control = control_sock
        self.selector.register(control_sock, selectors.EVENT_READ, ("control", None))
        self.selector.register(notify_sock, selectors.EVENT_READ, ("notify", None))
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        signal.set_wakeup_fd(self.wake_w)

    def close(self) -> None:
        """Stop routing signals here and close the wake-up pipe."""
        signal.set_wakeup_fd(-1)
        if self.wake_r >= 0:
            os.close(self.wake_r)
            os.close(self.wake_w)
            self.wake_r = self.wake_w = -1

    def wake(self) -> None:
        """End the current ``wait`` now (safe from any thread)."""
        try:
            os.write(self.wake_w, b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed at teardown
            pass

    def watch_output(self, replica: Replica) -> None:
        """Report ``("output", replica)`` whenever its child wrote something."""
        child = replica.child
        if child is not None and child.output_fd is not None:
            self.selector.register(child.output_fd, selectors.EVENT_READ, ("output", replica))

    def unwatch_output(self, child: Child) -> None:
        """Stop watching a child's output pipe and close it."""
        fd = child.output_fd
        if fd is not None:
            try:
                self.selector.unregister(fd)
            except (KeyError, ValueError):
                pass
        child.close_output()

    def wait(self, timeout: float) -> list[tuple[str, Any]]:
        """Wait at most ``timeout`` seconds; what the arbiter has to act on."""
        out: list[tuple[str, Any]] = []
        for key, _ in self.selector.select(timeout):
            what, obj = key.data
            if what == "wake":
                self.drain_wake()
            elif what == "control":
                self.accept()
            elif what == "conn":
                request = self.read(obj)
                if request is not None:
                    out.append(("request", (obj, request)))
            else:
                out.append((what, obj))
        return out

    def drain_wake(self) -> None:
        """Empty the wake-up pipe (the wake-up itself was the point)."""
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def accept(self) -> None:
        """Accept a CLI connection on the control socket."""
        assert self.control is not None
        try:
            sock, _ = self.control.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, ("conn", control.Connection(sock)))

    def read(self, conn: control.Connection) -> dict[str, Any] | None:
        """A whole request from ``conn``, or None (not all there yet, or answered as bad)."""
        try:
            request = conn.read_request()
        except BlockingIOError:
            return None
        except (EOFError, OSError, ValueError) as exc:
            self.selector.unregister(conn.sock)
            conn.reply(False, f"bad request: {exc}")
            return None
        if request is not None:
            self.selector.unregister(conn.sock)
        return request
