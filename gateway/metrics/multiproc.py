"""prometheus_client's multi-process directory, one per front master.

prometheus_client's multi-process mode (its docs, "Multiprocess Mode"): every
process writes its values to memory-mapped files named by its pid in
``PROMETHEUS_MULTIPROC_DIR``, and a scrape sums them. The directory must be
empty when the processes start, and ``mark_process_dead`` must run for each
dead process so that its live gauges (in-flight requests) stop counting::

    path = prepare_metrics_dir(obs.metrics_dir)     # master, before forking
    ... a worker exits -> process_dead(path, pid)    # master, from waitpid
    remove_metrics_dir(path)                         # master, at exit

Each front master gets its own directory, ``<metrics_dir>/front-<pid>``: on a
reload the arbiter starts a new front on the same socket while the old one
drains, and the old one's workers still write to their files. Directories
of masters that no longer run are removed when a master starts. A dead
worker's counter files stay (its requests still count); a restarted front
starts from zero, a counter reset that ``rate()`` and ``increase()`` expect.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "front-"
ENV = "PROMETHEUS_MULTIPROC_DIR"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_metrics_dir(parent: str) -> str:
    """Make this master's empty directory, remove dead masters' ones, export ``ENV``."""
    path = fresh_dir(parent, os.getpid())
    # Read by prometheus_client when a worker first imports it (after the fork).
    os.environ[ENV] = path
    _use_multiprocess_values()
    return path


def fresh_dir(parent: str, pid: int) -> str:
    """``<parent>/front-<pid>``, empty; the directories of masters that are gone removed."""
    os.makedirs(parent, mode=0o700, exist_ok=True)
    for name in os.listdir(parent):
        if not name.startswith(PREFIX):
            continue
        try:
            owner = int(name[len(PREFIX):])
        except ValueError:
            continue
        if owner == pid or not _alive(owner):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    path = os.path.join(parent, f"{PREFIX}{pid}")
    os.makedirs(path, mode=0o700)
    return path


def _use_multiprocess_values() -> None:
    """Switch prometheus_client to mmap values if it was imported before ``ENV`` was set.

    It picks its value class once, at import; a module imported early (a
    test, another collector) would otherwise leave this process writing
    values that no scrape can see.
    """
    import sys
    values: Any = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def process_dead(path: str, pid: int) -> None:
    """Stop counting the live gauges of the dead worker ``pid``; never raises."""
    try:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    except OSError as exc:
        log.warning("cannot mark front worker %d dead in %s: %s", pid, path, exc)


def remove_metrics_dir(path: str) -> None:
    """Remove this master's directory (it stops; nobody scrapes it any more)."""
    shutil.rmtree(path, ignore_errors=True)
