"""Tiny WSGI helpers shared by the service pages (werkzeug 3).

::

    from py3_services._web import html_page, json_response
    resp = json_response({u"ok": True}, status=200)
    page = html_page(u"Title", u"<p>body</p>")       # includes the user bar script
"""

import json

from werkzeug.wrappers import Response

from protocol.errors import ProtocolError

BAR_SCRIPT = '<script src="/_gateway/bar.js"></script>'

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>%(title)s</title>%(head)s</head>
<body>
%(body)s
%(bar)s
</body></html>
"""


def html_page(title: str, body: str, head: str = "", status: int = 200) -> Response:
    """A UTF-8 HTML response whose page includes the user bar script."""
    text = _PAGE % {"title": title, "head": head, "body": body, "bar": BAR_SCRIPT}
    return Response(text.encode("utf-8"), status=status,
                    content_type="text/html; charset=utf-8")


def json_response(value: object, status: int = 200, headers: list | None = None) -> Response:
    """A compact UTF-8 JSON response."""
    body = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return Response(body.encode("utf-8"), status=status, headers=headers or [],
                    content_type="application/json; charset=utf-8")


def error_response(exc: ProtocolError) -> Response:
    """A typed protocol error as a JSON problem with the code's HTTP status."""
    return json_response({"error": {"code": exc.code, "message": f"{exc.message}"}},
                         status=exc.status)


def escape(text: str) -> str:
    """HTML-escape text for element content and double-quoted attributes."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
