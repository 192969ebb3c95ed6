"""Helpers for test_spec_rules, run under 2.7 or 3.x.

    python -m tests.integration.rpc.spec_rules_main mirror ENDPOINT SERVICE
        a raw MDP/0.1 worker that answers every REQUEST with the request's own body
    python -m tests.integration.rpc.spec_rules_main call ENDPOINT SERVICE METHOD PARAMS_JSON
        one Client.call; prints {"result": view} or {"error": wire, "class": name}
"""
# This file also runs on Python 2.7.
# ruff: noqa: UP010, UP025
from __future__ import absolute_import, division, print_function

import json
import sys

import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import ProtocolError


def mirror(endpoint, service):
    """Echo each request body back as the reply, heartbeating while idle."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    sock.send_multipart(mdp.worker_ready(service.encode("utf-8")))
    interval = mdp.DEFAULT_INTERVAL_MS
    while True:
        if not sock.poll(interval // 2):
            sock.send_multipart(mdp.heartbeat())
            continue
        command, rest = mdp.split_worker(sock.recv_multipart())
        if command == mdp.REQUEST:
            client, body = mdp.split_address(rest)
            sock.send_multipart(mdp.worker_reply(client, body))
        elif command == mdp.HEARTBEAT:
            interval = mdp.parse_interval(rest) or interval
            sock.send_multipart(mdp.heartbeat())
        elif command == mdp.DISCONNECT:
            return 1


def call(endpoint, service, method, params):
    """Call once and print the outcome as one JSON line."""
    client = Client(endpoint, timeout=10.0)
    try:
        out = {u"result": codec.to_json(client.call(service, method, params))}
    except ProtocolError as exc:
        out = {u"error": exc.to_wire(), u"class": type(exc).__name__}
    finally:
        client.close()
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "mirror":
        sys.exit(mirror(sys.argv[2], sys.argv[3]))
    sys.exit(call(sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])))
