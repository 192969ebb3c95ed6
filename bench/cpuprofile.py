"""Where a front's CPU goes: py-spy samples of it under a fixed load, summed by function.

``python -m bench.cpu --profile DIR`` runs this after its table: for each
path it records the front's processes with py-spy while a bounded load runs,
writes the folded stacks to ``DIR/<path>.txt`` (flamegraph input), and lists
the functions holding the largest share of the samples (inclusive, by
function, every line of it together)::

    samples = record(front_pid, "/tmp/prof/wsgi3.txt", lambda: load(port, 20000))
    for share, name in top("/tmp/prof/wsgi3.txt", 25): ...

py-spy attaches to the running process (ptrace), so it needs that right; a
machine without py-spy gets a note instead of the table.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable

STOP_S = 20.0   # how long py-spy may take to write its file once told to stop
_LINE = re.compile(r":\d+\)$")
_STDLIB = re.compile(r"lib/python3\.\d+/")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def py_spy() -> str | None:
    """The py-spy next to this interpreter, else on PATH, else None."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.access(here, os.X_OK) else shutil.which("py-spy")


def record(pid: int, out: str, load: Callable[[], int], rate: int = 500) -> int:
    """Sample ``pid`` and its children while ``load()`` runs; folded stacks go to ``out``.

    Returns what ``load`` returned. py-spy is stopped with SIGINT (it then
    writes the file) and killed by PID if it does not end within ``STOP_S``.
    """
    tool = py_spy()
    if tool is None:
        raise RuntimeError("py-spy is not installed (pip install -r requirements/dev.txt)")
    proc = subprocess.Popen([tool, "record", "--pid", str(pid), "--subprocesses",
                             "--rate", str(rate), "--format", "raw", "--nonblocking",
                             "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        result = load()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError("py-spy did not stop") from None
    if not os.path.exists(out):
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}")
    return result


def top(path: str, count: int = 25) -> list[tuple[float, str]]:
    """The ``count`` functions with the most samples under them, as (share, name)."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            stack, _, number = line.rstrip("\n").rpartition(" ")
            if not stack or not number.isdigit():
                continue
            samples = int(number)
            total += samples
            # each function once per stack; py-spy's per-process lines are not functions
            names = {_short(frame) for frame in stack.split(";")
                     if not frame.startswith("process ")}
            for name in names:
                inclusive[name] += samples
    if not total:
        return []
    return [(n / total, name) for name, n in inclusive.most_common(count)]


def _short(frame: str) -> str:
    """``name (file:line)`` as ``name (file)``, the file from the repository's top, its
    package (site-packages) or the standard library."""
    name, sep, place = _LINE.sub(")", frame).partition(" (")
    if not sep:
        return frame
    place = place[:-1]
    if "site-packages/" in place:
        place = place.rsplit("site-packages/", 1)[1]
    elif place.startswith(_ROOT):
        place = place[len(_ROOT):]
    else:
        std = _STDLIB.search(place)
        if std is not None:
            place = place[std.end():]
    return f"{name} ({place})"
