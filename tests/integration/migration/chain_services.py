# ruff: noqa: UP010, UP025, UP031
"""Two services that call each other through the broker (Python 2.7 and 3).

``shop.quote`` calls ``tax.compute`` with the protocol client, by service name,
never through the gateway; the nested call carries the caller's request id
(``protocol.worker.current()``), which is the broker's sticky key for a split
(SPEC 2.14). Each answer says which interpreter produced it.
"""
from __future__ import absolute_import, division, print_function

import os
import sys

from protocol.client import Client

RUNTIME = u"py%d" % sys.version_info[0]
_CLIENT = []  # one client per process, made on first use


def _client():
    # type: () -> Client
    if not _CLIENT:
        _CLIENT.append(Client(os.environ["GATEWAY_BROKER"], timeout=5.0))
    return _CLIENT[0]


def compute(amount):
    # type: (int) -> dict
    """The tax on ``amount`` cents, and who computed it (``TAX_FAIL`` set: a broken port)."""
    if os.environ.get("TAX_FAIL"):
        raise RuntimeError("the tax port is broken")
    return {u"tax": amount * 20 // 100, u"runtime": RUNTIME}


def quote(amount):
    # type: (int) -> dict
    """A price with its tax, the tax asked of the tax service."""
    tax = _client().call(u"tax", u"compute", {u"amount": amount})
    return {u"caller": RUNTIME, u"tax": tax}


TAX = {"compute": compute}
SHOP = {"quote": quote}
