"""Property tests of the codec, run under Python 2.7 and 3.x alike."""
from __future__ import absolute_import, division, print_function

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.codec import Envelope
from protocol.errors import EnvelopeError
from tests.protocol.strategies import RECORD_SCHEMA, records, values

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
HEADER = b'{"id":"a","kind":"result","v":1}'


@SETTINGS
@given(values)
def test_any_value_round_trips(value):
    frames = codec.encode(Envelope(u"result", id=u"a", payload=value))
    assert codec.decode(frames).payload == value
    # Re-encoding the decoded value gives the same bytes: the encoding is canonical.
    again = Envelope(u"result", id=u"a", payload=codec.decode(frames).payload)
    assert codec.encode(again) == frames


@SETTINGS
@given(records)
def test_contract_values_round_trip_with_their_schema(record):
    payload, frames = codec.pack(record, RECORD_SCHEMA)
    assert codec.loads(payload, frames) == record


@SETTINGS
@given(values)
def test_json_view_round_trips(value):
    assert codec.from_json(codec.to_json(value)) == value


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_random_frames_only_ever_raise_envelope_error(frames):
    try:
        codec.decode(frames)
    except EnvelopeError:
        pass


@SETTINGS
@given(st.binary(max_size=200), st.lists(st.binary(max_size=16), max_size=3))
def test_random_payloads_after_a_good_header_only_raise_envelope_error(payload, extra):
    try:
        env = codec.decode([HEADER, payload] + extra)
    except EnvelopeError:
        return
    assert env.kind == u"result"


@SETTINGS
@given(values, st.data())
def test_truncated_or_flipped_frames_only_raise_envelope_error(value, data):
    frames = codec.encode(Envelope(u"result", id=u"a", payload=value))
    index = data.draw(st.integers(min_value=0, max_value=len(frames) - 1))
    frame = bytearray(frames[index])
    if frame and data.draw(st.booleans()):
        pos = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
        frame[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    else:
        frame = frame[:data.draw(st.integers(min_value=0, max_value=len(frame)))]
    frames[index] = bytes(frame)
    try:
        codec.decode(frames)
    except EnvelopeError:
        pass
