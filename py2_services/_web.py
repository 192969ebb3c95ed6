"""Tiny WSGI helpers shared by the service pages (werkzeug 1.0.1 on 2.7).

::

    from py2_services._web import html_page, json_response
    resp = json_response({u"ok": True}, status=200)
    page = html_page(u"Title", u"<p>body</p>")       # includes the user bar script
"""
from __future__ import absolute_import, division, print_function

import json

from werkzeug.wrappers import Response

from protocol.errors import ProtocolError  # noqa: F401 - named in type comments

BAR_SCRIPT = u'<script src="/_gateway/bar.js"></script>'

_PAGE = u"""<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>%(head)s</head>
<body>
%(body)s
%(bar)s
</body></html>
"""


def html_page(title, body, head=u"", status=200):
    # type: (str, str, str, int) -> Response
    """A UTF-8 HTML response whose page includes the user bar script."""
    text = _PAGE % {u"title": title, u"head": head, u"body": body, u"bar": BAR_SCRIPT}
    return Response(text.encode("utf-8"), status=status,
                    content_type="text/html; charset=utf-8")


def json_response(value, status=200, headers=None):
    # type: (object, int, list) -> Response
    """A compact UTF-8 JSON response."""
    body = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    if not isinstance(body, bytes):
        body = body.encode("utf-8")
    return Response(body, status=status, headers=headers or [],
                    content_type="application/json; charset=utf-8")


def error_response(exc):
    # type: (ProtocolError) -> Response
    """A typed protocol error as a JSON problem with the code's HTTP status."""
    return json_response({u"error": {u"code": exc.code, u"message": u"%s" % (exc.message,)}},
                         status=exc.status)


def escape(text):
    # type: (str) -> str
    """HTML-escape text for element content and double-quoted attributes."""
    return (text.replace(u"&", u"&amp;").replace(u"<", u"&lt;").replace(u">", u"&gt;")
            .replace(u'"', u"&quot;"))
