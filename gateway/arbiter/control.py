"""The control channel: the CLI talks to a running arbiter over a unix socket.

The socket is ``<run_dir>/arbiter.sock`` (mode 0600, so only the owner, on
this machine). Each request is one JSON object on one line; each reply is one
JSON line, ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "..."}``.

==========================================  =====================================
request                                     result
==========================================  =====================================
``{"cmd": "status"}``                       the status document (see Arbiter.status)
``{"cmd": "reload"}``                       re-read the config and apply it: start
``{"cmd": "reload", "service": "NAME"}``    new replicas, wait until ready, then
                                            drain the old ones; replies when done:
                                            ``{"changed": [...], "failed": [...]}``
``{"cmd": "stop"}``                         ``{"stopping": true}``; graceful stop
==========================================  =====================================

::

    reply = call("/srv/gw/var/run/arbiter.sock", {"cmd": "status"}, timeout=5)
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from gateway.errors import GatewayError

MAX_LINE = 1 << 20


class ControlError(GatewayError):
    """The arbiter could not be reached, or it refused the request."""


def call(path: str, request: dict[str, Any], timeout: float = 10.0) -> Any:
    """Send one request and return its ``result``; ControlError on any failure."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise ControlError(f"no arbiter at {path}: {exc.strerror or exc}") from None
        sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_LINE * 16:
                raise ControlError("reply too large")
    except TimeoutError:
        raise ControlError(f"the arbiter did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise ControlError(f"control channel failed: {exc}") from None
    finally:
        sock.close()
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError("the arbiter closed the channel without a reply") from None
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise ControlError(str(error or "malformed reply"))
    return reply.get("result")


class Connection:
    """One accepted client: buffers its request line, then gets one reply."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def fileno(self) -> int:
        """The socket's descriptor, for the poller."""
        return self.sock.fileno()

    def read_request(self) -> dict[str, Any] | None:
        """Read what is available; the request once a whole line arrived, else None.

        Raises ``ValueError`` for a malformed or oversized request, ``EOFError`` when
        the client went away first.
        """
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buffer += chunk
        if len(self.buffer) > MAX_LINE:
            raise ValueError("request too large")
        if b"\n" not in self.buffer:
            return None
        line = self.buffer.split(b"\n", 1)[0]
        request = json.loads(line)
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            raise ValueError('a request is a JSON object with a "cmd" string')
        return request

    def reply(self, ok: bool, payload: Any) -> None:
        """Send the one reply and close."""
        doc = {"ok": True, "result": payload} if ok else {"ok": False, "error": str(payload)}
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(2.0)
            self.sock.sendall(json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n")
        except OSError:
            pass
        finally:
            self.sock.close()


def listen(path: str) -> socket.socket:
    """Bind the control socket (replacing a stale one) with owner-only permissions."""
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise ControlError(f"an arbiter already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(16)
    sock.setblocking(False)
    return sock
