"""The notes API of the legacy site, as JSON (Python 2.7, werkzeug 1.0).

``GET /api/notes`` lists the newest notes of the shared legacy database with
a small summary; the migration example moves it to its Python 3 port
(:mod:`py3_services.notes`)::

    python -m protocol.wsgi --broker ipc:///tmp/b.ipc --service notes py2_services.notes:app

    {"count": 2, "avg_words": 3.0, "generated_at": 1764000000.123,
     "notes": [{"id": 2, "body": "one two three", "author": "ada", "via": "legacy",
                "words": 3}, ...]}

``avg_words`` is Python 2's ``round()``: halves round away from zero and the
result is a float. ``generated_at`` is the time of the answer, so two answers
to the same request differ there and nowhere else.
"""
from __future__ import absolute_import, division, print_function

import time

from werkzeug.wrappers import Request

from py2_services import store
from py2_services._web import json_response


def summary(notes):
    # type: (list) -> dict
    """The notes with their word counts, and the average count rounded the Python 2 way."""
    items = [{u"id": n[u"id"], u"body": n[u"body"], u"author": n[u"name"], u"via": n[u"via"],
              u"words": len(n[u"body"].split())} for n in notes]
    total = sum(i[u"words"] for i in items)
    avg = round(total / len(items)) if items else 0.0
    return {u"count": len(items), u"avg_words": avg, u"notes": items}


@Request.application
def app(request):
    # type: (Request) -> Response
    """``GET /api/notes[?limit=N]``."""
    if request.method not in ("GET", "HEAD"):
        return json_response({u"error": {u"code": u"method", u"message": u"GET only"}},
                             status=405, headers=[("Allow", "GET, HEAD")])
    try:
        limit = max(1, min(100, int(request.args.get("limit", 20))))
    except ValueError:
        return json_response({u"error": {u"code": u"params",
                                         u"message": u"limit must be an integer"}}, status=400)
    conn = store.connect(store.db_path())
    try:
        out = summary(store.recent_notes(conn, limit))
    finally:
        conn.close()
    out[u"generated_at"] = time.time()
    return json_response(out, headers=[("Cache-Control", "no-store")])
