# -*- coding: utf-8 -*-
"""Codec behaviour on both interpreters: typing rules, round trips and rejections."""
from __future__ import absolute_import, division, print_function

import pytest

from protocol import codec
from protocol._compat import PY2, text_type
from protocol.codec import Bytes, Envelope
from protocol.errors import EnvelopeError

HEADER = b'{"id":"a","kind":"result","v":1}'


def roundtrip(value, schema=None):
    frames = codec.encode(Envelope(u"result", id=u"a", payload=value), schema)
    return codec.decode(frames).payload


def test_text_and_bytes_stay_apart():
    value = {u"t": u"abc", u"b": Bytes(b"abc")}
    back = roundtrip(value)
    assert back == value
    assert isinstance(back[u"t"], text_type)
    assert isinstance(back[u"b"], Bytes)


def test_bytes_travel_as_raw_frames():
    data = Bytes(bytearray(range(256)))
    frames = codec.encode(Envelope(u"result", id=u"a", payload={u"d": data}))
    assert frames[1] == b'{"d":{"$b":0}}'
    assert frames[2] == data


def test_every_byte_value_survives():
    data = Bytes(bytearray(range(256)) * 4)
    backwards = Bytes(data[::-1])  # slicing gives a plain str on Python 2
    assert roundtrip([data, backwards]) == [data, backwards]


def test_non_bmp_and_cjk_text():
    value = u"emoji \U0001F600 \U0001F9D1\u200D\U0001F4BB cjk \u4e2d\u6587 \U00020000"
    frames = codec.encode(Envelope(u"result", id=u"a", payload=value))
    assert frames[1] == b'"' + value.encode("utf-8") + b'"'
    assert roundtrip(value) == value


def test_big_ints_floats_and_booleans():
    value = [2 ** 64 + 1, -(2 ** 100), 0.1, 1e22, 5e-324, -0.0, True, False, None, 0]
    back = roundtrip(value)
    assert back == value
    assert [type(v) for v in back[6:8]] == [bool, bool]
    assert repr(back[5]) == "-0.0"


def test_deep_nesting_round_trips_and_has_a_limit():
    value = u"leaf"
    for _ in range(codec.MAX_DEPTH):
        value = [value]
    assert roundtrip(value) == value
    with pytest.raises(EnvelopeError, match=r"payload(\[0\]){128}: nested deeper than 128"):
        roundtrip([value])


def test_dollar_keys_are_escaped_not_confused_with_tags():
    value = {u"$b": 0, u"$bytes": u"AA==", u"$$x": 1}
    frames = codec.encode(Envelope(u"result", id=u"a", payload=value))
    assert b'"$$b":0' in frames[1] and b'"$$$x":1' in frames[1]
    assert roundtrip(value) == value


def test_canonical_encoding_is_sorted_and_compact():
    frames = codec.encode(Envelope(u"call", id=u"1", method=u"m", deadline=5,
                                   payload={u"b": 1, u"a": [1, 2]}))
    assert frames[0] == b'{"deadline":5,"id":"1","kind":"call","method":"m","v":1}'
    assert frames[1] == b'{"a":[1,2],"b":1}'


def test_header_fields_round_trip():
    env = Envelope(u"call", method=u"m", deadline=1234567890123, rid=u"r-1", shadow=True,
                   idem=True, payload=None)
    assert codec.decode(codec.encode(env)) == env


@pytest.mark.skipif(not PY2, reason="the ambiguous str exists only on Python 2")
def test_py2_non_ascii_str_is_rejected_naming_the_field():
    with pytest.raises(EnvelopeError, match=r"payload\.user\.name: non-ASCII str"):
        codec.encode(Envelope(u"call", method=u"m", payload={u"user": {u"name": b"caf\xc3\xa9"}}))


@pytest.mark.skipif(not PY2, reason="the ambiguous str exists only on Python 2")
def test_py2_ascii_str_is_text_and_declared_bytes_are_bytes():
    schema = {u"type": u"object", u"properties": {
        u"data": {u"type": u"string", u"contentEncoding": u"base64"}}}
    back = roundtrip({u"name": b"plain", u"data": b"\xff\x00"}, schema)
    assert back == {u"name": u"plain", u"data": b"\xff\x00"}
    assert isinstance(back[u"name"], text_type) and isinstance(back[u"data"], Bytes)


def test_schema_rejects_the_wrong_kind_naming_the_field():
    schema = {u"type": u"object", u"properties": {
        u"text": {u"type": u"string"},
        u"data": {u"type": u"string", u"contentEncoding": u"base64"}}}
    with pytest.raises(EnvelopeError, match=r"payload\.text: declared text, got bytes"):
        codec.pack({u"text": Bytes(b"x")}, schema)
    with pytest.raises(EnvelopeError, match=r"payload\.data: declared bytes"):
        codec.pack({u"data": u"x"}, schema)


def test_unencodable_values_are_envelope_errors():
    for bad, fragment in [(float("nan"), "NaN"), (float("inf"), "NaN"), (object(), "cannot encode"),
                          ({1: u"x"}, "keys must be text"), (set([1]), "cannot encode")]:
        with pytest.raises(EnvelopeError, match=fragment):
            codec.pack(bad)


@pytest.mark.parametrize("frames, fragment", [
    ([], "need a header and a payload"),
    ([HEADER], "need a header and a payload"),
    ([b'{"id":"a","kind":"res', b"1"], "header: bad JSON"),
    ([b"\xff\xfe", b"1"], "header: not UTF-8"),
    ([b'{"id":"a","kind":"result","v":2}', b"1"], "unsupported version 2"),
    ([b'{"id":"a","kind":"result","v":true}', b"1"], "unsupported version"),
    ([b'{"id":"a","kind":"result"}', b"1"], "unsupported version None"),
    ([b'{"kind":"result","v":1}', b"1"], "header.id: missing"),
    ([b'{"id":7,"kind":"result","v":1}', b"1"], "header.id: wrong type"),
    ([b'{"deadline":"soon","id":"a","kind":"call","method":"m","v":1}', b"1"], "header.deadline"),
    ([b'{"deadline":true,"id":"a","kind":"call","method":"m","v":1}', b"1"], "header.deadline"),
    ([b'{"id":"a","kind":"call","v":1}', b"1"], "a call needs a method"),
    ([b'{"id":"a","kind":"shout","v":1}', b"1"], "unknown kind"),
    ([b"[]", b"1"], "header: must be a JSON object"),
    ([HEADER, b'{"$b":1}', b"x"], "has no frame"),
    ([HEADER, b'{"$b":"0"}', b"x"], "has no frame"),
    ([HEADER, b'{"$bytes":"AAA"}'], "not canonical base64"),
    ([HEADER, b'{"$bytes":"A*=="}'], "not canonical base64"),
    ([HEADER, b'{"$bytes":5}'], "base64 string"),
    ([HEADER, b'{"$zz":1}'], "unknown tag"),
    ([HEADER, b'{"a":1,"a":2}'], "duplicate key"),
    ([HEADER, b"NaN"], "NaN is not valid JSON"),
    ([HEADER, b"-Infinity"], "not valid JSON"),
    ([HEADER, b"1e400"], "overflows"),
    ([HEADER, b'"\\udc00"'], "lone surrogate"),
    ([HEADER, b'{"\\ud800x":1}'], "lone surrogate"),
    ([HEADER, b"[" * 100000], "nested too deeply"),
    ([HEADER, b"\xc3\x28"], "payload: not UTF-8"),
    ([HEADER, b"1 2"], "payload: bad JSON"),
    ([HEADER, u"x"], "not bytes"),
])
def test_malformed_frames_raise_envelope_error(frames, fragment):
    with pytest.raises(EnvelopeError, match=fragment):
        codec.decode(frames)


def test_oversized_frames_and_too_many_frames():
    with pytest.raises(EnvelopeError, match="exceed the limit"):
        codec.decode([HEADER, b"1" * 101], max_frame=100)
    with pytest.raises(EnvelopeError, match="frames exceed the limit"):
        codec.decode([HEADER, b"1"] + [b""] * codec.MAX_FRAMES)


def test_surrogate_pair_escapes_are_valid_text():
    assert codec.decode([HEADER, b'"\\ud83d\\ude00"']).payload == u"\U0001F600"


def test_json_view_round_trip_and_inline_bytes():
    value = {u"img": Bytes(b"\x89PNG\r\n"), u"name": u"x"}
    view = codec.to_json(value)
    assert view == {u"img": {u"$bytes": u"iVBORw0K"}, u"name": u"x"}
    assert codec.from_json(view) == value


def test_a_bytes_value_is_a_leaf_not_a_nesting_level():
    value = Bytes(b"leaf")
    for _ in range(codec.MAX_DEPTH):
        value = [value]
    frames = codec.encode(Envelope(u"result", id=u"a", payload=value))
    back = codec.decode(frames).payload
    assert codec.encode(Envelope(u"result", id=u"a", payload=back)) == frames  # an echo works
    with pytest.raises(EnvelopeError, match=r"nested deeper than 128"):
        codec.encode(Envelope(u"result", id=u"a", payload=[value]))


def test_an_empty_id_is_refused_on_both_sides():
    with pytest.raises(EnvelopeError, match=r"header\.id: must not be empty"):
        codec.encode(Envelope(u"result", id=u"", payload=1))
    with pytest.raises(EnvelopeError, match=r"header\.id: must not be empty"):
        codec.decode([b'{"id":"","kind":"result","v":1}', b"1"])


def test_header_keys_follow_the_dollar_rule_and_hold_no_bytes():
    env = Envelope(u"error", id=u"a", error={u"code": u"x", u"message": u"$b", u"$ref": u"$"})
    frames = codec.encode(env)
    assert b'"$$ref":"$"' in frames[0] and b'"message":"$b"' in frames[0]
    assert codec.decode(frames).error == env.error
    for bad in (b'{"error":{"code":"x","d":{"$bytes":"YQ=="},"message":""},',
                b'{"error":{"code":"x","d":{"$b":0},"message":""},'):
        with pytest.raises(EnvelopeError, match=r"header: bytes are not allowed"):
            codec.decode([bad + b'"id":"a","kind":"error","v":1}', b"null", b"x"])
    with pytest.raises(EnvelopeError, match=r"header: bytes are not allowed"):
        codec.encode(Envelope(u"error", id=u"a", error={u"code": u"x", u"d": Bytes(b"x")}))


def test_tuple_items_declare_text_and_bytes_by_position():
    schema = {u"type": u"array", u"items": [BYTES, {u"type": u"string"}],
              u"additionalItems": BYTES}
    payload, frames = codec.pack([b"\xff", u"t", b"z"], schema)
    assert (payload, frames) == (b'[{"$b":0},"t",{"$b":1}]', [b"\xff", b"z"])
    with pytest.raises(EnvelopeError, match=r"payload\[1\]: declared text, got bytes"):
        codec.pack([Bytes(b"a"), Bytes(b"b")], schema)


BYTES = {u"type": u"string", u"contentEncoding": u"base64"}


@pytest.mark.parametrize("payload", [b'{"$b":0}', b'{ "$b" : 0 }'])
def test_a_body_that_is_one_raw_frame_decodes_alike_whichever_its_spelling(payload):
    # The exact frame an HTTP body travels as has a shortcut; any other spelling of it
    # goes through the JSON parser: both give the same explicitly-bytes value.
    for body in (b"", b"Hello", b'{"$b":0}'):
        value = codec.decode([HEADER, payload, body]).payload
        assert value == body and type(value) is Bytes


def test_a_body_reference_without_its_frame_or_in_a_header_is_still_refused():
    with pytest.raises(EnvelopeError, match="has no frame"):
        codec.decode([HEADER, b'{"$b":0}'])
    with pytest.raises(EnvelopeError, match="header"):
        codec.decode([b'{"$b":0}', b'{"$b":0}', b"x"])


@pytest.mark.parametrize("body", [Bytes(b""), Bytes(b"Hello"), bytearray(b"\x00\xff")])
def test_a_raw_body_encodes_as_the_general_packer_writes_it(body):
    env = Envelope(u"http-response", id=u"a", http={u"status": 200, u"headers": []},
                   payload=body)
    frames = codec.encode(env)
    assert frames[1:] == list(codec.pack(body)[0:1]) + codec.pack(body)[1]
    assert type(frames[2]) is bytes
    assert codec.decode(frames).payload == bytes(body)


def test_a_lone_surrogate_in_the_http_object_is_refused_by_the_header_encoder():
    env = Envelope(u"http-response", id=u"a",
                   http={u"status": 200, u"headers": [[u"X", u"\udc00"]]}, payload=Bytes(b""))
    with pytest.raises(EnvelopeError, match="lone surrogate"):
        codec.encode(env)


def test_sticky_travels_as_text_and_is_type_checked():
    env = codec.Envelope(u"call", id=u"a1", method=u"m", sticky=u"user-7", payload=None)
    frames = codec.encode(env)
    assert b'"sticky":"user-7"' in frames[0]
    assert codec.decode(frames).sticky == u"user-7"
    # the shortcut writes what the general path writes
    assert frames[0] == codec.dumps(codec.check_header(env.header()))
    with pytest.raises(EnvelopeError):
        codec.decode([b'{"id":"a","kind":"call","method":"m","sticky":7,"v":1}', b"null"])
