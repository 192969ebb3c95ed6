# ruff: noqa: UP010, UP025
"""The ``echo`` contract (protocol/spec/echo.json) as a function table, for rpc tests (2/3).

::

    python -m protocol.worker --broker EP --service echo tests.integration.http.echo_service:TABLE
"""
from __future__ import absolute_import, division, print_function

import hashlib

from protocol.codec import Bytes


def echo(value):
    # type: (object) -> object
    """Return the value unchanged."""
    return value


def upper(text):
    # type: (str) -> str
    """Upper-case text."""
    return text.upper()


def checksum(data):
    # type: (bytes) -> dict
    """SHA-256 and size of bytes."""
    return {u"sha256": hashlib.sha256(Bytes(data)).hexdigest(), u"size": len(data)}


TABLE = {u"echo": echo, u"upper": upper, u"checksum": checksum}
