"""The legacy site: a Flask 1.1 app on Python 2.7, mounted at ``/``.

Forms, server-side sessions in the shared SQLite database (see
:mod:`py2_services.store`), flash messages and redirects. Every page
includes the gateway's user bar (``/_gateway/bar.js``)::

    python -m protocol.wsgi --broker ipc:///tmp/b.ipc --service legacy py2_services.legacy:app
    app = create_app("/tmp/legacy.sqlite3")       # for tests

Pages: ``GET /`` (notes, and a form to add one), ``GET|POST /login``,
``GET|POST /register``, ``POST /logout``, ``POST /notes``. Every POST form
carries a CSRF token kept in the session.
"""
from __future__ import absolute_import, division, print_function

import binascii
import os

from flask import (
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from py2_services import store

LAYOUT = u"""<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }} - legacy</title></head>
<body>
<nav><a href="{{ url_for('index') }}">home</a>
{% if user %}<span class="me">{{ user.name }}</span>
<form method="post" action="{{ url_for('logout') }}" style="display:inline">
<input type="hidden" name="csrf" value="{{ csrf }}"><button>log out</button></form>
{% else %}<a href="{{ url_for('login') }}">log in</a>
<a href="{{ url_for('register') }}">register</a>{% endif %}
<a href="/v2/">v2</a></nav>
{% for message in get_flashed_messages() %}<p class="flash">{{ message }}</p>{% endfor %}
<h1>{{ title }}</h1>
{{ body|safe }}
<script src="/_gateway/bar.js"></script>
</body></html>
"""

INDEX = u"""{% if user %}<form method="post" action="{{ url_for('add_note') }}">
<input type="hidden" name="csrf" value="{{ csrf }}">
<textarea name="body" rows="3" cols="60"></textarea><button>add note</button></form>
{% endif %}<ul class="notes">{% for note in notes %}
<li>{{ note.body }} <small>by {{ note.name }} via {{ note.via }}</small></li>
{% else %}<li class="empty">no notes yet</li>{% endfor %}</ul>
"""

CREDENTIALS = u"""<form method="post">
<input type="hidden" name="csrf" value="{{ csrf }}">
<label>name <input name="name" value="{{ name }}"></label>
<label>password <input type="password" name="password"></label>
<button>{{ title }}</button></form>
"""


class SqliteSession(CallbackDict, SessionMixin):
    """A session dict that remembers its id and whether it changed."""

    def __init__(self, initial=None, sid=None, new=False):
        # type: (dict, str, bool) -> None
        def on_update(self):
            # type: (SqliteSession) -> None
            self.modified = True
        CallbackDict.__init__(self, initial, on_update)
        self.sid = sid
        self.new = new
        self.modified = False


class SqliteSessionInterface(SessionInterface):
    """Flask sessions kept in the shared ``sessions`` table, keyed by an opaque cookie."""

    def __init__(self, db_path):
        # type: (str) -> None
        self.db_path = db_path

    def open_session(self, app, request):
        # type: (Flask, object) -> SqliteSession
        sid = request.cookies.get(store.SESSION_COOKIE)
        if sid:
            data = store.load_session(_db(), sid)
            if data is not None:
                return SqliteSession(data, sid=sid)
        return SqliteSession(sid=binascii.hexlify(os.urandom(16)).decode("ascii"), new=True)

    def save_session(self, app, session, response):
        # type: (Flask, SqliteSession, object) -> None
        path = self.get_cookie_path(app)
        if not session:
            if session.modified and not session.new:
                store.delete_session(_db(), session.sid)
                response.delete_cookie(store.SESSION_COOKIE, path=path)
            return
        if session.modified or session.new:
            store.save_session(_db(), session.sid, dict(session))
            response.set_cookie(store.SESSION_COOKIE, session.sid, httponly=True,
                                samesite="Lax", path=path, max_age=store.SESSION_TTL)


def _db():
    # type: () -> object
    """One connection per request, opened on first use."""
    if "db" not in g:
        from flask import current_app
        g.db = store.connect(current_app.config["LEGACY_DB"])
    return g.db


def _csrf():
    # type: () -> str
    if "csrf" not in session:
        session["csrf"] = binascii.hexlify(os.urandom(16)).decode("ascii")
    return session["csrf"]


def _page(title, template, **context):
    # type: (str, str, object) -> str
    user = store.session_user(_db(), session.sid) if session.get("user_id") else None
    context.update(user=user, csrf=_csrf(), title=title)
    body = render_template_string(template, **context)
    return render_template_string(LAYOUT, body=body, **context)


def create_app(db_path=None):
    # type: (str) -> Flask
    """The legacy Flask app on the database at ``db_path`` ($LEGACY_DB by default)."""
    app = Flask(__name__)
    app.config["LEGACY_DB"] = db_path or store.db_path()
    app.session_interface = SqliteSessionInterface(app.config["LEGACY_DB"])

    @app.before_request
    def check_csrf():
        # type: () -> None
        if request.method == "POST" and request.form.get("csrf") != session.get("csrf"):
            abort(400, "the form is stale; reload the page and try again")

    @app.teardown_appcontext
    def close_db(exc):
        # type: (object) -> None
        db = g.pop("db", None)
        if db is not None:
            db.close()

    @app.route("/")
    def index():
        # type: () -> str
        return _page(u"notes", INDEX, notes=store.recent_notes(_db()))

    @app.route("/login", methods=["GET", "POST"])
    def login():
        # type: () -> object
        name = request.form.get("name", u"")
        if request.method == "POST":
            uid = store.check_user(_db(), name, request.form.get("password", u""))
            if uid is not None:
                session["user_id"] = uid
                flash(u"welcome back, %s" % name.strip())
                return redirect(url_for("index"))
            flash(u"wrong name or password")
        return _page(u"log in", CREDENTIALS, name=name)

    @app.route("/register", methods=["GET", "POST"])
    def register():
        # type: () -> object
        name = request.form.get("name", u"")
        if request.method == "POST":
            try:
                uid = store.create_user(_db(), name, request.form.get("password", u""))
            except ValueError as exc:
                flash(u"%s" % (exc,))
            else:
                session["user_id"] = uid
                flash(u"welcome, %s" % name.strip())
                return redirect(url_for("index"))
        return _page(u"register", CREDENTIALS, name=name)

    @app.route("/logout", methods=["POST"])
    def logout():
        # type: () -> object
        session.clear()
        return redirect(url_for("index"))

    @app.route("/notes", methods=["POST"])
    def add_note():
        # type: () -> object
        if not session.get("user_id"):
            return redirect(url_for("login"))
        body = request.form.get("body", u"").strip()
        if body:
            store.add_note(_db(), session["user_id"], body[:2000])
            flash(u"note added")
        return redirect(url_for("index"))

    return app


app = create_app()
