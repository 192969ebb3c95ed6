"""``python -m gateway.broker --bind ENDPOINT [...]``: run the broker as its own process.

::

    python -m gateway.broker --bind tcp://127.0.0.1:5555 \\
        --events-pub tcp://127.0.0.1:5556 --events-sub tcp://127.0.0.1:5557

Prints ``broker ready <endpoints>`` on stdout once bound. SIGTERM or SIGINT
stops it (status 0). A refused bind exits with status 2, and so does a
non-loopback ``--bind`` without ``--curve-secret`` (a zmq.auth ``.key_secret``
file). A loop that dies of anything else is logged and exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from gateway.broker.broker import Broker, BrokerConfig
from gateway.broker.memory import fixed_mmap_threshold
from gateway.broker.outlier import OutlierPolicy
from gateway.broker.security import CurveKeys
from gateway.errors import BrokerError

log = logging.getLogger("gateway.broker")


def parse_args(argv: list[str] | None) -> BrokerConfig:
    """Build a :class:`BrokerConfig` from the command line."""
    parser = argparse.ArgumentParser(prog="python -m gateway.broker")
    parser.add_argument("--bind", action="append", default=[], metavar="ENDPOINT",
                        help="endpoint for clients and workers (repeatable); "
                             "CURVE when --curve-secret is given")
    parser.add_argument("--bind-local", action="append", default=[], metavar="ENDPOINT",
                        help="loopback or ipc endpoint kept plain even with --curve-secret "
                             "(repeatable; SPEC 2.15)")
    parser.add_argument("--events-local", action="store_true",
                        help="keep the events endpoints plain (loopback) with --curve-secret")
    parser.add_argument("--heartbeat-ms", type=int, default=1000)
    parser.add_argument("--default-timeout-ms", type=int, default=30_000,
                        help="deadline for requests that carry none (raw MDP clients)")
    parser.add_argument("--max-msg-size", type=int, default=BrokerConfig.max_msg_size)
    parser.add_argument("--events-pub", metavar="ENDPOINT", help="XSUB: publishers connect")
    parser.add_argument("--events-sub", metavar="ENDPOINT", help="XPUB: subscribers connect")
    parser.add_argument("--curve-secret", metavar="FILE", help="broker .key_secret certificate")
    parser.add_argument("--curve-clients", metavar="DIR", help="allowed client public keys")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--splits", metavar="FILE",
                        help="split file of migrated services, re-read on mmi.split (SPEC 2.14)")
    parser.add_argument("--shadow-max-inflight", type=int,
                        default=BrokerConfig.shadow_max_inflight,
                        help="shadow copies out at once per service; more are skipped")
    parser.add_argument("--shadow-timeout-ms", type=int, default=BrokerConfig.shadow_timeout_ms,
                        help="the longest deadline of a shadow copy")
    parser.add_argument("--shadow-pub", metavar="ENDPOINT",
                        help="XPUB where shadow pairs are published for the comparer")
    parser.add_argument("--shadow-pub-hwm", type=int, default=BrokerConfig.shadow_pub_hwm,
                        help="pairs queued for a slow subscriber before they are dropped")
    parser.add_argument("--startup-grace-ms", type=int, default=BrokerConfig.startup_grace_ms,
                        help="until up this long, requests for never-seen services wait")
    limits = parser.add_argument_group("memory bounds (SPEC 2.5)")
    limits.add_argument("--max-deadline-ms", type=int, default=BrokerConfig.max_deadline_ms,
                        help="a deadline further out is taken as now + this")
    limits.add_argument("--max-queued", type=int, default=BrokerConfig.max_queued,
                        help="waiting requests per service; beyond it: too_busy")
    limits.add_argument("--max-queued-total", type=int, default=BrokerConfig.max_queued_total,
                        help="waiting requests over all services")
    limits.add_argument("--max-queued-bytes", type=int, default=BrokerConfig.max_queued_bytes,
                        help="body bytes of the waiting requests per service")
    limits.add_argument("--max-queued-bytes-total", type=int,
                        default=BrokerConfig.max_queued_bytes_total,
                        help="body bytes of the waiting requests over all services")
    default = OutlierPolicy()
    outlier = parser.add_argument_group("outlier ejection (SPEC 2.13)")
    outlier.add_argument("--outlier-consecutive", type=int, default=default.consecutive,
                         help="failures in a row that eject a worker; 0 disables")
    outlier.add_argument("--outlier-base-ejection-ms", type=int,
                         default=default.base_ejection_ms,
                         help="an ejection lasts this x the times the worker was ejected")
    outlier.add_argument("--outlier-max-ejection-ms", type=int,
                         default=default.max_ejection_ms, help="the longest ejection")
    outlier.add_argument("--outlier-max-ejection-percent", type=int,
                         default=default.max_ejection_percent,
                         help="share of a service's workers that may be ejected at once")
    outlier.add_argument("--outlier-count-errors", action="store_true",
                         help="an 'internal' error reply is a failure too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.bind and not args.bind_local:
        parser.error("the following arguments are required: --bind")
    if args.heartbeat_ms <= 0 or args.default_timeout_ms <= 0:
        parser.error("--heartbeat-ms and --default-timeout-ms must be positive")
    if args.startup_grace_ms < 0:
        parser.error("--startup-grace-ms must not be negative")
    if min(args.max_deadline_ms, args.max_queued, args.max_queued_total,
           args.max_queued_bytes, args.max_queued_bytes_total) <= 0:
        parser.error("--max-deadline-ms and the --max-queued* limits must be positive")
    if args.outlier_consecutive < 0 or not 0 <= args.outlier_max_ejection_percent <= 100:
        parser.error("--outlier-consecutive must not be negative and "
                     "--outlier-max-ejection-percent must be within 0..100")
    if args.outlier_base_ejection_ms <= 0 or args.outlier_max_ejection_ms <= 0:
        parser.error("--outlier-base-ejection-ms and --outlier-max-ejection-ms must be positive")
    keys = CurveKeys.load(args.curve_secret, args.curve_clients) if args.curve_secret else None
    return BrokerConfig(endpoints=tuple(args.bind), local_endpoints=tuple(args.bind_local),
                        events_local=args.events_local, heartbeat_ms=args.heartbeat_ms,
                        default_timeout_ms=args.default_timeout_ms,
                        max_msg_size=args.max_msg_size, events_pub=args.events_pub,
                        events_sub=args.events_sub, curve=keys,
                        startup_grace_ms=args.startup_grace_ms,
                        max_deadline_ms=args.max_deadline_ms, max_queued=args.max_queued,
                        max_queued_total=args.max_queued_total,
                        max_queued_bytes=args.max_queued_bytes,
                        max_queued_bytes_total=args.max_queued_bytes_total,
                        outliers=OutlierPolicy(args.outlier_consecutive,
                                               args.outlier_base_ejection_ms,
                                               args.outlier_max_ejection_ms,
                                               args.outlier_max_ejection_percent,
                                               args.outlier_count_errors),
                        splits_file=args.splits,
                        shadow_max_inflight=args.shadow_max_inflight,
                        shadow_timeout_ms=args.shadow_timeout_ms,
                        shadow_pub=args.shadow_pub, shadow_pub_hwm=args.shadow_pub_hwm)


def main(argv: list[str] | None = None) -> int:
    """Run the broker in the foreground until SIGTERM/SIGINT.

    Exit status: 0 after a signal, 2 when the configuration or a bind is
    refused, 1 when the loop dies of anything else (logged with its traceback).
    """
    fixed_mmap_threshold()  # large frames go back to the kernel when freed (SPEC 2.5)
    try:
        broker = Broker(parse_args(argv))
    except BrokerError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        broker.stop(timeout=0)

    def on_ready() -> None:
        print("broker ready " + " ".join(broker.endpoints), flush=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        broker.run(on_ready)
    except BrokerError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 2
    except Exception:
        log.critical("broker loop died", exc_info=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
