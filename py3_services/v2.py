"""The ``/v2`` app: plain werkzeug on Python 3, sharing the legacy Flask app's database.

The shared-datastore pattern: it reads the same notes and users, and the
legacy app's server-side session (the ``legacy_sid`` cookie), so a user
signed in at ``/`` is signed in here too; notes added here show up there::

    python -m protocol.wsgi --broker ipc:///tmp/b.ipc --service v2 py3_services.v2:app
    app = V2App("/tmp/legacy.sqlite3")      # for tests

Pages: ``GET /`` (notes, and who is signed in) and ``POST /notes`` (needs the
session's CSRF token, like the legacy forms).
"""

import html
from collections.abc import Iterable
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from py3_services import store
from py3_services._web import html_page


class V2App:
    """A WSGI app over the shared database at ``db_path``."""

    def __init__(self, db_path: str | None = None) -> None:
        self.db_path = db_path or store.db_path()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request."""
        path = request.path.rstrip("/") or "/"
        if path == "/":
            if request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(["GET", "HEAD"])
            return self.index(request)
        if path == "/notes":
            if request.method != "POST":
                raise MethodNotAllowed(["POST"])
            return self.add_note(request)
        raise NotFound()

    def _session(self, request: Request) -> tuple[str, dict[str, Any]]:
        sid = request.cookies.get(store.SESSION_COOKIE, "")
        conn = store.connect(self.db_path)
        try:
            data = store.load_session(conn, sid) if sid else None
        finally:
            conn.close()
        return sid, data or {}

    def index(self, request: Request) -> Response:
        """The notes, newest first, and a form when someone is signed in."""
        conn = store.connect(self.db_path)
        try:
            sid = request.cookies.get(store.SESSION_COOKIE, "")
            user = store.session_user(conn, sid)
            data = (store.load_session(conn, sid) if sid else None) or {}
            notes = store.recent_notes(conn)
        finally:
            conn.close()
        items = "".join(
            f'<li>{html.escape(n["body"])} <small>by {html.escape(n["name"])} '
            f'via {html.escape(n["via"])}</small></li>' for n in notes
        ) or '<li class="empty">no notes yet</li>'
        if user:
            who = f'<p class="me">signed in as {html.escape(user["name"])}</p>'
            form = (f'<form method="post" action="{request.script_root}/notes">'
                    f'<input type="hidden" name="csrf" value="{html.escape(data.get("csrf", ""))}">'
                    '<textarea name="body" rows="3" cols="60"></textarea>'
                    '<button>add note</button></form>')
        else:
            who, form = '<p class="me">not signed in; <a href="/login">log in</a></p>', ""
        body = f'<h1>notes (v2)</h1>{who}{form}<ul class="notes">{items}</ul>'
        return html_page("notes - v2", body)

    def add_note(self, request: Request) -> Response:
        """Add a note as the signed-in user, then go back to the list."""
        _sid, data = self._session(request)
        user_id = data.get("user_id")
        if not isinstance(user_id, int):
            return redirect("/login", code=303)
        if not data.get("csrf") or request.form.get("csrf") != data["csrf"]:
            return Response("the form is stale; reload the page and try again", status=400)
        body = request.form.get("body", "").strip()
        if body:
            conn = store.connect(self.db_path)
            try:
                store.add_note(conn, user_id, body[:2000], via="v2")
            finally:
                conn.close()
        return redirect(f"{request.script_root}/", code=303)


app = V2App()
