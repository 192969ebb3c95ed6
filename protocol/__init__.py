"""The shared protocol: spec, contracts, vectors and a 2/3 runtime library.

This package runs unchanged on Python 2.7 and 3.x and never imports
``gateway``. Its public API::

    from protocol import codec, errors
    from protocol.codec import Envelope, Bytes

See ``protocol/SPEC.md`` for the normative wire format.
"""
from __future__ import absolute_import, division, print_function

from protocol.client import Client
from protocol.codec import Bytes, Envelope, decode, encode
from protocol.context import current
from protocol.errors import (
    EnvelopeError,
    InvalidParams,
    ProtocolError,
    RemoteError,
    Timeout,
    TooLarge,
    Unavailable,
    UnknownMethod,
    UnknownService,
    WorkerLost,
)
from protocol.events import Publisher, Subscriber
from protocol.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Bytes", "Envelope", "EnvelopeError", "InvalidParams", "ProtocolError",
    "RemoteError", "Timeout", "TooLarge", "Unavailable", "UnknownMethod",
    "UnknownService", "WorkerLost", "decode", "encode",
    "Client", "Publisher", "Subscriber", "Worker", "current",
]
