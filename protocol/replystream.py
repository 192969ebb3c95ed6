"""Reading a streamed reply (SPEC 2.7, 2.11): parts until the final one, gaps bounded.

::

    for env in client.request(u"web", http_envelope, idle_timeout=60.0):
        ...                 # each reply part; leaving the loop early cancels the request

The request's deadline bounds the wait for its first part; from then on each
wait for the next part is bounded by ``idle_timeout`` (the clock runs while we
wait for a part, as nginx's ``proxy_read_timeout``). An error part is raised
as its typed exception. A caller that stops before the final part (it closes
the generator, or a timeout ends it) cancels the request, and late parts are
dropped by the client.
"""
from __future__ import absolute_import, division, print_function

import time

from protocol.errors import Timeout, from_wire
from protocol.pending import decode_reply

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Iterator  # noqa: F401

    from protocol import codec  # noqa: F401
    from protocol.pending import Pending  # noqa: F401


def stream(client, service, envelope, timeout=None, idle_timeout=None):
    # type: (Any, str, codec.Envelope, float, float) -> Iterator[codec.Envelope]
    """Send ``envelope`` through ``client`` when first asked, then yield its reply parts.

    At the end the client forgets the request, and cancels it unless it finished.
    """
    pending = client._start(service, envelope, timeout)  # type: Pending
    if idle_timeout is None:
        idle_timeout = max(0.0, pending.deadline - time.time())
    finished = started = False
    try:
        while True:
            try:
                reply = pending._wait_frames()
            except Timeout:
                if started:
                    raise Timeout(u"no reply part within the idle timeout (%.3gs)"
                                  % (idle_timeout,), id=pending.id)
                raise
            env = decode_reply(reply, envelope.kind)
            if not env.more:
                finished = True
            if env.kind == u"error":
                raise from_wire(env.error or {})
            started = True
            yield env
            if finished:
                return
            # From the head on, the stream is bounded by its gaps, not the deadline.
            pending.deadline = time.time() + idle_timeout
    finally:
        client._calls.forget(pending.id)
        if not finished:
            client.cancel(service, pending.id, envelope.rid)
