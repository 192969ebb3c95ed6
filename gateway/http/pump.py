"""A response body handed from a front thread to the event loop, with backpressure.

::

    pump = Pump(loop)
    pool.submit(pump.run, iter(wsgi_body))        # the thread iterates the body
    chunks, ended = await pump.take()             # the loop sends what is queued

At most ``Pump.LIMIT`` bytes wait between the two; a thread past it blocks
until the loop has taken them. A client that goes away
(:func:`watch_disconnect`) stops the thread at its next chunk.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from gateway.http.asgitypes import Receive


class Pump:
    """Hands body chunks from one pool thread to the event loop, with backpressure."""

    LIMIT = 1 << 20

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cond = threading.Condition()
        self.chunks: list[bytes] = []
        self.size = 0
        self.finished = False
        self.error: BaseException | None = None
        self.stopped = False
        self.gone = False
        self.waiter: asyncio.Future[None] | None = None

    def run(self, iterator: Iterator[bytes]) -> None:
        """The thread's side: iterate the body until it ends, fails or is stopped."""
        try:
            for chunk in iterator:
                if not chunk:
                    continue
                with self.cond:
                    while self.size >= self.LIMIT and not self.stopped:
                        self.cond.wait(1.0)
                    if self.stopped:
                        return
                    self.chunks.append(chunk)
                    self.size += len(chunk)
                    self._wake()
        except BaseException as exc:  # handed to the loop, which cuts the connection
            with self.cond:
                self.error = exc
        finally:
            with self.cond:
                self.finished = True
                self._wake()

    def _wake(self) -> None:
        # Called with the lock held; one call_soon_threadsafe per wait, not per chunk.
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            self.loop.call_soon_threadsafe(_resolve, waiter)

    async def take(self) -> tuple[list[bytes], bool]:
        """(the chunks queued so far, whether the body ended); waits for at least one."""
        while True:
            with self.cond:
                if self.chunks or self.finished or self.gone:
                    chunks, self.chunks, self.size = self.chunks, [], 0
                    self.cond.notify_all()
                    if self.error is not None and not chunks:
                        raise self.error
                    return chunks, self.finished and self.error is None and not self.chunks
                waiter = self.waiter = self.loop.create_future()
            await waiter

    def stop(self) -> None:
        """Ask the thread to stop at its next chunk."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def client_gone(self) -> None:
        """The client disconnected (loop side)."""
        self.gone = True
        self.stop()
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            _resolve(waiter)


def consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def quiet_close(closer: Callable[[], Any]) -> None:
    try:
        closer()
    except ValueError:  # a generator still running in the pump thread; it ends on its own
        pass


async def watch_disconnect(receive: Receive, pump: Pump,
                            delivered: Callable[[], bool]) -> None:
    """Tell ``pump`` when the client disconnects before ``delivered()`` (the request body
    was read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not delivered():
                pump.client_gone()
            return
