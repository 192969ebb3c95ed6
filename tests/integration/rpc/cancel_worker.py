"""A worker written against SPEC 2.2/2.3/2.11 with plain pyzmq, for Python 2.7 and 3.

    python -m tests.integration.rpc.cancel_worker ENDPOINT SERVICE

It announces ``"cancel": true`` and ``"heartbeat_ms": 250`` in READY, holds every
request it gets without answering, and when the broker forwards a cancel for a
request it holds, answers that request with a final ``cancelled`` error (so the
broker releases its credit). It prints one line per event on stdout:
``request ID`` and ``cancel ID``. It beats every 250 ms and exits when its stdin
closes (the test's end).
"""
# ruff: noqa: UP010, UP025
from __future__ import absolute_import, division, print_function

import json
import select
import sys
import time

import zmq


def main(endpoint, service):
    # type: (str, str) -> None
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    meta = json.dumps({u"cancel": True, u"heartbeat_ms": 250}, sort_keys=True,
                      separators=(",", ":")).encode("ascii")
    sock.send_multipart([b"", b"MDPW01", b"\x01", service.encode("utf-8"), meta])
    held = {}  # (client, id) -> True
    next_beat = time.time() + 0.25
    while True:
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.readline():
            return  # the test closed our stdin
        if sock.poll(50):
            frames = sock.recv_multipart()
            if frames[2] == b"\x02":  # [empty, MDPW01, REQUEST, client, empty, header, ...]
                client, header = frames[3], json.loads(frames[5].decode("utf-8"))
                rid = header[u"id"]
                if header.get(u"kind") == u"cancel":
                    print(u"cancel " + rid)
                    if held.pop((client, rid), None):
                        error = {u"v": 1, u"kind": u"error", u"id": rid, u"error": {
                            u"code": u"cancelled", u"message": u"cancelled by the client"}}
                        head = json.dumps(error, sort_keys=True, separators=(",", ":"))
                        sock.send_multipart([b"", b"MDPW01", b"\x03", client, b"",
                                             head.encode("utf-8"), b"null"])
                else:
                    held[(client, rid)] = True
                    print(u"request " + rid)
                sys.stdout.flush()
            elif frames[2] == b"\x05":
                return
        if time.time() >= next_beat:
            sock.send_multipart([b"", b"MDPW01", b"\x04"])
            next_beat = time.time() + 0.25


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
