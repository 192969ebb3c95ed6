"""The ZeroMQ broker: Majordomo (MDP/0.1) routing, heartbeats, deadlines and the event bus.

::

    from gateway.broker import Broker, BrokerConfig
    broker = Broker(BrokerConfig(endpoints=("tcp://127.0.0.1:5555",),
                                 events_pub="tcp://127.0.0.1:5556",
                                 events_sub="tcp://127.0.0.1:5557"))
    broker.start()        # a thread; or `python -m gateway.broker --bind ...` as a process
    broker.stop()

Modules, one concern each: ``broker`` (the loop), ``registry`` (services,
workers, requests), ``outlier`` (ejecting workers that keep missing deadlines),
``header`` (the header fields it routes by), ``events``
(XSUB/XPUB proxy), ``security`` (loopback rule and CURVE), ``__main__`` (the
command line).

This package is the reference implementation. ``native/`` holds the compiled
broker (C against libzmq, ``build/gateway-broker``, built by ``make setup``):
the same command line and the same behaviour on every path, with its hot path
out of Python. ``[broker] implementation`` chooses which one ``gateway up``
runs, and one conformance suite (``tests/gateway/test_broker*.py``,
``tests/integration/rpc``) runs against both.
"""

from gateway.broker.broker import Broker, BrokerConfig
from gateway.broker.events import EventProxy
from gateway.broker.security import CurveKeys, is_loopback

__all__ = ["Broker", "BrokerConfig", "CurveKeys", "EventProxy", "is_loopback"]
