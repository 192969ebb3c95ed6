"""The protocol's exceptions and the wire error codes they map to.

::

    ProtocolError                       code       HTTP
     +-- EnvelopeError (ValueError)     envelope   400  a frame or header is malformed
     +-- Timeout                        timeout    504  the deadline passed first
     +-- Unavailable                    unavailable 503 no live worker / broker down
     |    +-- UnknownService            unknown_service 404
     |    +-- TooBusy                   too_busy   503  the broker's queue is full
     |    +-- BrokerLost                (local)    503  the link to the broker broke
     +-- WorkerLost                     worker_lost 502 the worker died mid-request
     +-- TooLarge                       too_large  413  a frame exceeds the size limit
     +-- Cancelled                      cancelled  499  the client cancelled the request
 +-- ZmtpError                      (local)    502  a ZMTP link's peer broke ZMTP
     +-- RemoteError                    remote     500  the handler raised
          +-- UnknownMethod             unknown_method 404
          +-- InvalidParams (ValueError) invalid_params 422

Every error that crosses a wire is an error envelope carrying ``code``;
:func:`from_wire` turns it back into the matching exception so that a
Python 2 caller and a Python 3 caller see the same class.
"""
from __future__ import absolute_import, division, print_function


class ProtocolError(Exception):
    """Base class of every error raised by the protocol library."""

    code = "protocol"
    status = 502

    def __init__(self, message=u"", **details):
        # type: (str, object) -> None
        Exception.__init__(self, message)
        self.message = message
        self.details = details

    def to_wire(self):
        # type: () -> dict
        """The JSON-ready error object of an error envelope (SPEC section 7)."""
        out = {u"code": self.code, u"message": u"%s" % (self.message,)}  # type: dict
        for key, value in sorted(self.details.items()):
            out[key] = value
        return out


class EnvelopeError(ProtocolError, ValueError):
    """A frame, header or payload does not follow the spec."""

    code = "envelope"
    status = 400


class Timeout(ProtocolError):
    """The deadline passed before an answer arrived."""

    code = "timeout"
    status = 504


class Unavailable(ProtocolError):
    """No live worker (or no broker) could take the request before its deadline."""

    code = "unavailable"
    status = 503


class UnknownService(Unavailable):
    """The broker has never heard of the service."""

    code = "unknown_service"
    status = 404


class TooBusy(Unavailable):
    """The broker's queue limits (count or bytes) are reached: retry later."""

    code = "too_busy"
    status = 503


class BrokerLost(Unavailable):
    """The connection to the broker closed or went silent with the request in flight.

    Never sent on a wire (it says so as ``unavailable``); a client that knows
    other brokers sends an idempotent request again there (SPEC 2.15).
    """

    code = "unavailable"
    status = 503


class WorkerLost(ProtocolError):
    """The worker died while handling a request that may not be retried."""

    code = "worker_lost"
    status = 502


class TooLarge(ProtocolError):
    """A message exceeds the configured maximum size."""

    code = "too_large"
    status = 413


class ZmtpError(ProtocolError):
    """The peer of a ZMTP link sent something ZMTP 3.x does not allow; the link is closed."""

    code = "protocol"
    status = 502


class Cancelled(ProtocolError):
    """The client cancelled the request (SPEC 2.11); 499, as nginx logs a client that left."""

    code = "cancelled"
    status = 499


class RemoteError(ProtocolError):
    """The remote handler raised; carries its type, message and traceback text."""

    code = "remote"
    status = 500

    def __init__(self, message=u"", type=u"Exception", traceback=u"", **details):  # noqa: A002
        # type: (str, str, str, object) -> None
        ProtocolError.__init__(self, message, **details)
        self.type = type
        self.traceback = traceback

    def __str__(self):
        # type: () -> str
        return "%s: %s" % (self.type, self.message)

    def to_wire(self):
        # type: () -> dict
        out = ProtocolError.to_wire(self)
        out[u"type"] = self.type
        out[u"traceback"] = self.traceback
        return out


class UnknownMethod(RemoteError):
    """The service has no such method."""

    code = "unknown_method"
    status = 404


class InvalidParams(RemoteError, ValueError):
    """The parameters do not satisfy the method's contract."""

    code = "invalid_params"
    status = 422


ERRORS = dict(
    (cls.code, cls)
    for cls in (
        ProtocolError, EnvelopeError, Timeout, Unavailable, UnknownService, TooBusy,
        WorkerLost, TooLarge, Cancelled, RemoteError, UnknownMethod, InvalidParams,
    )
)


def from_wire(obj):
    # type: (dict) -> ProtocolError
    """Rebuild the exception described by an error object from the wire."""
    if not isinstance(obj, dict):
        return EnvelopeError(u"error object must be a JSON object")
    fields = dict(obj)
    code = fields.pop(u"code", u"protocol")
    message = fields.pop(u"message", u"")
    cls = ERRORS.get(code, ProtocolError)
    details = dict((str(k), v) for k, v in fields.items())
    if issubclass(cls, RemoteError):
        return cls(message, **details)
    details.pop("type", None)
    details.pop("traceback", None)
    err = cls(message, **details)
    if cls is ProtocolError:
        err.code = code
    return err
