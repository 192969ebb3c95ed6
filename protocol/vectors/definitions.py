"""The definitions of the golden wire vectors: every good and bad case, as Python values.

:mod:`protocol.vectors` turns these into the committed JSON files (``--write``)
and checks an interpreter against those files; the files, not this module,
are the reference (SPEC appendix A)::

    for name, description, header, payload, schema, topic in good() + good_cancel():
        ...
    for name, description, frames, fragment, required in bad():
        ...
"""
from __future__ import absolute_import, division, print_function

import binascii

from protocol import codec
from protocol.codec import Bytes

MYPY = False
if MYPY:  # pragma: no cover - read by the type checker only
    from typing import Any, List, Tuple  # noqa: F401

ID = u"5f1d3c0a9b8e4f7d8c6b5a4e3d2c1b0a"
DEADLINE = 1767225600000  # 2026-01-01T00:00:00Z in ms
RID = u"req-7f3a91"
BYTES = {u"type": u"string", u"contentEncoding": u"base64"}
TEXT = {u"type": u"string"}


def _nest(depth, leaf=u"leaf"):
    # type: (int, object) -> Any
    """Objects and lists alternating, so the leaf sits at ``depth`` (SPEC 4.8)."""
    value = leaf  # type: object
    for level in range(depth, 0, -1):
        value = {u"a": value} if level % 2 else [value]
    return value


def _good():
    # type: () -> List[Tuple[Any, ...]]
    """(name, description, header fields, payload, schema, topic) of every good vector."""
    call = {u"kind": u"call", u"id": ID, u"method": u"echo"}
    result = {u"kind": u"result", u"id": ID}
    http_req = {
        u"method": u"POST", u"script_name": u"/legacy", u"path_info": u"/caf\u00e9 menu",
        u"raw_path": u"/legacy/caf%C3%A9%20menu", u"query_string": u"q=1&lang=%C3%A9",
        u"headers": [[u"Host", u"127.0.0.1:8080"],
                     [u"Content-Type", u"application/x-www-form-urlencoded"],
                     [u"Content-Length", u"11"], [u"X-Request-ID", RID],
                     [u"X-Note", u"d\u00e9j\u00e0"]],
        u"scheme": u"http", u"server_name": u"127.0.0.1", u"server_port": u"8080",
        u"remote_addr": u"127.0.0.1", u"remote_port": u"50412", u"protocol": u"HTTP/1.1"}
    html = {u"status": 200, u"reason": u"OK",
            u"headers": [[u"Content-Type", u"text/html; charset=utf-8"]]}
    return [
        ("call-plain", "A call with every usual header field.",
         dict(call, deadline=DEADLINE, rid=RID, idem=True), {u"value": u"hello"}, None, None),
        ("call-minimal", "The smallest call: only v, kind, id and method; null payload.",
         call, None, None, None),
        ("call-shadow", "A shadow copy of a non-idempotent call.",
         dict(call, method=u"upper", deadline=DEADLINE, rid=RID, shadow=True),
         {u"text": u"abc"}, None, None),
        ("call-trace", "A call carrying W3C trace context (3.9): traceparent and tracestate.",
         dict(call, deadline=DEADLINE, rid=RID,
              traceparent=u"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              tracestate=u"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
         {u"value": u"hello"}, None, None),
        ("text-unicode", "Non-ASCII, CJK, non-BMP and escaped control characters.",
         result, {u"latin": u"h\u00e9llo", u"cjk": u"\u4e2d\u6587\u6f22\u5b57",
                  u"emoji": u"\U0001F600", u"zwj": u"\U0001F9D1\u200D\U0001F4BB",
                  u"astral": u"\U00020000\U0010FFFF", u"controls": u"\x00\x01\x1f\x7f",
                  u"escapes": u"\"\\/\b\f\n\r\t", u"separators": u"\u2028\u2029",
                  u"bom": u"\ufeff", u"\u00e9t\u00e9": u"key order is by code point",
                  u"\ufb01": u"sorts before the astral key", u"\U0001F600": u"astral key"},
         None, None),
        ("bytes-every-value", "All 256 byte values in one raw frame.",
         result, {u"data": Bytes(bytearray(range(256)))}, None, None),
        ("bytes-frame-order", "Byte frames are numbered in canonical JSON order.",
         result, {u"b": Bytes(b"second"), u"a": Bytes(b"first"),
                  u"list": [Bytes(b"x"), Bytes(b""), Bytes(b"z")], u"0": Bytes(b"zero")},
         None, None),
        ("bytes-declared", "A contract schema declares a bytes field (checksum call).",
         dict(call, method=u"checksum", deadline=DEADLINE),
         {u"data": Bytes(b"\x00\xff\xfe caf\xc3\xa9")},
         {u"type": u"object", u"properties": {u"data": BYTES}, u"required": [u"data"]}, None),
        ("int-big", "Integers beyond 64 bits, both signs.",
         result, [0, -1, 2 ** 53 + 1, 2 ** 63, 2 ** 64, 2 ** 64 + 1, -(2 ** 64),
                  -(2 ** 100) - 1, 10 ** 40], None, None),
        ("float-repr", "Floats in shortest round-trip form, Python repr layout.",
         result, [0.1, 1e-07, 1e22, -0.0, 5e-324, 1.7976931348623157e308, 1.0, 0.0001,
                  1e-05, 1e15, 1e16, 123.456, -2.5e-05, 2.2250738585072014e-308,
                  0.30000000000000004, 1.5], None, None),
        ("nesting-deep", "Nesting at the limit: the leaf is at depth 128.",
         result, _nest(codec.MAX_DEPTH), None, None),
        ("nesting-deep-bytes", "A bytes value is a leaf, not a level: 128 levels of lists "
         "and objects around a bytes value decode and encode again.",
         result, _nest(codec.MAX_DEPTH, Bytes(b"leaf")), None, None),
        ("dollar-keys", "Keys starting with $ are escaped by doubling the $.",
         result, {u"$b": 1, u"$bytes": u"not base64", u"$": u"", u"$$": u"two",
                  u"a$": 1, u"nested": {u"$ref": u"#/x", u"$b": Bytes(b"raw")}},
         None, None),
        ("header-dollar-keys", "The header follows the payload's $ rule: a key starting "
         "with $ (here in the error's details) is escaped by doubling the $; strings are "
         "never escaped.",
         dict(result, kind=u"error", error={
             u"code": u"invalid_params", u"message": u"echo.upper params.$ref: required",
             u"type": u"InvalidParams", u"traceback": u"", u"field": u"params.$ref",
             u"$ref": u"#/definitions/x", u"$": u"$b", u"$$": u"two"}), None, None, None),
        ("empty-values", "Empty text, bytes, list and object; null, zero, false.",
         result, {u"s": u"", u"b": Bytes(b""), u"l": [], u"o": {}, u"n": None, u"z": 0,
                  u"f": False, u"t": True}, None, None),
        ("error-remote", "A worker's error reply for a handler that raised.",
         dict(result, kind=u"error", rid=RID, error={
             u"code": u"remote", u"message": u"division by zero",
             u"type": u"ZeroDivisionError",
             u"traceback": u"Traceback (most recent call last):\n  ...\n"
                           u"ZeroDivisionError: division by zero\n"}), None, None, None),
        ("error-broker", "A broker-made error: no live worker before the deadline.",
         dict(result, kind=u"error", error={
             u"code": u"unavailable", u"message": u"no live worker for service 'echo'"}),
         None, None, None),
        ("http-request", "An HTTP request crossing to a worker (SPEC 6.1).",
         {u"kind": u"http", u"id": ID, u"deadline": DEADLINE, u"rid": RID,
          u"http": http_req}, Bytes(b"name=caf%C3%A9"), None, None),
        ("http-response", "A complete HTTP response.",
         dict(result, kind=u"http-response", http=html),
         Bytes(u"<p>caf\u00e9</p>".encode("utf-8")), None, None),
        ("http-stream-head", "First message of a streamed response: status, headers, chunk.",
         dict(result, kind=u"http-response", more=True, http=html), Bytes(b"<ul>"),
         None, None),
        ("http-stream-body", "A middle chunk of a streamed response.",
         dict(result, kind=u"http-body", more=True), Bytes(b"<li>1</li>"), None, None),
        ("http-stream-last", "The last chunk of a streamed response (may be empty).",
         dict(result, kind=u"http-body"), Bytes(b""), None, None),
        ("event", "An event as published on the events socket, after its topic frame.",
         {u"kind": u"event", u"id": ID, u"rid": RID},
         {u"size": 3, u"sha256": u"ba7816bf8f01cfea414140de5dae2223"
                                 u"b00361a396177a9cb410ff61f20015ad"}, None, u"echo.checksum"),
    ]


def _h(*frames):
    # type: (*bytes) -> List[str]
    return [binascii.hexlify(f).decode("ascii") for f in frames]


H = b'{"id":"' + ID.encode("ascii") + b'","kind":"result","v":1}'


def _bad():
    # type: () -> List[Tuple[Any, ...]]
    """(name, description, frames, message fragment, required) of every bad vector."""
    def hdr(body):
        # type: (bytes) -> bytes
        return b'{"id":"' + ID.encode("ascii") + b'",' + body + b'}'
    return [
        ("no-frames", "An empty body.", [], u"need a header and a payload frame", True),
        ("too-few-frames", "A header without a payload frame.", [H],
         u"need a header and a payload frame", True),
        ("too-many-frames", "More than 4096 frames.", [H, b"null"] + [b""] * 4095,
         u"exceed the limit of 4096", True),
        ("header-truncated", "Header JSON cut short.", [b'{"v":1,"kind":"res', b"null"],
         u"header: bad JSON", True),
        ("header-bad-utf8", "Header is not UTF-8.", [b'{"v":1,"kind":"\xff"}', b"null"],
         u"header: not UTF-8", True),
        ("header-not-object", "Header is a JSON array.", [b"[1]", b"null"],
         u"header: must be a JSON object", True),
        ("version-unknown", "Version 2 is not this version.", [hdr(b'"kind":"result","v":2'),
                                                               b"null"],
         u"header.v: unsupported version", True),
        ("version-missing", "No version field.", [hdr(b'"kind":"result"'), b"null"],
         u"header.v: unsupported version", True),
        ("version-text", "Version as a string.", [hdr(b'"kind":"result","v":"1"'), b"null"],
         u"header.v: unsupported version", True),
        ("version-bool", "Version true (equal to 1 in some languages).",
         [hdr(b'"kind":"result","v":true'), b"null"], u"header.v: unsupported version", True),
        ("version-float", "Version 1.0 is a float, not the integer 1.",
         [hdr(b'"kind":"result","v":1.0'), b"null"], u"header.v: unsupported version", True),
        ("kind-missing", "No kind.", [hdr(b'"v":1'), b"null"], u"header.kind: missing", True),
        ("kind-unknown", "An unknown kind.", [hdr(b'"kind":"cast","v":1'), b"null"],
         u"header.kind: unknown kind", True),
        ("id-missing", "No id.", [b'{"kind":"result","v":1}', b"null"], u"header.id: missing",
         True),
        ("id-null", "A null id is a missing id.", [b'{"id":null,"kind":"result","v":1}',
                                                   b"null"], u"header.id: missing", True),
        ("id-number", "A numeric id.", [b'{"id":7,"kind":"result","v":1}', b"null"],
         u"header.id: wrong type", True),
        ("id-empty", "An empty id: ids are non-empty text.",
         [b'{"id":"","kind":"result","v":1}', b"null"], u"header.id: must not be empty", True),
        ("call-no-method", "A call must name its method.",
         [hdr(b'"kind":"call","v":1'), b"null"], u"header.method: a call needs a method", True),
        ("deadline-text", "Deadline as a string.",
         [hdr(b'"deadline":"1767225600000","kind":"result","v":1'), b"null"],
         u"header.deadline: wrong type", True),
        ("deadline-float", "Deadline with a fraction.",
         [hdr(b'"deadline":1767225600000.5,"kind":"result","v":1'), b"null"],
         u"header.deadline: wrong type", True),
        ("deadline-bool", "Deadline true.", [hdr(b'"deadline":true,"kind":"result","v":1'),
                                             b"null"], u"header.deadline: wrong type", True),
        ("shadow-number", "Shadow flag as 1.", [hdr(b'"kind":"result","shadow":1,"v":1'),
                                                b"null"], u"header.shadow: wrong type", True),
        ("traceparent-number", "traceparent as a number: a field added within version 1, "
         "so a receiver that predates it may ignore it.",
         [hdr(b'"kind":"result","traceparent":1,"v":1'), b"null"],
         u"header.traceparent: wrong type", False),
        ("more-text", "More flag as text.", [hdr(b'"kind":"result","more":"yes","v":1'),
                                             b"null"], u"header.more: wrong type", True),
        ("error-text", "Error field as text.",
         [hdr(b'"error":"boom","kind":"error","v":1'), b"null"], u"header.error: wrong type",
         True),
        ("http-list", "http field as a list.", [hdr(b'"http":[],"kind":"http","v":1'),
                                                b"null"], u"header.http: wrong type", True),
        ("header-bytes", "A $bytes value in the header: the header never holds bytes.",
         [hdr(b'"error":{"code":"remote","data":{"$bytes":"YQ=="},"message":""},'
              b'"kind":"error","v":1'), b"null"],
         u"header: bytes are not allowed in the header", True),
        ("header-bytes-ref", "A $b reference in the header, even with a byte frame present.",
         [hdr(b'"http":{"body":{"$b":0}},"kind":"http","v":1'), b"null", b"x"],
         u"header: bytes are not allowed in the header", True),
        ("header-tag-unknown", "A single-$ key in the header is an unknown tag, as in a "
         "payload.", [hdr(b'"error":{"$ref":"#/x","code":"remote","message":""},'
                          b'"kind":"error","v":1'), b"null"],
         u"header: unknown tag", True),
        ("header-duplicate-key", "Duplicate key in the header.",
         [hdr(b'"kind":"result","v":1,"v":1'), b"null"], u"header: duplicate key", True),
        ("payload-truncated", "Payload JSON cut short.", [H, b'{"a":'], u"payload: bad JSON",
         True),
        ("payload-trailing-data", "Two JSON values in one frame.", [H, b"{} {}"],
         u"payload: bad JSON", True),
        ("payload-bom", "A UTF-8 byte order mark before the JSON.", [H, b"\xef\xbb\xbfnull"],
         u"payload: bad JSON", True),
        ("payload-bad-utf8", "Payload is not UTF-8.", [H, b'"\xc3\x28"'],
         u"payload: not UTF-8", True),
        ("payload-overlong-utf8", "Overlong UTF-8 for '/'.", [H, b'"\xc0\xaf"'],
         u"payload: not UTF-8", True),
        ("payload-encoded-surrogate", "A surrogate encoded directly in UTF-8 (CESU-8).",
         [H, b'"\xed\xa0\xbd\xed\xb8\x80"'], u"payload: not UTF-8", True),
        ("b-out-of-range", "$b 1 with only one byte frame.", [H, b'{"$b":1}', b"x"],
         u"$b reference 1 has no frame", True),
        ("b-negative", "$b -1.", [H, b'{"$b":-1}', b"x"], u"has no frame", True),
        ("b-text", "$b as a string.", [H, b'{"$b":"0"}', b"x"], u"has no frame", True),
        ("b-float", "$b as a float.", [H, b'{"$b":0.0}', b"x"], u"has no frame", True),
        ("b-bool", "$b true.", [H, b'{"$b":true}', b"x"], u"has no frame", True),
        ("tag-unknown", "A single $ key that is not a tag.", [H, b'{"$x":1}'],
         u"payload: unknown tag", True),
        ("tag-with-sibling", "A tag key next to another key.", [H, b'{"$b":0,"x":1}', b"x"],
         u"payload: unknown tag", True),
        ("duplicate-key", "Duplicate key in a payload object.", [H, b'{"a":1,"a":2}'],
         u"payload: duplicate key", True),
        ("duplicate-key-escaped", "Duplicates after $-unescaping.",
         [H, b'{"$$a":1,"$$a":2}'], u"payload: duplicate key", True),
        ("nan", "NaN is not JSON.", [H, b"[NaN]"], u"NaN is not valid JSON", True),
        ("infinity", "Infinity is not JSON.", [H, b"[-Infinity]"],
         u"-Infinity is not valid JSON", True),
        ("float-overflow", "A number that overflows a double.", [H, b"[1e400]"],
         u"overflows a double", True),
        ("surrogate-lone-high", "An escaped lone high surrogate.", [H, b'"\\ud800"'],
         u"payload: text holds a lone surrogate", True),
        ("surrogate-lone-low", "An escaped lone low surrogate.", [H, b'"a\\udc00"'],
         u"payload: text holds a lone surrogate", True),
        ("surrogate-reversed", "A low surrogate before a high one.",
         [H, b'"\\ude00\\ud83d"'], u"payload: text holds a lone surrogate", True),
        ("surrogate-in-key", "A lone surrogate in an object key.", [H, b'{"\\uDBFF":1}'],
         u"payload: text holds a lone surrogate", True),
        ("surrogate-in-header", "A lone surrogate in the header.",
         [hdr(b'"kind":"result","rid":"\\ud800","v":1'), b"null"],
         u"header: text holds a lone surrogate", True),
        ("base64-unpadded", "Base64 without its padding.", [H, b'{"$bytes":"YQ"}'],
         u"$bytes is not canonical base64", True),
        ("base64-bad-length", "Base64 of a wrong length.", [H, b'{"$bytes":"YWJjZ"}'],
         u"$bytes is not canonical base64", True),
        ("base64-noncanonical", "Base64 whose unused bits are not zero.",
         [H, b'{"$bytes":"YR=="}'], u"$bytes is not canonical base64", True),
        ("base64-urlsafe", "The URL-safe alphabet is not the standard one.",
         [H, b'{"$bytes":"-_-_"}'], u"$bytes is not canonical base64", True),
        ("base64-whitespace", "Whitespace inside base64.", [H, b'{"$bytes":"YW Jj"}'],
         u"$bytes is not canonical base64", True),
        ("base64-non-ascii", "Non-ASCII text as base64.", [H, b'{"$bytes":"\xc3\xa9\xc3\xa9=="}'],
         u"$bytes is not canonical base64", True),
        ("base64-number", "$bytes holding a number.", [H, b'{"$bytes":12}'],
         u"$bytes must hold a base64 string", True),
        ("nesting-unbounded", "5000 levels of nesting; a receiver may reject anything deeper "
         "than 128 and must reject what it cannot parse with an envelope error.",
         [H, b"[" * 5000 + b"]" * 5000], u"payload: ", False),
    ]


def _good_cancel():
    # type: () -> List[Tuple[Any, ...]]
    """The cancel vector (SPEC 2.11), kept apart from the others' definitions."""
    return [
        ("cancel", "A client cancels its request: the id is the request's, payload null.",
         {u"kind": u"cancel", u"id": ID, u"rid": RID}, None, None, None),
    ]
