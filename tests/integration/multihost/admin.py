"""One admin API call from inside a host: ``python admin.py URL [--post JSON] --token T``.

Prints ``{"status": N, "body": ...}`` (the body parsed as JSON when it is).
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--post", default=None, help="a JSON body: POST instead of GET")
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    data = args.post.encode("utf-8") if args.post is not None else None
    req = urllib.request.Request(args.url, data=data, method="POST" if data else "GET")
    req.add_header("Authorization", f"Bearer {args.token}")
    req.add_header("X-Gateway-Actor", "multihost-test")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    print(json.dumps({"status": status, "body": body}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
