"""A real MDP broker process for tests: the Python reference or the compiled one.

Both implementations take the same command line, so one conformance suite
drives either (``IMPLEMENTATIONS``). The broker is started through the test's
ProcessGroup, so teardown kills it by PID::

    broker = BrokerProcess(procs, "native", heartbeat_ms=100)      # waits for "broker ready"
    broker.endpoint, broker.stats()["counters"]                    # stats through mmi.stats
    endpoint = start_broker(procs)                                 # tcp on a free port
    endpoint = start_broker(procs, "ipc://" + path, heartbeat_ms=250, impl="native")
    wait_for_service(endpoint, "echo")                             # mmi.service says 200

A missing compiled broker is a failure, not a skip: ``make setup``
(scripts/bootstrap.sh) builds it, and CI runs that first.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import select
import subprocess
import time

from tests.support.procs import REPO, free_port, python3, wait_until

IMPLEMENTATIONS = ("python", "native")
NATIVE_BINARY = os.path.join(REPO, "build", "gateway-broker")


def broker_argv(impl, args):
    # type: (str, list) -> list
    """The argv that runs broker ``impl`` ("python" or "native") with ``args``."""
    if impl == "python":
        return [python3(), "-m", "gateway.broker"] + list(args)
    if impl != "native":
        raise ValueError("unknown broker implementation %r" % (impl,))
    if not os.access(NATIVE_BINARY, os.X_OK):
        raise AssertionError(
            "the compiled broker %s is not built: run `make setup` (scripts/bootstrap.sh) "
            "or `make -C gateway/broker/native`" % NATIVE_BINARY)
    return [NATIVE_BINARY] + list(args)


class BrokerProcess(object):
    """One broker process on ``endpoint`` (default: loopback TCP on a free port)."""

    def __init__(self, procs, impl, endpoint=None, heartbeat_ms=500, extra=(), timeout=20.0):
        # type: (object, str, str, int, tuple, float) -> None
        self.impl = impl
        self.endpoint = endpoint or "tcp://127.0.0.1:%d" % free_port()
        argv = broker_argv(impl, ["--bind", self.endpoint, "--heartbeat-ms",
                                  str(heartbeat_ms)] + list(extra))
        self.proc = procs.spawn(argv, stdout=subprocess.PIPE)  # type: ignore
        self.ready_line = self._ready_line(timeout)

    def _ready_line(self, timeout):
        # type: (float) -> str
        deadline = time.time() + timeout
        out = self.proc.stdout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("the %s broker did not print 'broker ready' within "
                                     "%.0fs" % (self.impl, timeout))
            readable, _, _ = select.select([out], [], [], left)
            if readable:
                line = out.readline().decode("utf-8", "replace")
                if line.startswith("broker ready "):
                    return line.strip()
                if not line:
                    raise AssertionError("the %s broker exited with %s before it was ready"
                                         % (self.impl, self.proc.wait()))

    @property
    def pid(self):
        # type: () -> int
        """The broker's process id."""
        return self.proc.pid

    def alive(self):
        # type: () -> bool
        """True while the process runs."""
        return self.proc.poll() is None

    def stats(self, timeout=5.0):
        # type: (float) -> dict
        """The broker's ``mmi.stats`` object; AssertionError when it does not answer."""
        import zmq
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        try:
            sock.connect(self.endpoint)
            sock.send_multipart([b"", b"MDPC01", b"mmi.stats"])
            if not sock.poll(int(timeout * 1000)):
                raise AssertionError("the %s broker did not answer mmi.stats" % (self.impl,))
            return json.loads(sock.recv_multipart()[3].decode("utf-8"))
        finally:
            sock.close(linger=0)

    def counter(self, name):
        # type: (str) -> int
        """One counter of ``mmi.stats`` (0 when it was never counted)."""
        return int(self.stats()["counters"].get(name, 0))

    def workers(self, service):
        # type: (str) -> int
        """How many live workers the broker has for ``service``."""
        return int(self.stats()["services"].get(service, {}).get("workers", 0))


def start_broker(procs, endpoint=None, heartbeat_ms=500, impl="python"):
    # type: (object, str, int, str) -> str
    """Start a broker on ``endpoint`` and return the endpoint once it is bound."""
    return BrokerProcess(procs, impl, endpoint, heartbeat_ms).endpoint


def wait_for_service(endpoint, service, timeout=20.0):
    # type: (str, str, float) -> None
    """Poll mmi.service until ``service`` has a live worker at the broker."""
    from protocol.client import Client
    client = Client(endpoint, timeout=1.0)
    try:
        wait_until(lambda: client.mmi(service, timeout=1.0) == u"200", timeout,
                   what="a worker for %s" % service)
    finally:
        client.close()
