"""The comparison engine: interpreter differences are not regressions, real changes are."""

from __future__ import annotations

import json
import random
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.migration.compare import (
    MAX_DEPTH,
    MAX_DIFFERENCES,
    RENDER_CAP,
    Difference,
    HttpAnswer,
    Rules,
    compare_http,
    compare_values,
    is_noise,
    normalise_path,
)
from gateway.migration.samples import redact_headers, sample
from tests.support.procs import python2

RULES = Rules()
JSON_CT = (("Content-Type", "application/json"),)


def where(diffs: list[Difference]) -> list[tuple[str, str]]:
    return [(d.path, d.kind) for d in diffs]


# --- values ----------------------------------------------------------------------------

SAME_VALUES = [
    ("key order", {"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}),
    ("int vs float", {"n": 1}, {"n": 1.0}),
    ("float repr 1e-05 vs 1e-5", json.loads('{"x": 1e-05}'), json.loads('{"x": 1e-5}')),
    ("escaped vs raw UTF-8", json.loads(b'{"e": "\\u00e9"}'), json.loads('{"e": "é"}'.encode())),
    ("close floats", 0.1 + 0.2, 0.3),
    ("text vs bytes", "x", b"x"),
    ("bytes vs text, non-ASCII", "é".encode(), "é"),
    ("codec $bytes form vs text", {"$bytes": "eA=="}, "x"),
    ("codec $bytes form vs bytes", [{"$bytes": "/w=="}], [b"\xff"]),
    ("NaN is NaN", float("nan"), float("nan")),
    ("tuple vs list", (1, "a"), [1, "a"]),
    ("infinities", float("inf"), float("inf")),
    ("None and None", {"a": None}, {"a": None}),
]


@pytest.mark.parametrize(("left", "right"), [c[1:] for c in SAME_VALUES],
                         ids=[c[0] for c in SAME_VALUES])
def test_values_that_only_differ_by_interpreter_are_the_same(left: Any, right: Any) -> None:
    assert compare_values(left, right, RULES) == []
    assert compare_values(right, left, RULES) == []


DIFFERENT_VALUES = [
    ("bool is not a number", {"a": True}, {"a": 1}, [("result/a", "type")]),
    ("None vs missing", {"a": None}, {}, [("result/a", "missing")]),
    ("added key", {}, {"z": 0}, [("result/z", "added")]),
    ("list length", [1, 2], [1, 2, 3], [("result", "length")]),
    ("list item", [1, 2], [1, 3], [("result/1", "changed")]),
    ("ints are exact", 10**17, 10**17 + 1, [("result", "changed")]),
    ("floats beyond tolerance", 1.0, 1.0001, [("result", "changed")]),
    ("huge int vs float", 10**400, 1e308, [("result", "changed")]),
    ("NaN vs number", float("nan"), 1.0, [("result", "changed")]),
    ("invalid UTF-8 bytes vs text", b"\xff", "\ufffd", [("result", "changed")]),
    ("string vs object", "a", {"a": 1}, [("result", "type")]),
    ("null vs zero", None, 0, [("result", "type")]),
    ("pointer escapes / and ~", {"a/b": {"m~n": 1}}, {"a/b": {"m~n": 2}},
     [("result/a~1b/m~0n", "changed")]),
    ("keys in sorted order", {"b": 1, "a": 1}, {"a": 2, "b": 2},
     [("result/a", "changed"), ("result/b", "changed")]),
    ("bad $bytes stays an object", {"$bytes": "not base64!"}, "x", [("result", "type")]),
]


@pytest.mark.parametrize(("left", "right", "expected"), [c[1:] for c in DIFFERENT_VALUES],
                         ids=[c[0] for c in DIFFERENT_VALUES])
def test_value_differences_are_named_by_path_and_kind(left: Any, right: Any,
                                                      expected: list[tuple[str, str]]) -> None:
    diffs = compare_values(left, right, RULES)
    assert where(diffs) == expected
    for d in diffs:
        json.dumps(d.to_json(), allow_nan=False)


def test_root_names_the_value_and_missing_renders_the_value() -> None:
    diffs = compare_values({"type": "KeyError"}, {"type": "ValueError", "x": [1]}, RULES, "error")
    assert [d.to_json() for d in diffs] == [
        {"path": "error/type", "kind": "changed", "left": "KeyError", "right": "ValueError"},
        {"path": "error/x", "kind": "added", "left": None, "right": [1]},
    ]


POINTERS = [
    ("/generated_at", {"generated_at": 1, "a": 1}, {"generated_at": 2, "a": 1}, []),
    ("/generated_at", {"generated_at": 1}, {}, []),
    ("/items/*/id", {"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]},
     {"items": [{"id": 7, "n": "a"}, {"id": 8, "n": "c"}]}, [("result/items/1/n", "changed")]),
    ("/*/ts", {"a": {"ts": 1}, "b": {"ts": 2, "v": 1}}, {"a": {"ts": 3}, "b": {"ts": 4, "v": 2}},
     [("result/b/v", "changed")]),
    ("/a~1b", {"a/b": 1, "c": 1}, {"a/b": 2, "c": 1}, []),
    ("/items/*/id", {"items": {"id": 1}}, {"items": {"id": 2}}, [("result/items/id", "changed")]),
    ("", {"everything": 1}, {"everything": 2}, []),
]


@pytest.mark.parametrize(("pointer", "left", "right", "expected"), POINTERS)
def test_ignore_pointers(pointer: str, left: Any, right: Any,
                         expected: list[tuple[str, str]]) -> None:
    rules = Rules(ignore_pointers=(pointer,))
    assert where(compare_values(left, right, rules)) == expected
    assert compare_values(left, right, Rules()) != []


def test_ignore_pointers_apply_to_http_bodies_too() -> None:
    rules = Rules(ignore_pointers=("/generated_at",))
    left = HttpAnswer(200, JSON_CT, b'{"generated_at": "2024-01-01", "n": 1}')
    right = HttpAnswer(200, JSON_CT, b'{"generated_at": "2024-01-02", "n": 1}')
    assert compare_http(left, right, rules) == []
    assert where(compare_http(left, right, Rules())) == [("body/generated_at", "changed")]


@pytest.mark.parametrize("bad", ["generated_at", "#/a"])
def test_rules_reject_a_pointer_that_is_not_rfc6901(bad: str) -> None:
    with pytest.raises(ConfigError, match="pointer"):
        Rules(ignore_pointers=(bad,))


def test_rules_reject_bad_numbers_and_lower_case_header_names() -> None:
    with pytest.raises(ConfigError):
        Rules(float_rel_tol=float("nan"))
    with pytest.raises(ConfigError):
        Rules(max_body=-1)
    assert Rules(ignore_headers=frozenset({"X-Trace"})).ignore_headers == {"x-trace"}


# --- HTTP ------------------------------------------------------------------------------


def answer(body: bytes = b"", *headers: tuple[str, str], status: int = 200,
           truncated: bool = False) -> HttpAnswer:
    return HttpAnswer(status, tuple(headers), body, truncated)


CT_JSON, CT_HTML = ("Content-Type", "application/json"), ("Content-Type", "text/html")
SAME_HTTP = [
    ("header case and order",
     answer(b"", ("X-A", "1"), ("X-B", "2")), answer(b"", ("x-b", "2"), ("x-a", "1"))),
    ("runtime and per-request headers ignored",
     answer(b"", ("Server", "Werkzeug/1.0.1 Python/2.7.18"), ("Date", "Mon"),
            ("Content-Length", "2"), ("X-Request-Id", "a")),
     answer(b"", ("Server", "Werkzeug/3.0 Python/3.11"), ("Transfer-Encoding", "chunked"))),
    ("content-type parameters",
     answer(b"", ("Content-Type", "text/html; charset=UTF-8")),
     answer(b"", ("content-type", "text/html;charset=utf-8"))),
    ("set-cookie values and attribute order",
     answer(b"", ("Set-Cookie", "sid=abc; Path=/; HttpOnly; Expires=Mon, 01 Jan 2024")),
     answer(b"", ("set-cookie", "sid=xyz; httponly; Expires=Tue, 02 Jan 2024; path=/"))),
    ("repeated headers as multisets",
     answer(b"", ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Vary", "A"), ("Vary", "B")),
     answer(b"", ("Vary", "B"), ("Set-Cookie", "b=9"), ("Vary", "A"), ("Set-Cookie", "a=9"))),
    ("JSON body: key order, 1.0 vs 1, 1e-05 vs 1e-5, escaped vs raw",
     answer(b'{"a": 1.0, "x": 1e-05, "e": "\\u00e9"}', CT_JSON),
     answer('{"e":"é","x":1e-5,"a":1}'.encode(), ("Content-Type", "application/json"))),
    ("+json media type",
     answer(b'{"a": 1, "b": 2}', ("Content-Type", "application/problem+json")),
     answer(b'{"b":2,"a":1}', ("Content-Type", "application/problem+json"))),
    ("JSON without a content type",
     answer(b'[1.0, {"b": 1, "a": 2}]'), answer(b'[1,{"a":2,"b":1}]')),
    ("truncated captures agree on the common prefix",
     answer(b"x" * 100, truncated=True), answer(b"x" * 150)),
]


@pytest.mark.parametrize(("left", "right"), [c[1:] for c in SAME_HTTP],
                         ids=[c[0] for c in SAME_HTTP])
def test_http_answers_that_only_differ_by_interpreter_are_the_same(left: HttpAnswer,
                                                                   right: HttpAnswer) -> None:
    assert compare_http(left, right, RULES) == []
    assert compare_http(right, left, RULES) == []


DIFFERENT_HTTP = [
    ("status", answer(status=200), answer(status=500), [("status", "changed")]),
    ("header missing and added", answer(b"", ("X-A", "1")), answer(b"", ("X-B", "1")),
     [("header:x-a", "missing"), ("header:x-b", "added")]),
    ("etag is kept", answer(b"", ("ETag", '"1"')), answer(b"", ("ETag", '"2"')),
     [("header:etag", "changed")]),
    ("content-type charset", answer(b"", ("Content-Type", "text/html; charset=utf-8")),
     answer(b"", ("Content-Type", "text/html; charset=latin-1")),
     [("header:content-type", "changed")]),
    ("set-cookie attributes", answer(b"", ("Set-Cookie", "sid=a; Path=/; Secure")),
     answer(b"", ("Set-Cookie", "sid=a; Path=/app")), [("header:set-cookie", "changed")]),
    ("set-cookie count", answer(b"", ("Set-Cookie", "a=1"), ("Set-Cookie", "a=1")),
     answer(b"", ("Set-Cookie", "a=1")), [("header:set-cookie", "changed")]),
    ("JSON field", answer(b'{"items": [{"name": "a"}]}', CT_JSON),
     answer(b'{"items": [{"name": "b"}]}', CT_JSON), [("body/items/0/name", "changed")]),
    ("JSON claimed, not JSON", answer(b"{nope", CT_JSON), answer(b"{nah!", CT_JSON),
     [("body", "changed")]),
    ("invalid UTF-8 claimed JSON", answer(b'"\xff"', CT_JSON), answer(b'"\xfe"', CT_JSON),
     [("body", "changed")]),
    ("bytes length", answer(b"\x00\x01"), answer(b"\x00\x01\x02"), [("body", "length")]),
    ("bytes content", answer(b"\x00\x01", ("Content-Type", "image/png")),
     answer(b"\x00\x02", ("Content-Type", "image/png")), [("body", "changed")]),
    ("text", answer(b"a\nb\n", CT_HTML), answer(b"a\nB\n", CT_HTML), [("body", "changed")]),
    ("truncated prefixes differ", answer(b"ab" * 50, truncated=True),
     answer(b"ab" * 40 + b"x", truncated=True), [("body", "changed")]),
]


@pytest.mark.parametrize(("left", "right", "expected"), [c[1:] for c in DIFFERENT_HTTP],
                         ids=[c[0] for c in DIFFERENT_HTTP])
def test_http_differences_are_named(left: HttpAnswer, right: HttpAnswer,
                                    expected: list[tuple[str, str]]) -> None:
    diffs = compare_http(left, right, RULES)
    assert where(diffs) == expected
    for d in diffs:
        json.dumps(d.to_json(), allow_nan=False)


def test_text_difference_shows_the_first_differing_line() -> None:
    left = answer(b"one\ntwo\nthree\n", ("Content-Type", "text/plain"))
    right = answer(b"one\nTWO\nthree\n", ("Content-Type", "text/plain"))
    [diff] = compare_http(left, right, RULES)
    assert (diff.left, diff.right) == ("line 2: two\n", "line 2: TWO\n")
    [end] = compare_http(left, answer(b"one\ntwo\n", ("Content-Type", "text/plain")), RULES)
    assert (end.left, end.right) == ("line 3: three\n", "line 3: <end of text>")


def test_text_is_compared_after_decoding_with_each_charset() -> None:
    left = answer("café".encode("latin-1"), ("Content-Type", "text/plain; charset=ISO-8859-1"))
    right = answer("café".encode(), ("Content-Type", "text/plain; charset=utf-8"))
    assert where(compare_http(left, right, RULES)) == [("header:content-type", "changed")]
    odd = answer(b"caf\xff", ("Content-Type", "text/plain; charset=no-such-codec"))
    hexed = answer(b"caf\xff", ("Content-Type", "text/plain; charset=hex"))
    assert where(compare_http(odd, hexed, RULES)) == [("header:content-type", "changed")]
    bad = compare_http(odd, answer(b"caf\xfe", ("Content-Type", "text/plain")), RULES)
    assert where(bad) == [("header:content-type", "changed"), ("body", "changed")]
    assert bad[1].left == "line 1: caf?"
    json.dumps([d.to_json() for d in bad], ensure_ascii=False).encode()


def test_length_difference_only_when_neither_capture_is_truncated() -> None:
    short, long = b"x" * 10, b"x" * 10 + b"y"
    assert where(compare_http(answer(short), answer(long), RULES)) == [("body", "length")]
    assert compare_http(answer(short, truncated=True), answer(long), RULES) == []
    assert compare_http(answer(short), answer(long, truncated=True), RULES) == []


def test_bodies_over_max_body_are_compared_by_length_and_digest() -> None:
    rules = Rules(max_body=64)
    big = b'{"a": ' + b"1" * 100 + b"}"
    other = b'{"a": ' + b"2" * 100 + b"}"
    [diff] = compare_http(answer(big, CT_JSON), answer(other, CT_JSON), rules)
    assert (diff.path, diff.kind) == ("body", "changed")
    assert diff.left.startswith("sha256:") and diff.left.endswith(f"({len(big)} bytes)")
    assert where(compare_http(answer(big), answer(big + b" "), rules)) == [("body", "length")]
    assert compare_http(answer(big), answer(bytes(big)), rules) == []


def test_credential_headers_are_compared_but_never_shown() -> None:
    left = answer(b"", ("Authorization", "Bearer one"), ("Set-Cookie", "sid=secret1; Path=/"))
    right = answer(b"", ("authorization", "Bearer two"), ("Set-Cookie", "sid=secret2; Path=/x"))
    diffs = compare_http(left, right, RULES)
    assert where(diffs) == [("header:authorization", "changed"), ("header:set-cookie", "changed")]
    text = json.dumps([d.to_json() for d in diffs])
    assert "Bearer" not in text and "secret" not in text
    assert diffs[1].to_json()["left"] == "sid; path=/"


PY2_DUMPS = r"""
import json, sys
data = {u"name": u"caf\u00e9", u"ratio": 1.0, u"tiny": 1e-05, u"n": 3,
        u"items": [{u"id": i, u"ok": i % 2 == 0, u"w": i / 3.0} for i in range(20)],
        u"nested": {u"z": None, u"a": [u"\u2603", u"x"]}}
sys.stdout.write(json.dumps(data))
"""


def test_real_python2_json_against_a_python3_port(procs: Any) -> None:
    proc = procs.spawn([python2(), "-c", PY2_DUMPS], stdout=subprocess.PIPE)
    py2_body, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    data = {"name": "café", "ratio": 1, "tiny": 1e-5, "n": 3,
            "items": [{"id": i, "ok": i % 2 == 0, "w": i / 3} for i in range(20)],
            "nested": {"z": None, "a": ["☃", "x"]}}
    py3_body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    assert py2_body != py3_body  # the interpreters really wrote different bytes
    py2 = answer(py2_body, ("Content-Type", "application/json"), ("Server", "Python/2.7"))
    py3 = answer(py3_body, ("content-type", "application/json"), ("Server", "Python/3.11"))
    assert compare_http(py2, py3, RULES) == []
    data["items"][4]["ok"] = 1  # a port that lost its bools
    changed = answer(json.dumps(data).encode(), ("Content-Type", "application/json"))
    assert where(compare_http(py2, changed, RULES)) == [("body/items/4/ok", "type")]


# --- noise -----------------------------------------------------------------------------

NORMALISED = [
    ("body/items/3/ts", "body/items/*/ts"),
    ("body/items/12/tags/0", "body/items/*/tags/*"),
    ("body/v2/3a", "body/v2/3a"),
    ("header:x-trace", "header:x-trace"),
    ("result", "result"),
    ("status", "status"),
]


@pytest.mark.parametrize(("path", "expected"), NORMALISED)
def test_normalise_path_collapses_array_indexes(path: str, expected: str) -> None:
    assert normalise_path(path) == expected


NOISE = [
    ("all learned", ["body/items/7/ts", "header:x-trace"], True),
    ("one real difference", ["body/items/7/ts", "body/items/7/name"], False),
    ("no differences is the same, not noise", [], False),
    ("the cap marker is never noise", ["body/items/1/ts", "..."], False),
    ("status not learned", ["status"], False),
]


@pytest.mark.parametrize(("paths", "expected"), [c[1:] for c in NOISE], ids=[c[0] for c in NOISE])
def test_is_noise(paths: list[str], expected: bool) -> None:
    noisy = {"body/items/*/ts", "header:x-trace", "..."}
    assert is_noise(paths, noisy) is expected
    assert is_noise([Difference(p, "changed", 1, 2) for p in paths], noisy) is expected


def test_noise_learned_from_two_primary_answers_covers_the_candidate() -> None:
    first = {"items": [{"ts": 1, "n": "a"}, {"ts": 2, "n": "b"}], "id": 1}
    second = {"items": [{"ts": 5, "n": "a"}, {"ts": 6, "n": "b"}], "id": 1}
    noisy = {normalise_path(d.path) for d in compare_values(first, second, RULES, "body")}
    candidate = {"items": [{"ts": 9, "n": "a"}, {"ts": 9, "n": "b"}], "id": 1}
    assert is_noise(compare_values(first, candidate, RULES, "body"), noisy)
    regressed = {"items": [{"ts": 9, "n": "a"}, {"ts": 9, "n": "B"}], "id": 1}
    assert not is_noise(compare_values(first, regressed, RULES, "body"), noisy)


# --- redaction and samples -------------------------------------------------------------

SECRETS = ("Bearer s3cr3t", "session=c00kie", "sid=t0ken", "Basic cHJveHk=", "gw-t0k3n")
CREDENTIAL_HEADERS = (("Authorization", SECRETS[0]), ("Cookie", SECRETS[1]),
                      ("Set-Cookie", SECRETS[2]), ("Proxy-Authorization", SECRETS[3]),
                      ("X-Gateway-Token", SECRETS[4]))


def test_redact_headers_replaces_credential_values_only() -> None:
    pairs = redact_headers((*CREDENTIAL_HEADERS, ("Accept", "text/html")))
    assert pairs[-1] == ["Accept", "text/html"]
    assert [v for _, v in pairs[:-1]] == ["[redacted]"] * 5
    assert redact_headers({"AUTHORIZATION": "x", "X-A": "1"}) == [
        ["AUTHORIZATION", "[redacted]"], ["X-A", "1"]]
    assert redact_headers([("X-Key", "k")], secret=("x-key",)) == [["X-Key", "[redacted]"]]
    assert redact_headers(["not a pair"]) == [["?", "[redacted]"]]


@pytest.mark.parametrize("cap", [256, 1024, 4096, 16384])
def test_sample_is_redacted_json_safe_and_capped(cap: int) -> None:
    request = {"method": "POST", "path": "/api/" + "x" * 10_000, "query": "a=1",
               "headers": [*CREDENTIAL_HEADERS, *((f"X-{i}", "v" * 500) for i in range(100))],
               "cookie": SECRETS[1], "body": b"\xff\xfe" * 50_000,
               "deep": [[[[[[[[[[[[["down"]]]]]]]]]]]]]}
    headers = (*CREDENTIAL_HEADERS, ("Content-Type", "text/html"), ("X-Big", "y" * 50_000))
    left = answer("é\ud800".encode("utf-8", "surrogatepass") * 30_000, *headers)
    right = answer(b"<p>" * 100_000, *headers, truncated=True)
    record = sample(request, left, right, cap=cap, labels=("py2", "py3"))
    text = json.dumps(record, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert len(json.dumps(record)) <= cap + 64
    assert not any(secret in text for secret in SECRETS)
    assert record["capped"] is True
    assert record["py2"]["status"] == 200
    assert record["py3"]["body_length"] == 300_000


def test_small_sample_keeps_everything() -> None:
    request = {"method": "GET", "path": "/a", "headers": {"Authorization": "Bearer s3cr3t"}}
    left = answer(b'{"a": 1}', CT_JSON)
    right = answer(b"\x00\xff", ("Content-Type", "application/octet-stream"))
    record = sample(request, left, right)
    assert record["request"] == {"method": "GET", "path": "/a",
                                 "headers": [["Authorization", "[redacted]"]]}
    assert record["left"]["body"] == '{"a": 1}'
    assert record["right"]["body"] == {"$bytes": "AP8="}
    assert record["right"]["headers"] == [["Content-Type", "application/octet-stream"]]
    assert record["capped"] is False
    odd = sample({"headers": 5, "Cookie": "c", "x": object()}, left, right, labels=("py2", "py3"))
    assert odd["request"]["headers"] == 5 and odd["request"]["Cookie"] == "[redacted]"
    assert set(odd) == {"request", "py2", "py3", "capped"}


# --- hostile input ---------------------------------------------------------------------


def test_differences_stop_at_the_cap_with_one_marker() -> None:
    diffs = compare_values(list(range(5000)), [-1] * 5000, RULES)
    assert len(diffs) == MAX_DIFFERENCES + 1
    assert (diffs[-1].path, diffs[-1].kind) == ("...", "truncated")
    assert where(diffs[:2]) == [("result/0", "changed"), ("result/1", "changed")]
    headers = tuple((f"X-{i}", str(i)) for i in range(300))
    http = compare_http(answer(b"", *headers), answer(b""), RULES)
    assert len(http) == MAX_DIFFERENCES + 1 and http[-1].kind == "truncated"


def nest(levels: int, leaf: Any) -> Any:
    for _ in range(levels):
        leaf = {"d": leaf}
    return leaf


def test_nesting_past_the_depth_limit_is_one_difference() -> None:
    diffs = compare_values(nest(200, 1), nest(200, 2), RULES)
    assert where(diffs) == [("result" + "/d" * MAX_DEPTH, "changed")]
    assert compare_values(nest(200, 1), nest(200, 1), RULES) == []
    assert all(len(side) <= RENDER_CAP + 1 for side in (diffs[0].left, diffs[0].right))
    shallow = compare_values(nest(MAX_DEPTH - 1, [1]), nest(MAX_DEPTH - 1, [2]), RULES)
    assert where(shallow) == [("result" + "/d" * (MAX_DEPTH - 1) + "/0", "changed")]


def test_hostile_bodies_fall_back_to_bytes() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert compare_http(answer(deep, CT_JSON), answer(deep, CT_JSON), RULES) == []
    assert where(compare_http(answer(deep, CT_JSON), answer(deep[:-1] + b"}", CT_JSON),
                              RULES)) == [("body", "changed")]
    huge_int = b"1" * 5000  # past Python's int-string limit
    assert where(compare_http(answer(huge_int, CT_JSON), answer(huge_int + b"2", CT_JSON),
                              RULES)) == [("body", "length")]
    nan = compare_http(answer(b'{"a": NaN}', CT_JSON), answer(b'{"a": NaN}', CT_JSON), RULES)
    assert nan == []
    inf = compare_http(answer(b'{"a": NaN}', CT_JSON), answer(b'{"a": Infinity}', CT_JSON), RULES)
    assert [d.to_json() for d in inf] == [
        {"path": "body/a", "kind": "changed", "left": "NaN", "right": "Infinity"}]
    lone = compare_http(answer(b'["\\ud800"]', CT_JSON), answer(b'["x"]', CT_JSON), RULES)
    json.dumps([d.to_json() for d in lone], ensure_ascii=False).encode("utf-8")


def test_renderings_are_capped() -> None:
    diffs = compare_values({"a": "x" * 10_000, "b": list(range(10_000)), "c": b"\x00" * 10_000,
                            "d": 10**5000},
                           {"a": "y", "b": [], "c": "z", "d": 0}, RULES)
    assert where(diffs) == [("result/a", "changed"), ("result/b", "length"),
                            ("result/c", "changed"), ("result/d", "changed")]
    for d in diffs:
        assert len(json.dumps(d.to_json(), allow_nan=False)) < 2 * RENDER_CAP + 100
    [missing] = compare_values({"big": {"k": list(range(10_000))}}, {}, RULES)
    assert isinstance(missing.left, str) and len(missing.left) <= RENDER_CAP + 1
    [small] = compare_values({"small": {"k": [1, 2]}}, {}, RULES)
    assert small.left == {"k": [1, 2]}


# --- property --------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


def shuffled(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    return value


@settings(max_examples=200, deadline=None, database=None)
@given(JSON_VALUES, st.randoms(use_true_random=False))
def test_a_value_equals_itself_and_its_key_shuffled_copy(value: Any, rnd: random.Random) -> None:
    assert compare_values(value, value, RULES) == []
    assert compare_values(value, shuffled(value, rnd), RULES) == []
    assert compare_values(json.loads(json.dumps(value, default=repr)),
                          json.loads(json.dumps(value, default=repr, sort_keys=True)), RULES) == []
