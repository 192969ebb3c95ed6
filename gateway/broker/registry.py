"""The broker's bookkeeping: services, their workers, and requests waiting or in flight.

Pure data structures, no sockets, so the dispatch rules are testable alone::

    reg = Registry()
    w = reg.add_worker(b"id", b"echo", credit=1, expiry=3.0)
    reg.enqueue(Request(client=b"c", service=b"echo", body=[...], id="r", deadline=10_000))
    for worker, request in reg.dispatchable(b"echo", 0, expired=[]): ...

Dispatch is least-recently-used over the workers of a service that have
free credit: a worker that has just been given work goes to the back of the
line, and one with no credit left is out of the line until a reply frees it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False, slots=True)
class Request:
    """One client request as the broker sees it: routing data plus the untouched body."""

    client: bytes
    service: bytes
    body: list[bytes]
    id: str
    deadline: int
    idem: bool = False
    attempts: int = 0
    worker: bytes | None = None
    done: bool = False
    armed: bool = False
    replied: bool = False
    # Bytes of the body frames: what the request costs the broker while it is queued.
    size: int = 0
    # Counted against its worker as a failure already (outlier ejection, SPEC 2.13).
    failed: bool = False
    # The service the client asked for, when a split sent it to a candidate (SPEC 2.14):
    # replies carry this name, so the client never sees the candidate's.
    asked: bytes | None = None
    # A shadow copy (SPEC 2.14): its replies go to the comparison, never to a client.
    shadow: bool = False


@dataclass(eq=False, slots=True)
class Worker:
    """A registered worker: its service, credit and the requests it holds."""

    identity: bytes
    service: bytes
    credit: int
    expiry: float
    metadata: dict[str, Any] = field(default_factory=dict)
    # Seconds of silence after which the worker counts as dead (SPEC 2.4).
    liveness: float = 3.0
    # READY metadata said "cancel": true, so cancels are forwarded to it (SPEC 2.11).
    cancel: bool = False
    # Keyed by (client, id): ids are chosen by clients, so two clients may pick the same one.
    inflight: OrderedDict[tuple[bytes, str], Request] = field(default_factory=OrderedDict)
    # Outlier ejection (SPEC 2.13): failures in a row, times ejected, and until when
    # (monotonic seconds; 0 while routable) it gets no new requests.
    failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    returned_at: float = 0.0

    @property
    def free(self) -> int:
        """Requests the broker may still send to this worker."""
        return self.credit - len(self.inflight)


# Per-service request counts in mmi.stats (SPEC 2.9), in the order json.dumps sorts them.
OUTCOMES = ("ok", "requests", "retried", "timeout", "too_busy", "unavailable", "worker_lost")


@dataclass(eq=False)
class Service:
    """A named service: its LRU line of workers with free credit and its waiting requests."""

    name: bytes
    workers: set[bytes] = field(default_factory=set)
    idle: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    waiting: deque[Request] = field(default_factory=deque)
    # Expired requests stay in ``waiting`` (marked done) until dispatch or a compaction
    # skips them: removing each from the middle of the deque would cost O(n).
    dead: int = 0
    ever_served: bool = False
    # Body bytes of the requests really waiting (for the queue caps, SPEC 2.5).
    queued_bytes: int = 0
    # Workers registered but ejected as outliers (SPEC 2.13): out of the LRU line.
    ejected: int = 0
    # How this service's requests ended (SPEC 2.9 ``outcomes``), keys as in OUTCOMES.
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))

    @property
    def queued(self) -> int:
        """Requests really waiting (expired ones not yet swept out excluded)."""
        return len(self.waiting) - self.dead

    def sweep(self) -> None:
        """Drop expired requests from the head, and compact once they are the majority."""
        while self.waiting and self.waiting[0].done:
            self.waiting.popleft()
            self.dead -= 1
        if self.dead > 64 and self.dead * 2 > len(self.waiting):
            self.waiting = deque(r for r in self.waiting if not r.done)
            self.dead = 0


class Registry:
    """Services, workers and pending requests, plus a deadline heap for expiry."""

    def __init__(self) -> None:
        self.services: dict[bytes, Service] = {}
        self.workers: dict[bytes, Worker] = {}
        self._deadlines: list[tuple[int, int, Request]] = []
        self._seq = itertools.count()
        # Every service's waiting requests together, for the total caps (SPEC 2.5).
        self.queued = 0
        self.queued_bytes = 0

    # ----------------------------------------------------------- services --
    def service(self, name: bytes) -> Service:
        """The named service, created on first mention."""
        svc = self.services.get(name)
        if svc is None:
            svc = self.services[name] = Service(name)
        return svc

    def known(self, name: bytes) -> bool:
        """True when a worker has ever registered for ``name``."""
        svc = self.services.get(name)
        return bool(svc and svc.ever_served)

    def live(self, name: bytes) -> bool:
        """True when ``name`` has at least one registered worker."""
        svc = self.services.get(name)
        return bool(svc and svc.workers)

    # ------------------------------------------------------------ workers --
    def add_worker(self, identity: bytes, service: bytes, credit: int, expiry: float,
                   metadata: dict[str, Any] | None = None, liveness: float = 3.0,
                   cancel: bool = False) -> Worker:
        """Register a worker and put it at the back of its service's LRU line."""
        worker = Worker(identity, service, max(1, credit), expiry, metadata or {}, liveness,
                        cancel)
        self.workers[identity] = worker
        svc = self.service(service)
        svc.workers.add(identity)
        svc.idle[identity] = None
        svc.ever_served = True
        return worker

    def remove_worker(self, identity: bytes) -> list[Request]:
        """Forget a worker; return the requests it held, oldest first."""
        worker = self.workers.pop(identity, None)
        if worker is None:
            return []
        svc = self.services.get(worker.service)
        if svc is not None:
            svc.workers.discard(identity)
            svc.idle.pop(identity, None)
            if worker.ejected_until:
                svc.ejected -= 1
        held = list(worker.inflight.values())
        worker.inflight.clear()
        for request in held:
            request.worker = None
        return held

    def expired_workers(self, now: float) -> list[bytes]:
        """Identities of workers whose heartbeat expiry has passed."""
        return [w.identity for w in self.workers.values() if w.expiry < now]

    # ----------------------------------------------------------- requests --
    def enqueue(self, request: Request, front: bool = False) -> None:
        """Queue a request for its service; ``front`` is for retries, which keep their place."""
        svc = self.service(request.service)
        if front:
            svc.waiting.appendleft(request)
        else:
            svc.waiting.append(request)
        svc.queued_bytes += request.size
        self.queued += 1
        self.queued_bytes += request.size

    def _unqueued(self, svc: Service, request: Request, keep_body: bool) -> None:
        """Account for a request leaving the queue; drop its body unless it goes to a worker.

        A done request may sit in ``waiting`` until a sweep: its body is released
        now, so a burst of expired requests gives its memory back at once.
        """
        svc.queued_bytes -= request.size
        self.queued -= 1
        self.queued_bytes -= request.size
        if not keep_body:
            request.body = []

    def arm(self, request: Request) -> None:
        """Watch the deadline of a request that is still waiting after a dispatch round.

        Only requests that had to wait enter the heap, so the common path
        (a worker was free) costs no heap operation.
        """
        if not request.armed and not request.done and request.worker is None:
            request.armed = True
            heapq.heappush(self._deadlines, (request.deadline, next(self._seq), request))

    def waiting(self, name: bytes) -> bool:
        """True when ``name`` has requests queued (expired ones not yet swept included)."""
        svc = self.services.get(name)
        return bool(svc is not None and svc.waiting)

    def dispatchable(self, name: bytes, now_ms: int,
                     expired: list[Request]) -> Iterator[tuple[Worker, Request]]:
        """Pair waiting requests with LRU workers that have credit.

        Requests whose deadline has passed are never dispatched: they are
        moved to ``expired`` for the caller to answer.
        """
        svc = self.services.get(name)
        if svc is None:
            return
        while svc.waiting and svc.idle:
            request = svc.waiting.popleft()
            if request.done:  # expired while queued, already answered
                svc.dead -= 1
                continue
            if request.deadline <= now_ms:
                request.done = True
                self._unqueued(svc, request, keep_body=False)
                expired.append(request)
                continue
            self._unqueued(svc, request, keep_body=True)
            identity = next(iter(svc.idle))
            worker = self.workers[identity]
            del svc.idle[identity]
            worker.inflight[request.client, request.id] = request
            request.worker = identity
            request.attempts += 1
            if worker.free > 0:
                svc.idle[identity] = None
            yield worker, request

    def find_queued(self, name: bytes, client: bytes, request_id: str) -> Request | None:
        """The request ``client`` sent to ``name`` with ``request_id``, if it is still queued.

        A linear scan: only a cancel asks, and the common path keeps no extra index.
        """
        svc = self.services.get(name)
        if svc is None:
            return None
        for request in svc.waiting:
            if not request.done and request.client == client and request.id == request_id:
                return request
        return None

    def drop_queued(self, request: Request) -> None:
        """Take a queued request out of its queue for good (it was cancelled)."""
        request.done = True
        svc = self.services.get(request.service)
        if svc is not None:
            self._unqueued(svc, request, keep_body=False)
            svc.dead += 1
            svc.sweep()

    def find_inflight(self, name: bytes, client: bytes,
                      request_id: str) -> tuple[Worker, Request] | None:
        """The worker of ``name`` holding ``client``'s request ``request_id``, and the request."""
        svc = self.services.get(name)
        if svc is None:
            return None
        for identity in svc.workers:
            worker = self.workers.get(identity)
            request = worker.inflight.get((client, request_id)) if worker else None
            if worker is not None and request is not None:
                return worker, request
        return None

    def match(self, worker: Worker, client: bytes, request_id: str | None) -> Request | None:
        """The in-flight request a reply answers.

        Our replies name the request id. A raw MDP worker's reply does not:
        it answers its oldest request from that client.
        """
        if request_id is not None:
            return worker.inflight.get((client, request_id))
        for request in worker.inflight.values():
            if request.client == client:
                return request
        return None

    def release(self, worker: Worker, request: Request) -> None:
        """The final reply came back: free the worker's credit and close the request."""
        worker.inflight.pop((request.client, request.id), None)
        request.done = True
        request.worker = None
        svc = self.services.get(worker.service)
        if svc is not None and worker.identity in svc.workers \
                and worker.identity not in svc.idle and not worker.ejected_until:
            svc.idle[worker.identity] = None

    def pop_expired(self, now_ms: int) -> list[Request]:
        """Waiting (never dispatched) requests whose deadline has passed, marked done."""
        out: list[Request] = []
        swept: set[Service] = set()
        while self._deadlines and self._deadlines[0][0] <= now_ms:
            _, _, request = heapq.heappop(self._deadlines)
            request.armed = False
            if request.done or request.worker is not None:
                continue
            request.done = True
            out.append(request)
            svc = self.services.get(request.service)
            if svc is not None:
                self._unqueued(svc, request, keep_body=False)
                svc.dead += 1
                swept.add(svc)
        for svc in swept:
            svc.sweep()
        return out

    def armed(self) -> bool:
        """True when some request's deadline is being watched (the expiry heap is not empty)."""
        return bool(self._deadlines)

    def next_deadline(self) -> int | None:
        """The earliest deadline among queued requests (ms), for the poll timeout."""
        while self._deadlines and (self._deadlines[0][2].done
                                   or self._deadlines[0][2].worker is not None):
            heapq.heappop(self._deadlines)[2].armed = False
        return self._deadlines[0][0] if self._deadlines else None

