"""The least a Python front can do on each gateway path: floors the targets are read against.

Nothing here checks, rewrites or protects anything; these are not proxies anyone
should run. They answer one question in the same run as the real paths: how fast
can *any* Python front on the gateway's own server (:mod:`bench.serve`) be on
this machine?

- ``bare_proxy`` forwards the request line to ``FLOOR_UPSTREAM`` over one
  keep-alive ``http.client`` connection per thread and returns status and body.
  It is the floor of the ``http`` backend.
- ``bare_mdp`` sends the body ``Hello, World!`` as one RFC 7 client request
  through ``BARE_RELAY`` (``FLOOR_BROKER``) to ``BARE_WORKER``, which echoes it.
  No envelope, no WSGI on the far side: the floor of the ``wsgi`` backend in a
  thread pool.
- ``bare_mdp_asgi`` is the same round trip from the event loop (zmq.asyncio, one
  DEALER per worker process, replies matched by an id frame) through libzmq's
  ``zmq_proxy`` (``C_RELAY``) to an echo: the floor of the ``wsgi`` fast path
  (:mod:`gateway.http.fastpath`) and the compiled broker.

The relay and the echo worker are the scripts the RPC benchmark measures as its
own floor (:mod:`bench.rpc`).
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import zmq

_local = threading.local()
HELLO = b"Hello, World!"


def _upstream() -> http.client.HTTPConnection:
    url = urlsplit(os.environ["FLOOR_UPSTREAM"])
    conn = _local.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    return conn


def bare_proxy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """GET the same path from the upstream and answer with its status and body."""
    path = environ.get("RAW_URI") or environ.get("PATH_INFO") or "/"
    conn = getattr(_local, "conn", None) or _upstream()
    try:
        conn.request(environ["REQUEST_METHOD"], path)
        answer = conn.getresponse()
    except (http.client.HTTPException, OSError):  # the upstream closed an idle keep-alive
        conn.close()
        conn = _upstream()
        conn.request(environ["REQUEST_METHOD"], path)
        answer = conn.getresponse()
    body = answer.read()
    start_response(f"{answer.status} {answer.reason}",
                   [("Content-Type", answer.getheader("Content-Type", "text/plain")),
                    ("Content-Length", str(len(body)))])
    return [body]


def bare_mdp(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """One RFC 7 round trip through the bare relay; the echoed body is the answer."""
    sock = getattr(_local, "sock", None)
    if sock is None:
        sock = _local.sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = 5000
        sock.connect(os.environ["FLOOR_BROKER"])
    sock.send_multipart([b"", b"MDPC01", b"echo", HELLO])
    body = sock.recv_multipart()[-1]
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


_async: dict[str, Any] = {}


async def bare_mdp_asgi(scope: dict[str, Any], receive: Callable[..., Any],
                        send: Callable[..., Any]) -> None:
    """One RFC 7 round trip from the event loop; the echoed body is the answer."""
    import asyncio
    import itertools

    import zmq.asyncio

    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    if not _async:
        sock = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(os.environ["FLOOR_BROKER"])
        waiting: dict[bytes, asyncio.Future[bytes]] = {}

        async def read() -> None:
            while True:
                frames = await sock.recv_multipart()
                fut = waiting.pop(frames[3], None)
                if fut is not None and not fut.done():
                    fut.set_result(frames[-1])

        _async.update(sock=sock, waiting=waiting, ids=itertools.count(),
                      reader=asyncio.get_running_loop().create_task(read()))
    key = b"%d" % next(_async["ids"])
    fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    _async["waiting"][key] = fut
    await _async["sock"].send_multipart([b"", b"MDPC01", b"echo", key, HELLO])
    body = await asyncio.wait_for(fut, 5.0)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
