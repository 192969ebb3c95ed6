-- The schema of the one SQLite database shared by py2_services.store and its port
-- py3_services.store; both read this file, so the two cannot drift apart.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password TEXT NOT NULL,
    created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
    body TEXT NOT NULL, created INTEGER NOT NULL, via TEXT NOT NULL DEFAULT 'legacy');
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, data TEXT NOT NULL, expires INTEGER NOT NULL);
