"""One worker process registered with several brokers at once (2.7 and 3.x; SPEC 2.15).

::

    from protocol.multiworker import MultiWorker

    w = MultiWorker(["tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"], u"calc",
                    table={u"add": add}, curve=curve)
    w.install_signal_handlers()   # SIGTERM/SIGINT: every link drains, then DISCONNECTs
    w.run()                       # blocks until stop()

Each broker gets a :class:`~protocol.worker.Worker` of its own: its own
DEALER, its own READY, its own heartbeats and its own reconnects, on a thread
of its own. A request is therefore answered on the socket it came from, and
losing one broker (its host dies, its link is cut) leaves the others serving
as before: the worker is simply one replica fewer on the lost broker until
it comes back and the link registers again.

Handlers may run at once on different links (at most one per broker, times
its credit), as they would in a threaded WSGI server: a service registered
with two brokers must be thread-safe, which the services of this estate are
(their state is per request or behind locks). With one endpoint the single
Worker runs on the calling thread, exactly as ``Worker.run`` does.

``on_registered`` runs once, when the first broker confirms the
registration: the process takes traffic from then on.

:func:`add_broker_arguments` and :func:`serve_from_args` are the ``--broker``
and CURVE options of ``python -m protocol worker|wsgi``, and running them;
:func:`worker_main` is the whole ``python -m protocol worker`` command line.
"""
from __future__ import absolute_import, division, print_function

import argparse
import importlib
import logging
import os
import signal
import threading

from protocol import brokers, logcontext
from protocol.brokers import ENV_LINK, LINKS, choose_link
from protocol.worker import Worker, notify_from

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any  # noqa: F401

log = logging.getLogger("protocol.worker")


class MultiWorker(object):
    """Serves one service on every broker of ``endpoints``; see the module docstring."""

    def __init__(self, endpoints, service, on_registered=None, **kwargs):
        # type: (list, str, object, Any) -> None
        if not endpoints:
            raise ValueError("give at least one broker endpoint")
        self._once = threading.Lock()
        self._notify = on_registered
        self.links = [Worker(endpoint, service, on_registered=self._registered, **kwargs)
                      for endpoint in endpoints]

    @property
    def handled(self):
        # type: () -> int
        """Requests handled over every link."""
        return sum(link.handled for link in self.links)

    def _registered(self):
        # type: () -> None
        with self._once:
            notify, self._notify = self._notify, None
        if notify is not None:
            notify()  # type: ignore[operator]

    def install_signal_handlers(self):
        # type: () -> None
        """Make SIGTERM and SIGINT stop every link gracefully (call from the main thread)."""
        def handler(signum, frame):
            # type: (int, object) -> None
            self.stop()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def stop(self):
        # type: () -> None
        """Ask every link to finish what it holds and DISCONNECT."""
        for link in self.links:
            link.stop()

    def run(self):
        # type: () -> None
        """Serve on every link until :meth:`stop`; returns once all have left."""
        if len(self.links) == 1:
            self.links[0].run()
            return
        threads = []
        for index, link in enumerate(self.links):
            thread = threading.Thread(target=self._run_link, args=(link,),
                                      name="worker-link-%d" % index)
            thread.daemon = True
            thread.start()
            threads.append(thread)
        try:
            for thread in threads:
                # A timed join: a bare join() on 2.7 would not let a signal handler run.
                while thread.is_alive():
                    thread.join(0.2)
        finally:
            self.stop()

    def _run_link(self, link):
        # type: (Worker) -> None
        try:
            link.run()
        except Exception:
            # One link dying of an error must not leave the process half-registered:
            # stop them all, and the supervisor restarts the process whole.
            log.exception("the link to %s died", link.endpoint)
            self.stop()


def add_broker_arguments(parser):
    # type: (object) -> None
    """The ``--broker`` and CURVE options shared by the worker and WSGI command lines."""
    parser.add_argument("--broker", default=os.environ.get(brokers.ENV_BROKER),  # type: ignore
                        help="broker endpoint(s), comma-separated, e.g. "
                             "tcp://10.0.0.1:5555,tcp://10.0.0.2:5555 (default $%s)"
                             % (brokers.ENV_BROKER,))
    parser.add_argument("--curve-server-key", metavar="FILE",  # type: ignore
                        default=os.environ.get(brokers.ENV_SERVER_KEY, ""),
                        help="the brokers' public certificate (default $%s)"
                             % (brokers.ENV_SERVER_KEY,))
    parser.add_argument("--curve-secret", metavar="FILE",  # type: ignore
                        default=os.environ.get(brokers.ENV_SECRET, ""),
                        help="this host's .key_secret certificate (default $%s)"
                             % (brokers.ENV_SECRET,))
    parser.add_argument("--link", choices=LINKS,  # type: ignore
                        default=os.environ.get(ENV_LINK) or "auto",
                        help="how to reach the broker: zmtp speaks ZeroMQ's protocol on the "
                             "worker's own thread, libzmq uses a libzmq socket; auto (the "
                             "default) takes zmtp for ipc:// and loopback tcp:// without "
                             "CURVE (default $%s)" % (ENV_LINK,))


def serve_from_args(parser, args, **worker_kwargs):
    # type: (object, object, object) -> int
    """Run a Worker per broker named by ``args`` until SIGTERM (see add_broker_arguments)."""
    try:
        endpoints = brokers.split_endpoints(args.broker or "")  # type: ignore
        curve = None
        if args.curve_server_key or args.curve_secret:  # type: ignore
            if not (args.curve_server_key and args.curve_secret):  # type: ignore
                raise ValueError("give both --curve-server-key and --curve-secret")
            curve = brokers.load_curve(args.curve_server_key, args.curve_secret)  # type: ignore
        brokers.check_curve(endpoints, curve)
        for endpoint in endpoints:
            choose_link(endpoint, curve, args.link)  # type: ignore
    except ValueError as exc:
        parser.error(str(exc))  # type: ignore
    worker = MultiWorker(endpoints, args.service, curve=curve,  # type: ignore
                         on_registered=notify_from(os.environ), link=args.link,  # type: ignore
                         **worker_kwargs)
    worker.install_signal_handlers()
    worker.run()
    return 0


def load_target(spec):
    # type: (str) -> object
    """Import ``module:attribute`` and return the attribute."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError("expected module:ATTRIBUTE, got %r" % (spec,))
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def worker_main(argv=None):
    # type: (list) -> int
    """The ``python -m protocol worker`` (and ``-m protocol.worker``) command line."""
    parser = argparse.ArgumentParser(prog="python -m protocol.worker")
    add_broker_arguments(parser)
    parser.add_argument("--service", required=True)
    parser.add_argument("--credit", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("target", help="module:TABLE (a dict of callables) or "
                                       "module:HANDLER (an envelope handler)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    logcontext.install()  # every line about a request names its rid and trace id
    target = load_target(args.target)
    if isinstance(target, dict):
        return serve_from_args(parser, args, table=target, credit=args.credit)
    return serve_from_args(parser, args, envelope_handler=target, credit=args.credit)
