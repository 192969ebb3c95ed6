"""A tiny worker table that says which process answered (2.7 and 3.x), for failover tests.

::

    python -m protocol worker --broker A,B --service pidcalc tests.support.pidcalc:TABLE
"""
from __future__ import absolute_import, division, print_function

import os
import time


def pid():
    # type: () -> int
    """This worker process's id."""
    return os.getpid()


def slow(seconds):
    # type: (float) -> int
    """Sleep ``seconds`` (a handler still running when its broker dies), then say who."""
    time.sleep(seconds)
    return os.getpid()


TABLE = {u"pid": pid, u"slow": slow}
