"""Readiness checks: when may a started replica take traffic?

Each check is one cheap, bounded probe; the arbiter repeats it (off the main
loop, in a small thread pool) until it passes. Kinds, as written in config::

    "none"            ready as soon as it runs
    "tcp:HOST:PORT"   something accepts connections there
    "http:URL"        GET URL answers with a status below 500
    "broker"          the process sent READY=1 on NOTIFY_SOCKET (our protocol workers do once
                      the broker registered them; the arbiter checks that first), else
                      the broker counts more live workers for the service than the arbiter
                      has marked READY (mmi.stats),
                      or, from a broker without mmi.stats, mmi.service (RFC 8) says "200"
    "notify"          the process sent READY=1 on NOTIFY_SOCKET (sd_notify); used for
                      the HTTP front, which also reports each process it booted
                      (WORKER_READY=1, see gateway.http.server)

::

    check = make_check("http:http://127.0.0.1:9001/health", broker="ipc:///run/b.ipc",
                       service="legacy")
    check.probe(pid)      # -> bool, within about 0.5 s
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

import zmq

from gateway.config import parse_listen

PROBE_TIMEOUT = 0.5


class Check:
    """Base class: ``probe(pid)`` is True once the replica is ready."""

    kind = "none"

    def probe(self, pid: int) -> bool:
        """One bounded probe."""
        return True

    def describe(self) -> str:
        """The check as written in config."""
        return self.kind


@dataclass
class TcpCheck(Check):
    """Ready when ``host:port`` accepts a connection."""

    host: str
    port: int
    kind = "tcp"

    def probe(self, pid: int) -> bool:
        """Try one connection."""
        try:
            socket.create_connection((self.host, self.port), timeout=PROBE_TIMEOUT).close()
        except OSError:
            return False
        return True

    def describe(self) -> str:
        """``tcp:HOST:PORT``."""
        return f"tcp:{self.host}:{self.port}"


@dataclass
class HttpCheck(Check):
    """Ready when a GET of ``url`` answers below 500."""

    url: str
    kind = "http"

    def probe(self, pid: int) -> bool:
        """One GET with a short timeout."""
        parts = urllib.parse.urlsplit(self.url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=PROBE_TIMEOUT)
        try:
            target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            conn.request("GET", target,
                         headers={"Connection": "close", "User-Agent": "gateway-arbiter"})
            return conn.getresponse().status < 500
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def describe(self) -> str:
        """``http:URL``."""
        return f"http:{self.url}"


def mmi_service(endpoint: str, service: str, timeout: float = PROBE_TIMEOUT,
                request: bytes = b"mmi.service") -> str | None:
    """Ask the broker at ``endpoint`` about ``service`` (RFC 8); ``"200"``, ``"404"`` or None."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", b"MDPC01", request, service.encode("utf-8")])
        if not sock.poll(int(timeout * 1000)):
            return None
        frames = sock.recv_multipart()
    finally:
        sock.close(linger=0)
    if len(frames) < 4 or frames[1] != b"MDPC01":
        return None
    return str(frames[-1].decode("utf-8", "replace"))


def mmi_stats(endpoint: str, timeout: float = PROBE_TIMEOUT) -> dict[str, Any] | None:
    """The broker's ``mmi.stats`` document, or None if it has none (or did not answer)."""
    answer = mmi_service(endpoint, "", timeout, request=b"mmi.stats")
    if not answer or answer in ("404", "501"):
        return None
    try:
        doc = json.loads(answer)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


@dataclass
class BrokerCheck(Check):
    """Ready when the broker counts more live workers for ``service`` than are READY.

    :meth:`workers` is what the arbiter probes: it compares the count with the
    replicas of the service it already marked READY (any generation) and accepts at
    most the difference, so during a reload a new replica counts only once it
    registered itself, and two replicas probed on the same tick are not both made
    READY by one registration (mmi.service alone says 200 as long as an old one
    lives). Brokers without ``mmi.stats`` fall back to mmi.service.
    """

    endpoint: str
    service: str
    kind = "broker"

    #: What :meth:`workers` answers when the broker cannot count (mmi.service said 200).
    UNCOUNTED = 1 << 30

    def workers(self, pid: int) -> int:
        """Live workers of the service (``UNCOUNTED`` if only mmi.service answered); 0 on error."""
        try:
            stats = mmi_stats(self.endpoint)
            if stats is None:
                return self.UNCOUNTED if mmi_service(self.endpoint, self.service) == "200" else 0
            entry = stats.get("services", {}).get(self.service, {})
            return int(entry.get("workers", 0))
        except (zmq.ZMQError, TypeError, ValueError, AttributeError):
            return 0

    def probe(self, pid: int) -> bool:
        """At least one live worker (the arbiter itself uses :meth:`workers`)."""
        return self.workers(pid) >= 1


@dataclass
class BrokerUpCheck(Check):
    """Ready when the broker answers an mmi.service query at all."""

    endpoint: str
    kind = "broker-up"

    def probe(self, pid: int) -> bool:
        """One mmi.service round trip for a name nobody registers."""
        try:
            return mmi_service(self.endpoint, "mmi.probe") is not None
        except zmq.ZMQError:
            return False


@dataclass
class RedisCheck(Check):
    """Ready when a redis-server on a unix socket answers PING."""

    path: str
    kind = "redis"

    def probe(self, pid: int) -> bool:
        """PING over the unix socket."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(PROBE_TIMEOUT)
        try:
            sock.connect(self.path)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
        finally:
            sock.close()


class NotifyCheck(Check):
    """Ready when the notify socket heard READY=1 from ``pid`` and each of its processes."""

    kind = "notify"

    def __init__(self, notices: dict[int, int], processes: int = 0) -> None:
        self.notices = notices  # pid -> count of ready notices (master + its processes)
        self.processes = processes

    def probe(self, pid: int) -> bool:
        """Read the notices the main loop collected."""
        return self.notices.get(pid, 0) >= 1 + self.processes


def make_check(spec: str, broker: str = "", service: str = "") -> Check:
    """The check for a ``ready = ...`` value of the config."""
    if spec == "broker":
        return BrokerCheck(broker, service)
    if spec == "broker-up":
        return BrokerUpCheck(broker)
    if spec.startswith("redis:"):
        return RedisCheck(spec[6:])
    if spec.startswith("http:"):
        return HttpCheck(spec[5:])
    if spec.startswith("tcp:"):
        addr = parse_listen(spec[4:], "ready")
        if isinstance(addr, str):
            raise ValueError("tcp: readiness needs HOST:PORT")
        return TcpCheck(addr[0], addr[1])
    return Check()
