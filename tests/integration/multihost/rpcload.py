"""Bounded service-to-service calls over several brokers, as a service on another host makes.

One :class:`protocol.client.Client` given every gateway host's broker (so a
FailoverClient), with CURVE keys; each call is one JSON line in OUT, with its
times, whether it was idempotent, and the error class if it failed::

    python rpcload.py --out rpc.jsonl --brokers tcp://A:5555,tcp://B:5555 \
        --server-key broker.key --secret client.key_secret --seconds 30 --count 3000
"""

from __future__ import annotations

import argparse
import json
import os
import time

from protocol.brokers import load_curve
from protocol.client import Client
from protocol.errors import ProtocolError


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--brokers", required=True)
    parser.add_argument("--server-key", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--stop-file", default="")
    args = parser.parse_args()
    curve = load_curve(args.server_key, args.secret)
    deadline = time.time() + args.seconds
    with Client(args.brokers, timeout=5.0, curve=curve, probe_interval=0.25) as client, \
            open(args.out, "w", encoding="utf-8") as out:
        for n in range(args.count):
            if time.time() > deadline or (args.stop_file and os.path.exists(args.stop_file)):
                break
            idem = n % 2 == 0  # half of the calls may be sent twice, half may not
            rec: dict[str, object] = {"start": time.time(), "idem": idem}
            try:
                rec["host"] = client.call("info2", "whoami", {"ms": 20}, idem=idem)["host"]
                rec["ok"] = True
            except ProtocolError as exc:
                rec["ok"] = False
                rec["error"] = type(exc).__name__
            rec["end"] = time.time()
            out.write(json.dumps(rec) + "\n")
            out.flush()
        failovers = getattr(client, "failovers", 0)
    print(json.dumps({"failovers": failovers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
