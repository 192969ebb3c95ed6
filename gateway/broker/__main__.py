"""``python -m gateway.broker --bind ENDPOINT [...]``: run the broker as its own process.

::

    python -m gateway.broker --bind tcp://127.0.0.1:5555 \\
        --events-pub tcp://127.0.0.1:5556 --events-sub tcp://127.0.0.1:5557

Prints ``broker ready <endpoints>`` on stdout once bound. SIGTERM or SIGINT
stops it. A non-loopback ``--bind`` needs ``--curve-secret`` (a zmq.auth
``.key_secret`` file) or the broker refuses to start and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from gateway.broker.broker import Broker, BrokerConfig
from gateway.broker.security import CurveKeys
from gateway.errors import BrokerError


def parse_args(argv: list[str] | None) -> BrokerConfig:
    """Build a :class:`BrokerConfig` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m gateway.broker")
    parser.add_argument("--bind", action="append", required=True, metavar="ENDPOINT",
                        help="endpoint for clients and workers (repeatable)")
    parser.add_argument("--heartbeat-ms", type=int, default=1000)
    parser.add_argument("--default-timeout-ms", type=int, default=30_000,
                        help="deadline for requests that carry none (raw MDP clients)")
    parser.add_argument("--max-msg-size", type=int, default=BrokerConfig.max_msg_size)
    parser.add_argument("--events-pub", metavar="ENDPOINT", help="XSUB: publishers connect")
    parser.add_argument("--events-sub", metavar="ENDPOINT", help="XPUB: subscribers connect")
    parser.add_argument("--curve-secret", metavar="FILE", help="broker .key_secret certificate")
    parser.add_argument("--curve-clients", metavar="DIR", help="allowed client public keys")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.heartbeat_ms <= 0 or args.default_timeout_ms <= 0:
        parser.error("--heartbeat-ms and --default-timeout-ms must be positive")
    keys = CurveKeys.load(args.curve_secret, args.curve_clients) if args.curve_secret else None
    return BrokerConfig(endpoints=tuple(args.bind), heartbeat_ms=args.heartbeat_ms,
                        default_timeout_ms=args.default_timeout_ms,
                        max_msg_size=args.max_msg_size, events_pub=args.events_pub,
                        events_sub=args.events_sub, curve=keys)


def main(argv: list[str] | None = None) -> int:
    """Run the broker in the foreground until SIGTERM/SIGINT."""
    try:
        broker = Broker(parse_args(argv))
    except BrokerError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        broker.stop(timeout=0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    broker.start()
    print("broker ready " + " ".join(broker.endpoints), flush=True)
    while broker._thread is not None and broker._thread.is_alive():
        broker._thread.join(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
