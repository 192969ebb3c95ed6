"""Decode-and-re-encode service over stdin/stdout, for cross-interpreter codec tests.

Each input line is JSON ``{"frames": [hex, ...], "schema": {...} or null}``;
each output line is ``{"frames": [hex, ...]}`` with the re-encoded envelope,
or ``{"error": "<class>", "message": "..."}``. Runs on 2.7 and 3.x::

    .venv2/bin/python -m tests.support.codec_echo
"""
from __future__ import absolute_import, division, print_function

import binascii
import json
import sys

from protocol import codec
from protocol.errors import EnvelopeError


def handle(line):
    # type: (str) -> dict
    """Answer one request line."""
    request = json.loads(line)
    frames = [binascii.unhexlify(f) for f in request[u"frames"]]
    try:
        env = codec.decode(frames)
        out = codec.encode(env, request.get(u"schema"))
    except EnvelopeError as exc:
        return {u"error": type(exc).__name__, u"message": exc.message}
    return {u"frames": [binascii.hexlify(f).decode("ascii") for f in out]}


def main():
    # type: () -> None
    """Serve lines until stdin closes."""
    stdin = sys.stdin
    stdout = sys.stdout
    while True:
        line = stdin.readline()
        if not line:
            return
        stdout.write(json.dumps(handle(line)) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
