# ruff: noqa: UP010, UP025, UP031
"""``shop`` calls ``tax`` through the broker; ``tax``'s port is shadowed (Python 2.7 and 3).

Both sides of ``tax`` answer the same tax; each answer carries a fresh ``serial``,
so two answers always differ there (noise the comparer learns by asking the
primary again). The port's environment makes it wrong or hung on purpose:
``TAX_BUG`` writes the currency in lower case, ``TAX_HANG`` sleeps far longer
than any shadow copy's deadline.
"""
from __future__ import absolute_import, division, print_function

import os
import sys
import time
import uuid

from protocol.client import Client

RUNTIME = u"py%d" % sys.version_info[0]
HANG_S = 30.0  # bounded: the test ends long before, and kills the process by PID
_CLIENT = []  # one client per process, made on first use


def _client():
    # type: () -> Client
    if not _CLIENT:
        _CLIENT.append(Client(os.environ["GATEWAY_BROKER"], timeout=5.0))
    return _CLIENT[0]


def compute(amount):
    # type: (int) -> dict
    """The tax on ``amount`` cents in euros, with a serial unique to this answer."""
    if os.environ.get("TAX_HANG"):
        time.sleep(HANG_S)
    currency = u"eur" if os.environ.get("TAX_BUG") else u"EUR"
    return {u"tax": amount * 20 // 100, u"currency": currency, u"serial": uuid.uuid4().hex}


def quote(amount):
    # type: (int) -> dict
    """A price with its tax, the tax asked of the tax service by name."""
    tax = _client().call(u"tax", u"compute", {u"amount": amount})
    return {u"caller": RUNTIME, u"tax": tax}


TAX = {"compute": compute}
SHOP = {"quote": quote}
