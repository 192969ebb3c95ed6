"""Fixtures for the estate end to end: a broker, and a Python 2.7 and a Python 3
worker for every example service, all real processes on ipc:// in a temp dir.

::

    def test_x(estate):
        estate.client.call(u"highlight-py2", u"render", {u"code": u"x"})

Workers register as ``<service>-py2`` and ``<service>-py3``; each
implementation's thumbnails consumer drains its own queue (``thumbs-py2``,
``thumbs-py3``) on a private Redis; both share one legacy SQLite database.
"""

import os
import sys

import pytest

from tests.support.broker import start_broker, wait_for_service
from tests.support.procs import python2, python3

SERVICES = ("highlight", "htmldiff", "thumbnails", "whoami")
IMPLS = ("py2", "py3")


class Estate:
    """What a test needs: the client, the endpoint and the shared database path."""

    def __init__(self, endpoint, client, db):
        # type: (str, object, str) -> None
        self.endpoint = endpoint
        self.client = client
        self.db = db


def _interpreter(impl):
    # type: (str) -> str
    return python2() if impl == "py2" else python3()


@pytest.fixture
def broker(procs, workdir):
    """A broker bound to an ipc:// endpoint in the test's temp dir."""
    return start_broker(procs, "ipc://" + os.path.join(workdir, "broker.ipc"), heartbeat_ms=250)


@pytest.fixture
def estate(procs, broker, workdir, redis_server):
    """Both implementations of every service behind one broker; yields an :class:`Estate`."""
    from protocol.client import Client
    db = os.path.join(workdir, "legacy.sqlite3")
    env = {"LEGACY_DB": db, "GATEWAY_REDIS_URL": redis_server.url}
    names = []
    for impl in IMPLS:
        impl_env = dict(env, THUMBNAILS_QUEUE="thumbs-" + impl)
        for service in SERVICES:
            name = f"{service}-{impl}"
            names.append(name)
            procs.spawn([_interpreter(impl), "-m", "protocol.worker", "--broker", broker,
                         "--service", name, f"{impl}_services.{service}:TABLE"],
                        env=impl_env)
        with open(os.devnull, "w") as quiet:
            procs.spawn([_interpreter(impl), "-m", f"{impl}_services.thumbnails"],
                        env=impl_env, stdout=quiet)
    client = Client(broker, timeout=20.0)
    try:
        for name in names:
            wait_for_service(broker, name, timeout=60)
        yield Estate(broker, client, db)
    finally:
        client.close()
        sys.stdout.flush()
