"""The queue's errors, one tree under :class:`~protocol.errors.ProtocolError` (2.7 and 3.x).

::

    ProtocolError
     +-- QueueError                      any queue failure
          +-- QueueUnavailable (Unavailable)  Redis unreachable after bounded retries
          +-- QueueTimeout (Timeout)          wait() ran out of time
          +-- QueueConfigError (ValueError)   a client without timeouts, a bad name
          +-- JobNotFound (KeyError)          no record for that job id
          +-- Reject                          raised by a handler: dead-letter now

Each has the ``code`` it carries on the wire (SPEC 8.4).
"""
from __future__ import absolute_import, division, print_function

from protocol.errors import ProtocolError, Timeout, Unavailable


class QueueError(ProtocolError):
    """Base class of the queue's errors."""

    code = "queue"


class QueueUnavailable(QueueError, Unavailable):
    """Redis did not answer within the retry budget (down, restarting, unreachable)."""

    code = "unavailable"


class QueueTimeout(QueueError, Timeout):
    """A wait for a job's outcome ran out of time."""

    code = "timeout"


class QueueConfigError(QueueError, ValueError):
    """The queue was configured in a way that could hang or misbehave."""

    code = "queue_config"


class JobNotFound(QueueError, KeyError):
    """No record exists for the job id (never enqueued, or its result expired)."""

    code = "job_not_found"


class Reject(QueueError):
    """Raised by a handler to send its job to the dead-letter list without retrying."""

    code = "rejected"
