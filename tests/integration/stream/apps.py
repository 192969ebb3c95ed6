# ruff: noqa: UP004, UP010, UP031, C402
"""WSGI apps that stream on cue, for the streaming tests (Python 2.7 and 3.x, one source).

Every app logs what it sees to the file named by ``$STREAM_LOG`` (one line per
event, appended, so a test can wait on it):

- ``/hello``: a short complete answer.
- ``/gated?gate=PATH``: yields ``1``, then waits until ``PATH`` exists (the test
  creates it once it has read byte 1), then yields ``2``. Time to first byte
  shows in the order: byte 1 reached the client before the app made byte 2.
- ``/drip?n=N&gap=S&tag=T``: N one-byte chunks, S seconds apart; logs
  ``start T`` when called and ``close T`` when its iterable is closed.
- ``/ticks?n=N&gap=S&stall=K&pause=P``: N chunks ``tick<i>\\n`` S seconds
  apart, waiting P seconds before chunk K (a stall).
- ``/bytes?n=N``: N one-byte chunks as fast as the server takes them.
"""
from __future__ import absolute_import, division, print_function

import os
import time

try:
    from urllib.parse import parse_qs
except ImportError:  # Python 2.7
    from urlparse import parse_qs  # type: ignore


def _log(line):
    # type: (str) -> None
    path = os.environ.get("STREAM_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write("%d %s\n" % (os.getpid(), line))


def _query(environ):
    # type: (dict) -> dict
    return dict((k, v[0]) for k, v in parse_qs(environ.get("QUERY_STRING", "")).items())


class Drip(object):
    """A body of one-byte chunks that records close() (PEP 3333) in the log."""

    def __init__(self, n, gap, tag):
        # type: (int, float, str) -> None
        self.n, self.gap, self.tag = n, gap, tag

    def __iter__(self):
        for i in range(self.n):
            if i:
                time.sleep(self.gap)  # the app's own pace, not a test's synchronisation
            yield b"."

    def close(self):
        # type: () -> None
        _log("close %s" % self.tag)


def _gated(gate):
    # type: (str) -> object
    yield b"1"
    deadline = time.time() + 30
    while not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.01)
    yield b"2" if os.path.exists(gate) else b"gate never opened"


def _ticks(n, gap, stall, pause):
    # type: (int, float, int, float) -> object
    for i in range(n):
        if i:
            time.sleep(pause if i == stall else gap)
        yield ("tick%d\n" % i).encode("ascii")


def app(environ, start_response):
    """Dispatch on PATH_INFO; see the module docstring."""
    path = environ.get("PATH_INFO", "")
    q = _query(environ)
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [b"hello"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if path == "/gated":
        return _gated(q["gate"])
    if path == "/drip":
        tag = q.get("tag", "")
        _log("start %s" % tag)
        return Drip(int(q.get("n", "150")), float(q.get("gap", "0.2")), tag)
    if path == "/bytes":
        return (b"x" for _ in range(int(q.get("n", "102400"))))
    if path == "/ticks":
        return _ticks(int(q.get("n", "10")), float(q.get("gap", "0.1")),
                      int(q.get("stall", "-1")), float(q.get("pause", "0")))
    return [b"no such path"]
