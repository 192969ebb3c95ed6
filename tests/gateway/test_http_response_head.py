"""``Forwarding.response_head`` is ``response_headers`` encoded as ``response_start`` does it."""

from __future__ import annotations

import pytest

from gateway.http.asgi import response_start
from gateway.http.forwarding import Forwarding

CASES: dict[str, list[tuple[str, str]]] = {
    "plain": [("Content-Type", "text/plain"), ("Content-Length", "13")],
    "none": [],
    "hop-by-hop and ours dropped": [
        ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Date", "x"),
        ("Server", "w"), ("X-Request-ID", "theirs"), ("Transfer-Encoding", "chunked"),
        ("Content-Type", "a/b")],
    "Connection names a field sent before it": [
        ("X-Secret", "1"), ("X-Kept", "2"), ("CONNECTION", "x-secret, Upgrade"),
        ("x-secret", "3")],
    "two Connection fields": [("Connection", "a"), ("A", "1"), ("B", "2"),
                              ("connection", "b")],
    "upstream Via kept and extended": [("Via", "1.0 app"), ("via", "1.1 cache"),
                                       ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
    "latin-1 values": [("Content-Disposition", "attachment; filename=caf\u00e9"),
                       ("X-\u00c9", "\u00ff")],
    "odd case names": [("cOnTeNt-TyPe", "x/y"), ("DATE", "d"), ("vIa", "v")],
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("via", ["gateway", "edge-1"])
def test_same_pairs_as_response_start(name: str, via: str) -> None:
    fwd = Forwarding(0, via)
    pairs = CASES[name]
    expected = response_start("200 OK", fwd.response_headers(pairs, "rid-1"))["headers"]
    assert fwd.response_head(pairs, "rid-1") == expected
    assert fwd.response_head(pairs, "rid-1") == expected   # with the names remembered


def test_a_value_outside_latin1_fails_as_before() -> None:
    fwd = Forwarding(0, "gateway")
    pairs = [("X-Name", "\u20ac")]
    with pytest.raises(UnicodeEncodeError):
        response_start("200 OK", fwd.response_headers(pairs, "r"))
    with pytest.raises(UnicodeEncodeError):
        fwd.response_head(pairs, "r")
