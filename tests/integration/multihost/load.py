"""Bounded HTTP load for the multi-host test: N threads, at most COUNT requests and SECONDS.

Run inside the client host's namespace; every request becomes one JSON line
in OUT as soon as it ends (so the test can watch progress), with its start
and end times (the machine's clock, the same in every namespace), status,
which gateway HAProxy picked, and the problem+json code of an error::

    python load.py --out load.jsonl --count 4000 --seconds 30 --threads 4 \
        http://10.231.0.40:8080/py2/whoami?ms=40 http://10.231.0.40:8080/py3/whoami?ms=40

``--stop-file``: the load ends early once that file exists.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import threading
import time
import urllib.parse
from typing import Any


def one(conn_box: list[http.client.HTTPConnection | None], url: urllib.parse.SplitResult,
        timeout: float) -> dict[str, object]:
    """One GET; a kept-alive connection closed before any answer is retried once, fresh.

    That is what browsers and urllib3 do (RFC 9112 9.3.1, "retrying requests"):
    the load balancer may close an idle client connection whose server side
    died, and a GET that got no answer there was never processed. The record
    says ``retried`` so the test counts them.
    """
    started = time.time()
    reused = conn_box[0] is not None
    rec = attempt(conn_box, url, timeout)
    if reused and rec["status"] == 0 and rec.get("error") in CLOSED_IDLE:
        rec = attempt(conn_box, url, timeout)
        rec["retried"] = True
    rec["start"] = started
    return rec


# A kept-alive connection the other side closed: no answer came, nothing was processed.
CLOSED_IDLE = ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")


def attempt(conn_box: list[http.client.HTTPConnection | None], url: urllib.parse.SplitResult,
            timeout: float) -> dict[str, object]:
    rec: dict[str, object] = {"url": url.path, "start": time.time()}
    try:
        if conn_box[0] is None:
            conn_box[0] = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        conn = conn_box[0]
        conn.request("GET", url.path + ("?" + url.query if url.query else ""))
        resp = conn.getresponse()
        body = resp.read()
        rec["status"] = resp.status
        rec["server"] = resp.getheader("X-Served-By", "")
        ctype = resp.getheader("Content-Type", "")
        rec["ctype"] = ctype
        if resp.status >= 400 and "json" in ctype:
            try:
                rec["code"] = json.loads(body).get("code", "")
            except ValueError:
                rec["code"] = "?"
        elif resp.status == 200:
            rec["host"] = json.loads(body).get("host", "")
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            conn_box[0] = None
    except (OSError, http.client.HTTPException) as exc:
        rec["status"] = 0
        rec["error"] = type(exc).__name__
        if conn_box[0] is not None:
            conn_box[0].close()
        conn_box[0] = None
    rec["end"] = time.time()
    return rec


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--stop-file", default="")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    urls = [urllib.parse.urlsplit(u) for u in args.urls]
    budget = itertools.count()
    deadline = time.time() + args.seconds
    lock = threading.Lock()
    with open(args.out, "w", encoding="utf-8") as out:
        run(args, urls, budget, deadline, lock, out)
    return 0


def run(args: argparse.Namespace, urls: list[urllib.parse.SplitResult],
        budget: itertools.count[int], deadline: float, lock: threading.Lock,
        out: Any) -> None:
    """Run the threads until the count, the time or the stop file ends them."""

    def worker(index: int) -> None:
        box: list[http.client.HTTPConnection | None] = [None]
        n = index
        while time.time() < deadline and next(budget) < args.count:
            if args.stop_file and os.path.exists(args.stop_file):
                break
            rec = one(box, urls[n % len(urls)], args.timeout)
            n += 1
            with lock:
                out.write(json.dumps(rec) + "\n")
                out.flush()
        if box[0] is not None:
            box[0].close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    raise SystemExit(main())
