"""Who is signed in, as JSON: the data behind the gateway's user bar (Python 3).

::

    from py3_services.whoami import whoami
    whoami(u"legacy_sid=3f2a...")   # {u"authenticated": True, u"user": {u"id": 1, u"name": u"ada"}}

``app`` answers ``/api/whoami`` with that JSON for the request's cookies;
the gateway serves the script that shows it (``<script src="/_gateway/bar.js">``).
The session is the legacy app's, read from the shared SQLite ``sessions``
table, so both interpreters answer the same.
"""


from werkzeug.wrappers import Request, Response

from protocol._compat import to_text
from py3_services import store
from py3_services._web import json_response


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


TABLE = {"whoami": lambda cookie="": whoami(cookie)}


@Request.application
def app(request: Request) -> Response:
    """``/api/whoami``: the current user as JSON, GET only."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": {"code": "method", "message": "GET only"}},
                             status=405, headers=[("Allow", "GET, HEAD")])
    out = whoami(to_text(request.headers.get("Cookie", "")))
    return json_response(out, headers=[("Cache-Control", "no-store")])
