"""The SQLite database the legacy app (``/``) shares with the Python 3 app at ``/v2``.

The shared-datastore pattern: two interpreters, one file, one schema. The
legacy app keeps its sessions server-side in the ``sessions`` table, keyed
by the ``legacy_sid`` cookie, so ``whoami`` and ``/v2`` (on either
interpreter) can tell who is signed in without sharing a signing secret::

    from py2_services import store
    conn = store.connect(store.db_path())    # $LEGACY_DB or var/legacy.sqlite3
    uid = store.create_user(conn, u"ada", u"secret")
    store.save_session(conn, u"abc", {u"user_id": uid})
    store.session_user(conn, u"abc")          # {u"id": 1, u"name": u"ada"}
"""
from __future__ import absolute_import, division, print_function

import io
import json
import os
import sqlite3
import time

from werkzeug.security import check_password_hash, generate_password_hash

from protocol._compat import text_type

ENV_VAR = "LEGACY_DB"
SESSION_COOKIE = "legacy_sid"
SESSION_TTL = 7 * 24 * 3600
# pbkdf2 is the one method both werkzeug 1.0 and 3.x verify.
HASH_METHOD = "pbkdf2:sha256"

# One schema for the database both implementations share (py3_services.store reads it too).
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.sql")
with io.open(SCHEMA_PATH, encoding="utf-8") as _fh:
    SCHEMA = _fh.read()


def db_path(environ=None):
    # type: (dict) -> str
    """``$LEGACY_DB``, else ``var/legacy.sqlite3`` under the working directory."""
    env = os.environ if environ is None else environ
    return env.get(ENV_VAR) or os.path.join(os.getcwd(), "var", "legacy.sqlite3")


def connect(path):
    # type: (str) -> sqlite3.Connection
    """Open (and create if needed) the database; waits up to 5 s for a lock."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory)
    conn = sqlite3.connect(path, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute(u"PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    return conn


def create_user(conn, name, password):
    # type: (sqlite3.Connection, str, str) -> int
    """Add a user; return its id. ValueError when the name is taken or empty."""
    name = name.strip()
    if not name or len(name) > 64:
        raise ValueError(u"a name of 1 to 64 characters is required")
    try:
        with conn:
            cur = conn.execute(
                u"INSERT INTO users (name, password, created) VALUES (?, ?, ?)",
                (name, text_type(generate_password_hash(password, HASH_METHOD)),
                 int(time.time())))
    except sqlite3.IntegrityError:
        raise ValueError(u"the name %s is taken" % name)
    return int(cur.lastrowid)


def check_user(conn, name, password):
    # type: (sqlite3.Connection, str, str) -> object
    """The user's id when ``password`` is right, else None."""
    row = conn.execute(u"SELECT id, password FROM users WHERE name = ?",
                       (name.strip(),)).fetchone()
    if row is None or not check_password_hash(row["password"], password):
        return None
    return int(row["id"])


def add_note(conn, user_id, body, via=u"legacy"):
    # type: (sqlite3.Connection, int, str, str) -> int
    """Store a note by ``user_id``; ``via`` says which app wrote it."""
    with conn:
        cur = conn.execute(u"INSERT INTO notes (user_id, body, created, via) VALUES (?, ?, ?, ?)",
                           (user_id, body, int(time.time()), via))
    return int(cur.lastrowid)


def recent_notes(conn, limit=20):
    # type: (sqlite3.Connection, int) -> list
    """The newest notes with their authors' names, newest first."""
    rows = conn.execute(
        u"SELECT notes.id, notes.body, notes.via, users.name FROM notes "
        u"JOIN users ON users.id = notes.user_id ORDER BY notes.id DESC LIMIT ?", (limit,))
    return [dict((k, row[k]) for k in row.keys()) for row in rows]  # noqa: SIM118 - a Row iterates values


def load_session(conn, sid):
    # type: (sqlite3.Connection, str) -> object
    """The session's data dict, or None when missing or expired."""
    row = conn.execute(u"SELECT data, expires FROM sessions WHERE id = ?", (sid,)).fetchone()
    if row is None or row["expires"] < time.time():
        return None
    try:
        data = json.loads(row["data"])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def save_session(conn, sid, data, ttl=SESSION_TTL):
    # type: (sqlite3.Connection, str, dict, int) -> None
    """Write the session's data (JSON) with a fresh expiry."""
    with conn:
        conn.execute(u"INSERT OR REPLACE INTO sessions (id, data, expires) VALUES (?, ?, ?)",
                     (sid, json.dumps(data, sort_keys=True), int(time.time()) + ttl))


def delete_session(conn, sid):
    # type: (sqlite3.Connection, str) -> None
    """Forget a session."""
    with conn:
        conn.execute(u"DELETE FROM sessions WHERE id = ?", (sid,))


def session_user(conn, sid):
    # type: (sqlite3.Connection, str) -> object
    """``{"id", "name"}`` of the user signed in with session ``sid``, or None."""
    data = load_session(conn, sid) if sid else None
    if not data or not isinstance(data.get(u"user_id"), int):
        return None
    row = conn.execute(u"SELECT id, name FROM users WHERE id = ?",
                       (data[u"user_id"],)).fetchone()
    if row is None:
        return None
    return {u"id": int(row["id"]), u"name": row["name"]}


def parse_cookie_header(header):
    # type: (str) -> dict
    """``name=value`` pairs of a Cookie header (later duplicates do not override)."""
    out = {}  # type: dict
    for part in (header or u"").split(u";"):
        name, sep, value = part.strip().partition(u"=")
        if sep and name and name not in out:
            out[name] = value.strip().strip(u'"')
    return out
