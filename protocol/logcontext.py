"""Request id and trace id on every log line a worker writes about a request (2.7 and 3.x).

:class:`RequestFilter` stamps each log record with ``rid`` and ``trace_id``
from :func:`protocol.context.current` (``-`` outside a request), so a format
string can name them whichever logger wrote the line::

    import logging
    from protocol import logcontext

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(logcontext.FORMAT))
    handler.addFilter(logcontext.RequestFilter())

or, for the root logger's handlers: ``logcontext.install()``. The filter is
put on handlers, not loggers, because a logger's filters do not see records
propagated from its children (``logging`` docs, "Filter Objects").
"""
from __future__ import absolute_import, division, print_function

import logging

from protocol.context import current

FORMAT = ("%(asctime)s %(name)s %(levelname)s rid=%(rid)s trace_id=%(trace_id)s "
          "%(message)s")


class RequestFilter(logging.Filter):
    """Add ``record.rid`` and ``record.trace_id`` of the request this thread handles."""

    def filter(self, record):
        # type: (logging.LogRecord) -> bool
        ctx = current()
        if ctx is None:
            record.rid = getattr(record, "rid", "-")
            record.trace_id = getattr(record, "trace_id", "-")
        else:
            record.rid = ctx.rid
            record.trace_id = ctx.trace.trace_id
        return True


def install(logger=None, fmt=FORMAT):
    # type: (logging.Logger, str) -> None
    """Put a :class:`RequestFilter` and ``fmt`` on every handler of ``logger`` (root)."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RequestFilter) for f in handler.filters):
            handler.addFilter(RequestFilter())
        handler.setFormatter(logging.Formatter(fmt))
