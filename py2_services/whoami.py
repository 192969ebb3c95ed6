"""The user bar: who is signed in, as JSON, and the script that shows it (Python 2.7).

::

    from py2_services.whoami import whoami
    whoami(u"legacy_sid=3f2a...")   # {u"authenticated": True, u"user": {u"id": 1, u"name": u"ada"}}

``app`` answers ``/api/whoami`` with that JSON for the request's cookies
and any path ending in ``bar.js`` with :data:`BAR_JS`, a small plain
script any page can include (``<script src="/_gateway/bar.js">``). The
session is the legacy app's, read from the shared SQLite ``sessions``
table, so both interpreters answer the same.
"""
from __future__ import absolute_import, division, print_function

import io
import os

from werkzeug.wrappers import Request, Response

from protocol._compat import to_text
from py2_services import store
from py2_services._web import json_response

BAR_JS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bar.js")


def whoami(cookie=u"", db=None):
    # type: (str, str) -> dict
    """``{"authenticated", "user"}`` for a Cookie header value (``user`` is None if anonymous)."""
    sid = store.parse_cookie_header(to_text(cookie, u"params.cookie")).get(store.SESSION_COOKIE)
    user = None
    if sid:
        conn = store.connect(db or store.db_path())
        try:
            user = store.session_user(conn, sid)
        finally:
            conn.close()
    return {u"authenticated": user is not None, u"user": user}


def bar_js():
    # type: () -> bytes
    """The user bar script (UTF-8 bytes)."""
    with io.open(BAR_JS_FILE, "rb") as fh:
        return fh.read()


TABLE = {u"whoami": lambda cookie=u"": whoami(cookie)}


@Request.application
def app(request):
    # type: (Request) -> Response
    """``/api/whoami`` (JSON) and ``.../bar.js`` (the script), GET only."""
    if request.method not in ("GET", "HEAD"):
        return json_response({u"error": {u"code": u"method", u"message": u"GET only"}},
                             status=405, headers=[("Allow", "GET, HEAD")])
    path = to_text(request.script_root + request.path)
    if path.endswith(u"bar.js"):
        return Response(bar_js(), content_type="application/javascript; charset=utf-8",
                        headers=[("Cache-Control", "no-cache")])
    out = whoami(to_text(request.headers.get("Cookie", u"")))
    return json_response(out, headers=[("Cache-Control", "no-store")])
