"""The naive baseline reverse proxy: werkzeug Request + a requests Session, nothing else.

Used by bench/http.py only, served by gunicorn like the gateway::

    NAIVE_UPSTREAM=http://127.0.0.1:9000 gunicorn tests.integration.http.naive_proxy:app
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

UPSTREAM = os.environ.get("NAIVE_UPSTREAM", "http://127.0.0.1:9000")
_local = threading.local()


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Forward the request as requests would, buffer the answer, send it back."""
    req = Request(environ)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "host"}
    upstream = _session().request(req.method, UPSTREAM + req.full_path, headers=headers,
                                  data=req.get_data(), allow_redirects=False)
    excluded = {"content-encoding", "transfer-encoding", "connection", "content-length"}
    out = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in excluded]
    response = Response(upstream.content, status=upstream.status_code, headers=out)
    return response(environ, start_response)
