"""Ask a broker across the lab whether a service is there, with given keys or none.

Prints ``200``/``404`` (the RFC 8 answer) or ``timeout`` (no handshake: refused)::

    python curvecheck.py tcp://10.231.0.11:5555 info2 [--server-key F --secret F | --stranger]
"""

from __future__ import annotations

import argparse

import zmq
import zmq.auth

from protocol.brokers import load_curve
from protocol.client import Client
from protocol.errors import Timeout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("service")
    parser.add_argument("--server-key", default="")
    parser.add_argument("--secret", default="")
    parser.add_argument("--stranger", action="store_true",
                        help="a fresh key pair no broker admits")
    args = parser.parse_args()
    curve = None
    if args.secret:
        curve = load_curve(args.server_key, args.secret)
    elif args.stranger:
        server, _ = zmq.auth.load_certificate(args.server_key)
        public, secret = zmq.curve_keypair()
        curve = (server, public, secret)
    with Client(args.endpoint, timeout=1.5, curve=curve) as client:
        try:
            print(client.mmi(args.service, timeout=1.5))
        except Timeout:
            print("timeout")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
