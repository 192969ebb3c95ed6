# -*- coding: utf-8 -*-
"""The worker's WSGI environ from a shipped request, on both interpreters (PEP 3333 types)."""
from __future__ import absolute_import, division, print_function

import pytest

from protocol._compat import PY2
from protocol.errors import EnvelopeError
from protocol.wsgi import build_environ


def http(headers):
    return {u"method": u"POST", u"path_info": u"/p", u"script_name": u"",
            u"raw_path": u"/p", u"query_string": u"a=1", u"headers": headers}


def native(text):
    return text.encode("latin-1") if PY2 else text


HEADERS = [[u"Content-Type", u"text/plain"], [u"Content-Length", u"99"],
           [u"X-Thing", u"a"], [u"x-thing", u"b"], [u"X_Thing", u"smuggled"],
           [u"Accept", u"caf\u00e9"]]


@pytest.mark.parametrize("round_", [1, 2])  # the second reads header keys remembered
def test_headers_become_http_keys_the_same_way_every_time(round_):
    environ = build_environ(http(HEADERS), b"body")
    assert environ["CONTENT_TYPE"] == native(u"text/plain")
    assert environ["CONTENT_LENGTH"] == "4"  # the body's own length, never the header's
    assert environ["HTTP_X_THING"] == native(u"a,b")
    assert environ["HTTP_ACCEPT"] == native(u"caf\u00e9")
    assert "HTTP_X_THING_" not in environ and environ["HTTP_X_THING"] != native(u"smuggled")
    assert type(environ["HTTP_ACCEPT"]) is str


@pytest.mark.parametrize("pair", [
    pytest.param([u"X-Big", u"\u20ac"], marks=pytest.mark.skipif(
        not PY2, reason="a 2.7 native string is latin-1 bytes; 3.x keeps the text")),
    [5, u"x"],                  # a name that is not text
    [[u"X"], u"x"],             # nor hashable
])
def test_a_header_no_wsgi_server_could_have_received_is_an_envelope_error(pair):
    with pytest.raises(EnvelopeError, match=r"header\.http"):
        build_environ(http([[u"X-Ok", u"1"], pair]), b"")
