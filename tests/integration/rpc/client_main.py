"""Call ``echo`` with every shared case and print one JSON-view line per case (2.7 and 3.x).

    python -m tests.integration.rpc.client_main ENDPOINT SERVICE

Output lines: ``{"case": name, "result": <JSON view>}`` or ``{"case", "error"}``.
"""
# This file also runs on Python 2.7.
# ruff: noqa: UP010, UP025
from __future__ import absolute_import, division, print_function

import json
import sys

from protocol import codec
from protocol.client import Client
from protocol.errors import ProtocolError
from tests.integration.rpc.cases import cases


def main(argv):
    endpoint, service = argv[1], argv[2]
    client = Client(endpoint, timeout=30.0)
    try:
        for name, value in cases():
            try:
                out = {u"case": name, u"result": codec.to_json(
                    client.call(service, u"echo", [value]))}
            except ProtocolError as exc:
                out = {u"case": name, u"error": exc.to_wire()}
            line = json.dumps(out, sort_keys=True, ensure_ascii=True)
            sys.stdout.write(line + "\n")
        sys.stdout.write(json.dumps({u"runtime": client.call(service, u"runtime")}) + "\n")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
