"""A gunicorn config module that pins each worker to its own CPU (``-c python:...``).

The baselines of bench/http.py run gunicorn this way (DESIGN, "the gthread collapse").
"""

from typing import Any

from gateway.http.server import pin_worker


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook: pin the new worker to its own CPU."""
    pin_worker(int(worker.age))
