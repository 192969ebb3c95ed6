"""Copying a replica's output into the log sink, line by line, prefixed with its label.

The arbiter calls :func:`drain` when :class:`~gateway.arbiter.events.Events`
reports output (one read, so one chatty child cannot starve the loop) and once
more, to the end, when it reaps the replica::

    drain(replica, sink, events, final=True)   # everything left, then unwatch

At end of file the pipe is unwatched and closed, and a last line without its
newline is still emitted.
"""

from __future__ import annotations

from gateway.arbiter.events import Events
from gateway.arbiter.logs import LogSink
from gateway.arbiter.units import Replica


def drain(r: Replica, sink: LogSink, events: Events, final: bool) -> None:
    """Copy the replica's available output to the log sink (all of it when ``final``)."""
    child = r.child
    if child is None:
        return
    while True:
        data = child.read_output()
        if data is None:
            break
        if data == b"":
            events.unwatch_output(child)
            lines = r.output.flush()
        else:
            lines = r.output.feed(data)
        for line in lines:
            sink.emit(r.label, child.pid, line)
        if data == b"" or not final:
            break
