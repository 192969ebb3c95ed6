"""Codec throughput against plain ``json.dumps``/``json.loads`` of the same value."""

from __future__ import annotations

import json

from bench.report import Table, paired
from protocol import codec
from protocol.codec import Envelope


def run(smoke: bool) -> list[Table]:
    """Encode and decode a typical call envelope with a 4 KiB bytes field."""
    value = {"code": "def f(x):\n    return x * 2\n" * 20, "lexer": "python",
             "options": {"linenos": True, "style": "default"}, "blob": bytes(range(256)) * 16}
    env = Envelope("call", method="render", deadline=1, payload=value)
    frames = codec.encode(env)
    plain = {k: v for k, v in value.items() if k != "blob"}
    plain_text = json.dumps(plain)
    seconds, rounds = (0.2, 1) if smoke else (3.0, 5)
    rates = paired({
        "json.dumps (baseline)": lambda: json.dumps(plain),
        "codec.encode": lambda: codec.encode(env),
        "json.loads": lambda: json.loads(plain_text),
        "codec.decode": lambda: codec.decode(frames),
    }, seconds, rounds)
    table = Table("codec: envelope with text and a 4 KiB bytes frame", "ops/s",
                  "json.dumps (baseline)")
    for name, value_ in rates.items():
        table.add(name, value_)
    table.notes.append("the codec walks the value to type every field, then emits canonical JSON")
    return [table]
