"""Who is signed in, as JSON: the data behind the gateway's user bar (Python 2.7).

::

    from py2_services.whoami import whoami
    whoami(u"legacy_sid=3f2a...")   # {u"authenticated": True, u"user": {u"id": 1, u"name": u"ada"}}

``app`` answers ``/api/whoami`` with that JSON for the request's cookies;
the gateway serves the script that shows it (``<script src="/_gateway/bar.js">``).
The session is the legacy app's, read from the shared SQLite ``sessions``
table, so both interpreters answer the same.
"""
from __future__ import absolute_import, division, print_function

from werkzeug.wrappers import Request

from protocol._compat import to_text
from py2_services import store
from py2_services._web import json_response


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


TABLE = {u"whoami": lambda cookie=u"": whoami(cookie)}


@Request.application
def app(request):
    # type: (Request) -> Response
    """``/api/whoami``: the current user as JSON, GET only."""
    if request.method not in ("GET", "HEAD"):
        return json_response({u"error": {u"code": u"method", u"message": u"GET only"}},
                             status=405, headers=[("Allow", "GET, HEAD")])
    out = whoami(to_text(request.headers.get("Cookie", u"")))
    return json_response(out, headers=[("Cache-Control", "no-store")])
