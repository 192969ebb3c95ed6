# -*- coding: utf-8 -*-
"""Contract files: loading, meta-schema checks, typing schemas and params/result validation."""
from __future__ import absolute_import, division, print_function

import hashlib
import io
import json
import os

import jsonschema
import pytest

from protocol import codec, contract, errors, vectors
from protocol._compat import PY2, text_type
from protocol.codec import Bytes
from protocol.errors import InvalidParams, UnknownMethod


@pytest.fixture
def echo():
    return contract.load("echo")


def write(workdir, data, name="svc.json"):
    path = os.path.join(workdir, name)
    with io.open(path, "w", encoding="utf-8") as fh:
        text = data if isinstance(data, text_type) else json.dumps(data, ensure_ascii=False)
        fh.write(text if isinstance(text, text_type) else text.decode("ascii"))
    return path


def minimal(**methods):
    return {u"service": u"svc", u"version": 1,
            u"methods": methods or {u"m": {u"params": {}, u"result": {}}}}


def test_echo_contract_loads_by_name_and_path(echo):
    assert echo.service == u"echo" and echo.version == 1
    assert echo.method_names() == [u"checksum", u"echo", u"upper"]
    again = contract.load(os.path.join(contract.SPEC_DIR, "echo.json"))
    assert again.method_names() == echo.method_names()
    assert u"echo" in contract.available()
    assert all(not n.endswith(u".schema") for n in contract.available())


def test_flags(echo):
    assert echo.is_idempotent(u"echo") and echo.is_shadow_safe(u"echo")
    assert not echo.is_idempotent(u"upper") and echo.is_shadow_safe(u"upper")
    assert not echo.is_idempotent(u"checksum") and not echo.is_shadow_safe(u"checksum")


def test_unknown_method_is_typed(echo):
    with pytest.raises(UnknownMethod) as info:
        echo.schema_for(u"nope")
    assert u"nope" in info.value.message
    assert info.value.to_wire()[u"code"] == u"unknown_method"


def test_schema_for_types_bytes_for_the_codec(echo):
    schema = echo.schema_for(u"checksum")
    raw = b"\x00\xff caf\xc3\xa9"
    payload = {u"data": raw if PY2 else Bytes(raw)}  # a plain non-ASCII str on 2.7
    frames = codec.encode(codec.Envelope(u"call", id=vectors.ID, method=u"checksum",
                                         payload=payload), schema)
    assert frames[1] == b'{"data":{"$b":0}}' and frames[2] == raw
    with pytest.raises(errors.EnvelopeError) as info:
        codec.encode(codec.Envelope(u"call", method=u"checksum", payload={u"data": u"x"}),
                     schema)
    assert u"payload.data" in info.value.message


def test_result_schema_resolves_contract_definitions(echo):
    schema = echo.result_schema_for(u"checksum")
    assert u"sha256" in schema[u"definitions"]
    digest = hashlib.sha256(b"abc").hexdigest()
    view = echo.validate_result(u"checksum", {u"sha256": digest, u"size": 3})
    assert view == {u"sha256": digest, u"size": 3}
    with pytest.raises(InvalidParams) as info:
        echo.validate_result(u"checksum", {u"sha256": u"ABC", u"size": 3})
    assert u"result.sha256" in info.value.message


def test_valid_params_return_the_json_view(echo):
    assert echo.validate_params(u"upper", {u"text": u"h\u00e9"}) == {u"text": u"h\u00e9"}
    view = echo.validate_params(u"checksum", {u"data": Bytes(b"\x00\x01")})
    assert view == {u"data": {u"$bytes": u"AAE="}}
    anything = {u"$odd": [1, 2.5, None, Bytes(b"x"), {u"k": u"\U0001F600"}]}
    assert echo.validate_params(u"echo", {u"value": anything}) == codec.to_json(
        {u"value": anything})


@pytest.mark.parametrize("method,value,field", [
    (u"upper", {u"text": 5}, u"params.text"),
    (u"upper", {}, u"params.text"),
    (u"upper", {u"text": u"a", u"extra": 1}, u"params"),
    (u"upper", [u"a"], u"params"),
    (u"checksum", {u"data": u"text, not bytes"}, u"params.data"),
    (u"checksum", {u"data": 12}, u"params.data"),
    (u"echo", {u"values": 1}, u"params.value"),
])
def test_invalid_params_name_the_field(echo, method, value, field):
    with pytest.raises(InvalidParams) as info:
        echo.validate_params(method, value)
    assert field in info.value.message
    wire = info.value.to_wire()
    assert wire[u"code"] == u"invalid_params" and wire[u"type"] == u"InvalidParams"
    assert isinstance(info.value, ValueError)


def test_bytes_where_text_is_declared(echo):
    with pytest.raises(InvalidParams) as info:
        echo.validate_params(u"upper", {u"text": Bytes(b"abc")})
    assert u"params.text" in info.value.message


@pytest.mark.skipif(not PY2, reason="Python 2 str rules")
def test_py2_str_rules_in_params(echo):
    assert echo.validate_params(u"upper", {u"text": "ascii"}) == {u"text": u"ascii"}
    with pytest.raises(InvalidParams) as info:
        echo.validate_params(u"upper", {u"text": "caf\xc3\xa9"})
    assert u"params.text" in info.value.message


@pytest.mark.parametrize("data,where", [
    (u"{not json", u"not valid JSON"),
    (u'{"service":"svc","service":"x","version":1,"methods":{}}', u"duplicate key"),
    ([], u"contract"),
    ({u"version": 1, u"methods": {u"m": {u"params": {}, u"result": {}}}},
     u"contract.service: required but missing"),
    (dict(minimal(), methods={}), u"contract.methods"),
    (dict(minimal(), version=u"1"), u"contract.version"),
    (dict(minimal(), service=u"mmi.service"), u"contract.service"),
    (dict(minimal(), colour=u"red"), u"colour"),
    (minimal(m={u"params": {}}), u"contract.methods.m.result: required but missing"),
    (minimal(m={u"params": {}, u"result": {}, u"idempotent": u"yes"}),
     u"contract.methods.m.idempotent"),
    (minimal(m={u"params": {u"type": u"strung"}, u"result": {}}), u"methods.m.params"),
    (minimal(m={u"params": {u"$ref": u"#/definitions/nope"}, u"result": {}}),
     u"methods.m.params"),
    (minimal(m={u"params": {u"$ref": u"other.json#/x"}, u"result": {}}), u"$ref"),
    (dict(minimal(), routes=[{u"path": u"no-slash"}]), u"contract.routes[0].path"),
])
def test_bad_contract_files_name_file_and_key(workdir, data, where):
    path = write(workdir, data)
    with pytest.raises(contract.ContractError) as info:
        contract.load(path)
    assert path in info.value.message
    assert where in info.value.message


def test_missing_contract_and_mismatched_name(workdir):
    with pytest.raises(contract.ContractError) as info:
        contract.load(u"no-such-service", directory=workdir)
    assert u"no-such-service" in info.value.message
    write(workdir, minimal(), name="other.json")
    with pytest.raises(contract.ContractError) as info:
        contract.load(u"other", directory=workdir)
    assert u"service" in info.value.message


def test_extensions_routes_and_stream_are_accepted(workdir):
    data = minimal(m={u"params": True, u"result": {}, u"stream": True, u"x-owner": u"ops"})
    data[u"x-note"] = 1
    data[u"routes"] = [{u"path": u"/legacy", u"methods": [u"GET", u"POST"]}, {u"path": u"/"}]
    loaded = contract.load(write(workdir, data))
    assert loaded.method(u"m").stream
    assert [r[u"path"] for r in loaded.routes] == [u"/legacy", u"/"]


# ------------------------------------------------------ bundled schemas --

@pytest.mark.parametrize("name", [u"contract", u"envelope", u"error"])
def test_bundled_schemas_are_valid_draft7(name):
    jsonschema.Draft7Validator.check_schema(contract.load_schema(name))


def test_every_contract_file_follows_the_meta_schema():
    meta = jsonschema.Draft7Validator(contract.load_schema(u"contract"))
    for name in contract.available():
        path = os.path.join(contract.SPEC_DIR, name + ".json")
        with io.open(path, encoding="utf-8") as fh:
            meta.validate(json.loads(fh.read()))
        assert contract.load(name).service == name


def test_golden_envelopes_follow_the_envelope_schema():
    validator = jsonschema.Draft7Validator(contract.load_schema(u"envelope"))
    for vector in vectors.load_good():
        validator.validate(vector[u"envelope"])
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({u"v": 1, u"kind": u"call", u"id": u"x"})  # a call needs a method
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({u"v": 2, u"kind": u"result", u"id": u"x"})


def test_every_error_class_follows_the_error_schema():
    validator = jsonschema.Draft7Validator(contract.load_schema(u"error"))
    envelope = contract.load_schema(u"envelope")
    inline = jsonschema.Draft7Validator(envelope[u"definitions"][u"error"])
    for cls in errors.ERRORS.values():
        wire = cls(u"m\u00e9ssage").to_wire()
        validator.validate(wire)
        inline.validate(wire)
        assert type(errors.from_wire(wire)) is cls


@pytest.mark.parametrize("method,value,field", [
    (u"upper", {u"text": 5}, u"params.text"),
    (u"upper", {}, u"params.text"),
    (u"upper", [u"a"], u"params"),
    (u"upper", None, u"params"),
    (u"upper", {u"text": Bytes(b"abc")}, u"params.text"),  # the codec's typing check
    (u"checksum", {u"data": u"text, not bytes"}, u"params.data"),
])
def test_invalid_params_field_is_the_exact_path(echo, method, value, field):
    with pytest.raises(InvalidParams) as info:
        echo.validate_params(method, value)
    assert info.value.to_wire()[u"field"] == field


BYTES = {u"type": u"string", u"contentEncoding": u"base64"}


def test_a_list_payload_is_valid_only_where_the_params_schema_takes_a_list(workdir):
    both = {u"type": [u"object", u"array"],
            u"properties": {u"name": {u"type": u"string"}, u"data": BYTES},
            u"items": [{u"type": u"string"}, BYTES], u"maxItems": 2}
    data = minimal(named={u"params": {u"type": u"object", u"properties": {
        u"name": {u"type": u"string"}}}, u"result": {}},
        both={u"params": both, u"result": {}})
    svc = contract.load(write(workdir, data))
    with pytest.raises(InvalidParams) as info:
        svc.validate_params(u"named", [u"x"])
    assert info.value.to_wire()[u"field"] == u"params"
    assert u"is not of type" in info.value.message
    assert svc.validate_params(u"both", {u"name": u"x"}) == {u"name": u"x"}
    # Positions are typed by the tuple items: text first, then bytes.
    assert svc.validate_params(u"both", [u"x", Bytes(b"\xff")]) == [u"x", {u"$bytes": u"/w=="}]
    with pytest.raises(InvalidParams) as info:
        svc.validate_params(u"both", [u"x", u"not bytes"])
    assert info.value.to_wire()[u"field"] == u"params[1]"
    with pytest.raises(InvalidParams) as info:
        svc.validate_params(u"both", [u"x", Bytes(b""), u"third"])
    assert info.value.to_wire()[u"field"] == u"params"
