"""A gunicorn config module that pins each worker to its own CPU (``-c python:...``).

The baselines of bench/http.py run gunicorn this way: unpinned, two gthread workers on two
cores can end up sharing one, and a run collapses to a fraction of its median.
"""

from typing import Any

from gateway.http.server import pin_worker


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook: pin the new worker to its own CPU."""
    pin_worker(int(worker.age))
