# -*- coding: utf-8 -*-
"""The golden wire vectors hold on this interpreter (2.7 and 3.x): encode, decode, reject."""
from __future__ import absolute_import, division, print_function

import binascii
import os

import pytest

from protocol import codec, vectors
from protocol._compat import PY2, text_type
from protocol.codec import Bytes
from protocol.errors import EnvelopeError

GOOD = vectors.load_good()
BAD = vectors.load_bad()

# Codec gaps the vectors expose. Each entry is strict: when the codec is fixed
# the test passes unexpectedly and fails, so remove the entry then.
KNOWN_GAPS = {}  # name -> (applies, reason): vectors the codec is known to mishandle


def _ids(items):
    return [v[u"name"] for v in items]


def _gap(name):
    when, reason = KNOWN_GAPS.get(name, (False, ""))
    if when:
        return pytest.mark.xfail(strict=True, reason=reason, raises=AssertionError)
    return None


def _params(items):
    out = []
    for vector in items:
        mark = _gap(vector[u"name"])
        out.append(pytest.param(vector, id=vector[u"name"], marks=[mark] if mark else []))
    return out


def test_vector_files_are_well_formed():
    names = _ids(GOOD) + _ids(BAD)
    assert len(GOOD) >= 15 and len(BAD) >= 30
    assert len(set(names)) == len(names)
    for vector in GOOD:
        assert set(vector) - {u"schema", u"topic"} == {
            u"name", u"description", u"envelope", u"value", u"frames"}
        assert vector[u"envelope"][u"v"] == codec.VERSION
        assert len(vector[u"frames"]) >= 2
    for vector in BAD:
        assert set(vector) == {u"name", u"description", u"frames", u"error", u"required"}
        assert vector[u"error"]
    files = sorted(f for f in os.listdir(vectors.VECTOR_DIR) if f.endswith(".json"))
    assert files == sorted([u"good-%s.json" % n for n in _ids(GOOD)]
                           + [u"bad-%s.json" % n for n in _ids(BAD)])


def test_vectors_cover_the_required_cases():
    names = set(_ids(GOOD))
    for needed in ("call-plain", "text-unicode", "bytes-every-value", "int-big", "float-repr",
                   "nesting-deep", "nesting-deep-bytes", "dollar-keys", "header-dollar-keys",
                   "empty-values", "error-remote",
                   "http-request", "http-response", "event", "http-stream-body"):
        assert needed in names
    bad = set(_ids(BAD))
    for needed in ("header-truncated", "header-bad-utf8", "version-unknown", "deadline-text",
                   "b-out-of-range", "duplicate-key", "nan", "surrogate-lone-high",
                   "base64-unpadded", "too-few-frames", "id-empty", "header-bytes",
                   "header-bytes-ref", "header-tag-unknown"):
        assert needed in bad


@pytest.mark.parametrize("vector", _params(GOOD))
def test_encoding_gives_the_golden_frames(vector):
    frames = vectors.encode_good(vector)
    assert [binascii.hexlify(f).decode("ascii") for f in frames] == vector[u"frames"]


@pytest.mark.parametrize("vector", _params(GOOD))
def test_decoding_gives_the_envelope_and_value(vector):
    header, value = vectors.decode_good(vector)
    # Canonical bytes, not ==, so that -0.0 vs 0.0 and 1 vs 1.0 vs true all differ.
    assert header == codec.dumps(vector[u"envelope"])
    assert value == codec.dumps(vector[u"value"])


@pytest.mark.parametrize("vector", _params(GOOD))
def test_decoded_types_are_text_and_bytes(vector):
    env = codec.decode(vectors.golden_frames(vector))
    stack = [env.payload]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            assert all(isinstance(k, text_type) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, (bytes, bytearray)):
            assert isinstance(item, Bytes)
    assert isinstance(env.id, text_type)


@pytest.mark.parametrize("vector", _params(BAD))
def test_bad_frames_raise_envelope_error(vector):
    message = vectors.decode_bad(vector)  # the EnvelopeError's message, None if none raised
    if message is None:
        assert not vector[u"required"], "decoded without an error"
    else:
        assert vector[u"error"] in message


def test_bad_vectors_raise_nothing_but_envelope_error():
    for vector in BAD:
        try:
            codec.decode(vectors.golden_frames(vector))
        except EnvelopeError:
            pass


def test_committed_vectors_match_the_generator():
    good, bad = vectors.build()
    assert sorted(codec.dumps(v) for v in good) == sorted(codec.dumps(v) for v in GOOD)
    assert sorted(codec.dumps(v) for v in bad) == sorted(codec.dumps(v) for v in BAD)


def test_frame_numbering_ignores_insertion_order():
    vector = next(v for v in GOOD if v[u"name"] == u"bytes-frame-order")
    payload = codec.from_json(vector[u"value"])
    backwards = dict(sorted(payload.items(), reverse=True))
    env = codec.Envelope(u"result", id=vector[u"envelope"][u"id"], payload=backwards)
    assert codec.encode(env) == vectors.golden_frames(vector)


@pytest.mark.parametrize("vector", _params([v for v in GOOD if u"schema" in v]))
def test_declared_bytes_accept_a_plain_str_on_py2(vector):
    """On 2.7 a non-ASCII str is fine where the contract declares bytes."""
    payload = codec.from_json(vector[u"value"])
    plain = {k: bytes(v) if isinstance(v, Bytes) else v for k, v in payload.items()}
    if PY2:
        assert any(type(v) is bytes for v in plain.values())
    fields = {str(k): v for k, v in vector[u"envelope"].items() if k != u"v"}
    env = codec.Envelope(payload=plain, **fields)
    assert codec.encode(env, vector[u"schema"]) == vectors.golden_frames(vector)


def test_event_topic_is_utf8_text():
    events = [v for v in GOOD if u"topic" in v]
    assert events
    for vector in events:
        assert vector[u"envelope"][u"kind"] == u"event"
        assert vector[u"topic"].encode("utf-8").decode("utf-8") == vector[u"topic"]


def test_vectors_check_command_reports_only_known_gaps():
    problems = vectors.check()
    gaps = {name for name, (when, _) in KNOWN_GAPS.items() if when}
    assert {p.split(u":")[0] for p in problems} == gaps


# ------------------------------------------------- encoder-side gaps --
# The decoder rejects these; a conforming sender must not produce them (SPEC 3.2, 4.7).

def _encode_error(env):
    """The EnvelopeError message encoding ``env`` raises, or None if it encodes."""
    try:
        codec.encode(env)
    except EnvelopeError as exc:
        return exc.message
    return None


@pytest.mark.parametrize("payload", [u"a\ud800", {u"\udc00": 1}], ids=["value", "key"])
def test_encoding_a_lone_surrogate_is_an_envelope_error(payload):
    assert _encode_error(codec.Envelope(u"result", id=vectors.ID, payload=payload)) is not None


@pytest.mark.parametrize("fields", [{"deadline": 1.5}, {"rid": Bytes(b"x")}],
                         ids=["float-deadline", "bytes-rid"])
def test_encoding_a_header_the_decoder_rejects_fails_early(fields):
    assert _encode_error(codec.Envelope(u"result", id=vectors.ID, **fields)) is not None
