"""Poll URLs from inside a host until each answers 200: when did each first do so?

Prints a JSON list of ``[url, time]`` pairs, time being the machine's clock at
the first 200 (``null`` if none came within ``--timeout``)::

    python probe.py --timeout 10 http://10.231.0.11:8080/py3/whoami ...
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request


def ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            resp.read()
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    first: dict[str, float | None] = dict.fromkeys(args.urls)
    deadline = time.time() + args.timeout
    while time.time() < deadline and any(v is None for v in first.values()):
        for url in [u for u, v in first.items() if v is None]:
            if ok(url):
                first[url] = time.time()
        time.sleep(0.02)  # a poll interval, bounded by the deadline above
    print(json.dumps(sorted(first.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
