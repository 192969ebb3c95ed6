"""The function table the RPC end-to-end tests serve (2.7 and 3.x; imports no gateway).

``RPC_EXEC_LOG`` (an environment variable) names a file to which every
``work`` call appends its request id before it returns, so a test can prove
that no call ran twice.
"""
# This file also runs on Python 2.7.
# ruff: noqa: UP010, UP025, UP031
from __future__ import absolute_import, division, print_function

import os
import sys
import time

from protocol.worker import current


def echo(value):
    """Return the value unchanged."""
    return value


def work(ms=0, tag=None):
    """Sleep ``ms`` milliseconds, log the request id, and say who did it."""
    if ms:
        time.sleep(ms / 1000.0)
    path = os.environ.get("RPC_EXEC_LOG")
    if path:
        ctx = current()
        with open(path, "a") as fh:
            fh.write("%s %d\n" % (ctx.id, os.getpid()))
    return {u"pid": os.getpid(), u"tag": tag}


def sleep(seconds):
    """Sleep longer than a test's deadline."""
    time.sleep(seconds)
    return u"woke"


def runtime():
    """Which interpreter answered."""
    return u"%d.%d" % sys.version_info[:2]


TABLE = {u"echo": echo, u"work": work, u"sleep": sleep, u"runtime": runtime}
