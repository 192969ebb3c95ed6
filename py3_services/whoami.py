"""The user bar: who is signed in, as JSON, and the script that shows it (Python 3).

::

    from py3_services.whoami import whoami
    whoami(u"legacy_sid=3f2a...")   # {u"authenticated": True, u"user": {u"id": 1, u"name": u"ada"}}

``app`` answers ``/api/whoami`` with that JSON for the request's cookies
and any path ending in ``bar.js`` with :data:`BAR_JS`, a small plain
script any page can include (``<script src="/_gateway/bar.js">``). The
session is the legacy app's, read from the shared SQLite ``sessions``
table, so both interpreters answer the same.
"""

import os

from werkzeug.wrappers import Request, Response

from protocol._compat import to_text
from py3_services import store
from py3_services._web import json_response

BAR_JS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bar.js")


def whoami(cookie: str = "", db: str | None = None) -> dict:
    """``{"authenticated", "user"}`` for a Cookie header value (``user`` is None if anonymous)."""
    sid = store.parse_cookie_header(to_text(cookie, "params.cookie")).get(store.SESSION_COOKIE)
    user = None
    if sid:
        conn = store.connect(db or store.db_path())
        try:
            user = store.session_user(conn, sid)
        finally:
            conn.close()
    return {"authenticated": user is not None, "user": user}


def bar_js() -> bytes:
    """The user bar script (UTF-8 bytes)."""
    with open(BAR_JS_FILE, "rb") as fh:
        return fh.read()


TABLE = {"whoami": lambda cookie="": whoami(cookie)}


@Request.application
def app(request: Request) -> Response:
    """``/api/whoami`` (JSON) and ``.../bar.js`` (the script), GET only."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": {"code": "method", "message": "GET only"}},
                             status=405, headers=[("Allow", "GET, HEAD")])
    path = to_text(request.script_root + request.path)
    if path.endswith("bar.js"):
        return Response(bar_js(), content_type="application/javascript; charset=utf-8",
                        headers=[("Cache-Control", "no-cache")])
    out = whoami(to_text(request.headers.get("Cookie", "")))
    return json_response(out, headers=[("Cache-Control", "no-store")])
