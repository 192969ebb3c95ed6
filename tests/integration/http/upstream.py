# ruff: noqa: UP010, UP031, RUF005, C402
"""A small HTTP service that shows what it received, for direct-vs-gateway tests.

Served by gunicorn in a subprocess (``gunicorn tests.integration.http.upstream:app``);
works unchanged on Python 2.7 (werkzeug 1.0) and 3.x. Every request counts
towards ``/__hits`` (read directly, never through the gateway).

::

    GET  /echo/...        JSON of method, path, raw URI, query, headers, body digest
    GET  /redirect        302 to a relative Location;  /redirect-abs: absolute, from Host
    GET  /cookies         two Set-Cookie fields; echoes the Cookie it got
    GET  /gzip            a gzip-encoded body
    GET  /stream?n=&size= a chunked body of n pieces
    GET  /download?size=  a body of size bytes with Content-Length
    POST /upload          reads the body as a stream: its length and sha256
    GET  /etag            ETag "v1"; 304 when If-None-Match matches
    GET  /nocontent       204;  /hop: a response with hop-by-hop fields
    GET  /slow?s=         answers after s seconds (for gateway timeouts)
"""
from __future__ import absolute_import, division, print_function

import gzip
import hashlib
import io
import json
import threading
import time

try:
    from urllib.parse import parse_qs
except ImportError:  # pragma: no cover - Python 2.7
    from urlparse import parse_qs  # type: ignore

HITS = [0]
_LOCK = threading.Lock()
PATTERN = bytes(bytearray(range(256))) * 256  # 64 KiB


def _qs(environ):
    # type: (dict) -> dict
    return dict((k, v[0]) for k, v in parse_qs(environ.get("QUERY_STRING", "")).items())


def _body_digest(environ):
    # type: (dict) -> tuple
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    length = environ.get("CONTENT_LENGTH")
    remaining = int(length) if length else None
    while remaining is None or remaining > 0:
        want = 65536 if remaining is None else min(65536, remaining)
        chunk = stream.read(want)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return total, digest.hexdigest()


def _json(start_response, obj, status="200 OK", extra=()):
    # type: (object, object, str, tuple) -> list
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def echo(environ, start_response):
    # type: (dict, object) -> list
    """Everything the request carried, as JSON."""
    length, digest = _body_digest(environ)
    headers = dict((k[5:].replace("_", "-").lower(), v) for k, v in environ.items()
                   if k.startswith("HTTP_"))
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    path = environ.get("PATH_INFO", "")
    if not isinstance(path, bytes):
        path = path.encode("latin-1")
    return _json(start_response, {
        "method": environ["REQUEST_METHOD"], "path": path.decode("utf-8", "replace"),
        "raw_uri": environ.get("RAW_URI") or environ.get("REQUEST_URI"),
        "query": environ.get("QUERY_STRING", ""), "headers": headers,
        "body_len": length, "body_sha256": digest})


def _stream(n, size):
    # type: (int, int) -> object
    for i in range(n):
        yield (b"%08d" % i) + b"x" * max(0, size - 8)


def _download(size):
    # type: (int) -> object
    sent = 0
    while sent < size:
        piece = PATTERN[:min(len(PATTERN), size - sent)]
        sent += len(piece)
        yield piece


def hello(environ, start_response):
    # type: (dict, object) -> list
    """The benchmark's hello world."""
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [body]


def app(environ, start_response):
    # type: (dict, object) -> object
    """The WSGI entry point."""
    path = environ.get("PATH_INFO", "")
    if path == "/__hits":
        return _json(start_response, {"hits": HITS[0]})
    with _LOCK:
        HITS[0] += 1
    q = _qs(environ)
    method = environ["REQUEST_METHOD"]
    if path == "/redirect":
        start_response("302 Found", [("Location", "/echo/target?from=redirect"),
                                     ("Content-Length", "0")])
        return []
    if path == "/redirect-abs":
        loc = "http://%s/echo/abs" % environ.get("HTTP_HOST", "localhost")
        start_response("301 Moved Permanently", [("Location", loc), ("Content-Length", "0")])
        return []
    if path == "/cookies":
        return _json(start_response, {"cookie": environ.get("HTTP_COOKIE", "")}, extra=(
            ("Set-Cookie", "a=1; Path=/; HttpOnly"), ("Set-Cookie", "b=2; Path=/echo")))
    if path == "/gzip":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as fh:
            fh.write(b"hello gzip " * 1000)
        body = buf.getvalue()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Encoding", "gzip"),
                                  ("Vary", "Accept-Encoding"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _stream(int(q.get("n", "10")), int(q.get("size", "100")))
    if path == "/download":
        size = int(q.get("size", "1000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return _download(size) if method != "HEAD" else []
    if path == "/upload":
        length, digest = _body_digest(environ)
        return _json(start_response, {"body_len": length, "body_sha256": digest})
    if path == "/etag":
        if environ.get("HTTP_IF_NONE_MATCH") == '"v1"':
            start_response("304 Not Modified", [("ETag", '"v1"')])
            return []
        body = b"versioned"
        start_response("200 OK", [("ETag", '"v1"'), ("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body] if method != "HEAD" else []
    if path == "/nocontent":
        start_response("204 No Content", [("X-Thing", "1")])
        return []
    if path == "/hop":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Hop", "secret"),
                                  ("Connection", "X-Hop"), ("Content-Length", "2")])
        return [b"ok"]
    if path == "/slow":
        time.sleep(float(q.get("s", "1")))
        return _json(start_response, {"slept": True})
    return echo(environ, start_response)
