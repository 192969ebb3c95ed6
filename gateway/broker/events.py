"""The event bus: an XSUB (publishers connect) / XPUB (subscribers connect) proxy.

::

    proxy = EventProxy("tcp://127.0.0.1:5561", "tcp://127.0.0.1:5562")
    proxy.start()          # a thread; sockets live in it
    ...
    proxy.stop()

Delivery is at most once, as PUB/SUB is: a subscriber gets nothing published
before its subscription reached the proxy, and a subscriber that falls behind
by more than the high-water mark loses messages (XPUB drops, it never blocks
the bus). The proxy only forwards frames; it never parses payloads.
"""

from __future__ import annotations

import threading

import zmq

from gateway.broker.security import CurveKeys, apply_curve, check_bind
from gateway.errors import BrokerError

EVENT_HWM = 10_000


class EventProxy:
    """Runs ``zmq.proxy_steerable`` between an XSUB and an XPUB socket in a thread."""

    def __init__(self, pub_endpoint: str, sub_endpoint: str,
                 ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
                 keys: CurveKeys | None = None) -> None:
        check_bind(pub_endpoint, keys)
        check_bind(sub_endpoint, keys)
        self.pub_endpoint = pub_endpoint
        self.sub_endpoint = sub_endpoint
        self._ctx = ctx or zmq.Context.instance()
        self._keys = keys
        self._control = f"inproc://events-control-{id(self):x}"
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Bind both sockets in the proxy thread; raise if binding failed."""
        self._thread = threading.Thread(target=self._run, name="event-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        xsub = self._ctx.socket(zmq.XSUB)
        xpub = self._ctx.socket(zmq.XPUB)
        control = self._ctx.socket(zmq.PAIR)
        try:
            for sock in (xsub, xpub):
                sock.linger = 0
                sock.sndhwm = sock.rcvhwm = EVENT_HWM
                if self._keys is not None:
                    apply_curve(sock, self._keys)
            for sock, endpoint in ((xsub, self.pub_endpoint), (xpub, self.sub_endpoint),
                                   (control, self._control)):
                try:
                    sock.bind(endpoint)
                except zmq.ZMQError as exc:
                    raise BrokerError(f"cannot bind {endpoint}: {exc}") from exc
        except (zmq.ZMQError, BrokerError) as exc:
            self._error = exc if isinstance(exc, BrokerError) else BrokerError(str(exc))
            self._ready.set()
            for sock in (xsub, xpub, control):
                sock.close(linger=0)
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, None, control)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (xsub, xpub, control):
                sock.close(linger=0)

    def stop(self, timeout: float = 5.0) -> None:
        """Tell the proxy to terminate and wait for its thread."""
        if self._thread is None or not self._thread.is_alive():
            return
        ctl = self._ctx.socket(zmq.PAIR)
        ctl.linger = 0
        try:
            ctl.connect(self._control)
            ctl.send(b"TERMINATE", zmq.NOBLOCK)
        except zmq.ZMQError:
            pass
        finally:
            ctl.close(linger=0)
        self._thread.join(timeout)
