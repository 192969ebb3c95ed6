# ruff: noqa: UP010, UP025, UP031 - this file also runs on Python 2.7
"""A tiny HTTP/1.1 service on an inherited listening socket, for the arbiter's tests (2.7 and 3).

::

    python fdhttp.py --fd 5 --name py2      # GET any path -> {"impl": "py2", "pid": ...}

SIGTERM drains: the listening socket is closed (the arbiter keeps its own
copy, so new connections wait for the next replica instead of being
refused), requests in flight finish, further requests on kept-alive
connections are answered with ``Connection: close``, and the process exits
once no request is running (or after ``--drain`` seconds).
"""
from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

try:
    from BaseHTTPServer import BaseHTTPRequestHandler, HTTPServer
    from SocketServer import ThreadingMixIn
except ImportError:
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from socketserver import ThreadingMixIn

STATE = {"draining": False, "active": 0, "name": u"?", "delay": 0.0}
LOCK = threading.Lock()
IDLE = threading.Condition(LOCK)  # notified whenever a request ends


class Handler(BaseHTTPRequestHandler):
    """Answers every GET with the implementation's name and pid."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        # type: () -> None
        with LOCK:
            STATE["active"] += 1
        try:
            if STATE["delay"]:
                time.sleep(STATE["delay"])
            body = json.dumps({u"impl": STATE["name"], u"pid": os.getpid(),
                               u"path": self.path}).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if STATE["draining"]:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        finally:
            with LOCK:
                STATE["active"] -= 1
                IDLE.notify_all()

    def log_message(self, fmt, *args):
        # type: (str, object) -> None
        pass


class Server(ThreadingMixIn, HTTPServer):
    """Threaded, on a socket it did not bind."""

    daemon_threads = True


def main():
    # type: () -> int
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--name", default="?")
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    STATE["name"] = args.name
    STATE["delay"] = args.delay
    sock = socket.fromfd(args.fd, socket.AF_INET, socket.SOCK_STREAM)
    os.close(args.fd)
    server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket = sock
    stop = threading.Event()

    def on_term(signum, frame):
        # type: (int, object) -> None
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    print("serving %s on fd %d" % (args.name, args.fd))
    sys.stdout.flush()
    while not stop.wait(0.2):
        pass
    STATE["draining"] = True
    server.shutdown()
    sock.close()
    deadline = time.time() + args.drain
    # The drain policy: a kept-alive client gets a moment to send one more request
    # (answered with Connection: close), then in-flight requests finish, up to --drain.
    time.sleep(min(0.5, args.drain))
    with IDLE:
        while STATE["active"] and time.time() < deadline:
            IDLE.wait(deadline - time.time())
    print("drained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
