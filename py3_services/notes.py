"""The Python 3 port of :mod:`py2_services.notes`: ``GET /api/notes`` as JSON.

::

    python -m protocol.wsgi --broker ipc:///tmp/b.ipc --service notes3 py3_services.notes:app

The port carries the classic Python 3 change on purpose: ``round()`` rounds
halves to even and returns an int, so an average of 2.5 words is ``2`` here
and ``3.0`` on Python 2. Shadowing the route shows it as a regression at
``/avg_words``. ``NOTES_ROUNDING=half-up`` (the fix) restores Python 2's
answer; the migration walkthrough in the README turns it on with a reload.
"""

import math
import os
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from py3_services import store
from py3_services._web import json_response


def average(total: int, count: int) -> float | int:
    """The average word count, rounded the way ``NOTES_ROUNDING`` says."""
    if not count:
        return 0
    if os.environ.get("NOTES_ROUNDING", "bankers") == "half-up":
        return math.floor(total / count + 0.5)
    return round(total / count)


def summary(notes: list[dict[str, Any]]) -> dict[str, Any]:
    """The notes with their word counts and the average count."""
    items = [{"id": n["id"], "body": n["body"], "author": n["name"], "via": n["via"],
              "words": len(n["body"].split())} for n in notes]
    total = sum(i["words"] for i in items)
    return {"count": len(items), "avg_words": average(total, len(items)), "notes": items}


@Request.application
def app(request: Request) -> Response:
    """``GET /api/notes[?limit=N]``."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": {"code": "method", "message": "GET only"}},
                             status=405, headers=[("Allow", "GET, HEAD")])
    try:
        limit = max(1, min(100, int(request.args.get("limit", 20))))
    except ValueError:
        return json_response({"error": {"code": "params", "message": "limit must be an integer"}},
                             status=400)
    conn = store.connect(store.db_path())
    try:
        out = summary(store.recent_notes(conn, limit))
    finally:
        conn.close()
    out["generated_at"] = time.time()
    return json_response(out, headers=[("Cache-Control", "no-store")])
