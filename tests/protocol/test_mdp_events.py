"""Event subscriber waits are always bounded (2.7 and 3.x)."""
from __future__ import absolute_import, division, print_function

import os
import time

import pytest

from protocol.events import Subscriber


@pytest.fixture
def subscriber(workdir):
    sub = Subscriber("ipc://" + os.path.join(workdir, "nobody"), [u""])
    yield sub
    sub.close()


def test_recv_without_events_returns_none_after_the_default_timeout(subscriber):
    started = time.time()
    assert subscriber.recv() is None
    assert 0.9 <= time.time() - started < 5.0
    assert subscriber.recv(timeout=0) is None


@pytest.mark.parametrize("timeout", [None, -1])
def test_recv_refuses_an_unbounded_wait(subscriber, timeout):
    with pytest.raises(ValueError):
        subscriber.recv(timeout=timeout)
