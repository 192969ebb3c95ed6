"""Golden wire vectors: their generator, loader and checker (SPEC appendix A).

The cases themselves are defined in :mod:`protocol.vectors.definitions`.

The JSON files in this package directory are the reference; this module
only (re)writes them and checks an interpreter against them::

    python -m protocol.vectors --write    # regenerate protocol/vectors/*.json
    python -m protocol.vectors --check    # exit 1 when this interpreter disagrees
    python -m protocol.vectors --report   # JSON report of what this interpreter does

    from protocol import vectors
    for vector in vectors.load_good():
        assert vectors.encode_good(vector) == vectors.golden_frames(vector)

A good vector is ``{"name", "description", "envelope", "value", "schema"?,
"topic"?, "frames"}``: encoding ``envelope`` + ``value`` (both as JSON-only
views, so ``$`` keys are written ``$$`` in either)
gives exactly ``frames`` (hex), and decoding ``frames`` gives them back. A
bad vector is ``{"name", "description", "frames", "error", "required"}``:
decoding must raise EnvelopeError whose message contains ``error``.
"""
from __future__ import absolute_import, division, print_function

import binascii
import glob
import io
import json
import os
import sys

from protocol import codec
from protocol._compat import text_type
from protocol.errors import EnvelopeError
from protocol.vectors.definitions import (  # noqa: F401 - public names
    BYTES,
    DEADLINE,
    ID,
    RID,
    TEXT,
    H,
    _bad,
    _good,
    _good_cancel,
    _h,
    _nest,
)

MYPY = False
if MYPY:  # pragma: no cover - read by the type checker only
    from typing import Any, Dict, List, Optional, Tuple  # noqa: F401

VECTOR_DIR = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------ generation --

def build():
    # type: () -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]
    """Compute (good, bad) vector dicts from the definitions with this codec."""
    good = []
    for name, description, header, payload, schema, topic in _good() + _good_cancel():
        fields = dict((str(k), v) for k, v in header.items())
        env = codec.Envelope(**fields)
        env.payload = codec.from_json(codec.to_json(payload, schema))
        vector = {u"name": name, u"description": description,
                  u"envelope": codec.to_json(env.header()),
                  u"value": codec.to_json(payload, schema),
                  u"frames": _h(*codec.encode(env, schema))}
        if schema is not None:
            vector[u"schema"] = schema
        if topic is not None:
            vector[u"topic"] = topic
        good.append(vector)
    bad = [{u"name": name, u"description": description, u"frames": _h(*frames),
            u"error": fragment, u"required": required}
           for name, description, frames, fragment, required in _bad()]
    return good, bad


def _text(vector):
    # type: (Dict[str, Any]) -> str
    out = json.dumps(vector, indent=1, sort_keys=True, ensure_ascii=False,
                     separators=(",", ": "))
    if not isinstance(out, text_type):  # pragma: no cover - py2 returns str when ASCII
        out = out.decode("utf-8")
    return out + u"\n"


def write(directory=VECTOR_DIR):
    # type: (str) -> List[str]
    """Rewrite every vector file under ``directory``; return the paths written."""
    good, bad = build()
    paths = []
    for prefix, vectors in ((u"good", good), (u"bad", bad)):
        for vector in vectors:
            path = os.path.join(directory, u"%s-%s.json" % (prefix, vector[u"name"]))
            with io.open(path, "w", encoding="utf-8") as fh:
                fh.write(_text(vector))
            paths.append(path)
    return paths


# --------------------------------------------------------------- loading --

def _load(prefix, directory):
    # type: (str, str) -> List[Dict[str, Any]]
    out = []
    for path in sorted(glob.glob(os.path.join(directory, prefix + "-*.json"))):
        with io.open(path, encoding="utf-8") as fh:
            out.append(json.loads(fh.read()))
    return out


def load_good(directory=VECTOR_DIR):
    # type: (str) -> List[Dict[str, Any]]
    """The committed good vectors, sorted by file name."""
    return _load("good", directory)


def load_bad(directory=VECTOR_DIR):
    # type: (str) -> List[Dict[str, Any]]
    """The committed bad vectors, sorted by file name."""
    return _load("bad", directory)


def golden_frames(vector):
    # type: (Dict[str, Any]) -> List[bytes]
    """A vector's frames as bytes."""
    return [binascii.unhexlify(f.encode("ascii")) for f in vector[u"frames"]]


def encode_good(vector):
    # type: (Dict[str, Any]) -> List[bytes]
    """Encode a good vector's envelope and JSON-only value with this codec."""
    header = codec.decode_header(codec.dumps(vector[u"envelope"]))  # unescapes $$ keys
    fields = dict((str(k), v) for k, v in header.items() if k != u"v")
    env = codec.Envelope(payload=codec.from_json(vector[u"value"]), **fields)
    return codec.encode(env, vector.get(u"schema") or {})


def decode_good(vector):
    # type: (Dict[str, Any]) -> Tuple[bytes, bytes]
    """Decode a good vector's frames; return canonical (header, value) JSON bytes."""
    env = codec.decode(golden_frames(vector))
    return codec.dumps(codec.to_json(env.header())), codec.dumps(codec.to_json(env.payload,
                                                                vector.get(u"schema") or {}))


def decode_bad(vector):
    # type: (Dict[str, Any]) -> Optional[str]
    """Decode a bad vector's frames: the EnvelopeError message, or None if it decoded."""
    try:
        codec.decode(golden_frames(vector))
    except EnvelopeError as exc:
        return exc.message
    return None


def report():
    # type: () -> Dict[str, Any]
    """What this interpreter does with every committed vector (used across interpreters)."""
    good = {}
    for vector in load_good():
        entry = {u"frames": _h(*encode_good(vector))}  # type: Dict[str, Any]
        header, value = decode_good(vector)
        entry[u"header"] = header.decode("utf-8")
        entry[u"value"] = value.decode("utf-8")
        good[vector[u"name"]] = entry
    bad = dict((v[u"name"], decode_bad(v)) for v in load_bad())
    return {u"python": u"%d.%d" % sys.version_info[:2], u"good": good, u"bad": bad}


def check():
    # type: () -> List[str]
    """Every disagreement between this interpreter and the committed vectors."""
    problems = []
    for vector in load_good():
        name = vector[u"name"]
        if encode_good(vector) != golden_frames(vector):
            problems.append(u"%s: encoding differs" % name)
        header, value = decode_good(vector)
        if header != codec.dumps(vector[u"envelope"]) or value != codec.dumps(vector[u"value"]):
            problems.append(u"%s: decoding differs" % name)
    for vector in load_bad():
        message = decode_bad(vector)
        if message is None:
            if vector[u"required"]:
                problems.append(u"%s: decoded without error" % vector[u"name"])
        elif vector[u"error"] not in message:
            problems.append(u"%s: error %r lacks %r" % (vector[u"name"], message,
                                                        vector[u"error"]))
    return problems


def main(argv=None):
    # type: (Optional[List[str]]) -> int
    """Command line: --write, --check or --report."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        for path in write():
            print(os.path.relpath(path))
        return 0
    if args == ["--check"]:
        problems = check()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    if args == ["--report"]:
        print(json.dumps(report(), sort_keys=True))
        return 0
    print("usage: python -m protocol.vectors --write | --check | --report", file=sys.stderr)
    return 2
