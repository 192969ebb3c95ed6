"""Peers built on pyzmq-mdp 0.2, a third-party MDP/0.1 implementation (Python 2.7 only).

    python -m tests.integration.rpc.thirdparty_main client ENDPOINT SERVICE JSON
    python -m tests.integration.rpc.thirdparty_main worker ENDPOINT SERVICE

The client sends our envelope as plain frames through ``mdp.client.mdp_request``
and prints the reply frames' JSON; the worker (``mdp.worker.MDPWorker``)
answers a call by reversing its text argument, building the reply with the
plain ``json`` module, not with our codec.
"""
# This file runs on Python 2.7 with pyzmq-mdp installed.
# ruff: noqa: UP010, UP025
from __future__ import absolute_import, division, print_function

import json
import sys
import time

import zmq


def run_client(endpoint, service, text):
    from mdp.client import mdp_request
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.linger = 0
    sock.connect(endpoint)
    header = {u"v": 1, u"kind": u"call", u"id": u"0" * 32, u"method": u"echo",
              u"deadline": int((time.time() + 10) * 1000)}
    frames = [json.dumps(header).encode("utf-8"), json.dumps([text]).encode("utf-8")]
    reply = mdp_request(sock, service.encode("utf-8"), frames, 10.0)
    sock.close()
    if reply is None:
        print(json.dumps({u"error": u"no reply"}))
        return 1
    service_frame, body = reply[0], reply[1:]
    print(json.dumps({u"service": service_frame.decode("utf-8"),
                      u"header": json.loads(body[0].decode("utf-8")),
                      u"payload": json.loads(body[1].decode("utf-8"))}))
    return 0


def run_worker(endpoint, service):
    from mdp.worker import MDPWorker
    from zmq.eventloop.ioloop import IOLoop

    class Reverser(MDPWorker):
        def on_request(self, msg):
            header = json.loads(msg[0].decode("utf-8"))
            params = json.loads(msg[1].decode("utf-8"))
            reply = {u"v": 1, u"kind": u"result", u"id": header[u"id"]}
            self.reply([json.dumps(reply).encode("utf-8"),
                        json.dumps(params[u"text"][::-1]).encode("utf-8")])

    Reverser(zmq.Context.instance(), endpoint, service.encode("utf-8"))
    print("thirdparty worker up")
    sys.stdout.flush()
    IOLoop.instance().start()
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "client":
        sys.exit(run_client(sys.argv[2], sys.argv[3], json.loads(sys.argv[4])))
    sys.exit(run_worker(sys.argv[2], sys.argv[3]))
