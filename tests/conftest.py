"""Fixtures shared by every test package; each cleans up what it creates."""
from __future__ import absolute_import, division, print_function

import shutil
import tempfile

import pytest

from tests.support.procs import ProcessGroup


@pytest.fixture
def procs():
    """A ProcessGroup whose processes are all stopped, by PID, after the test."""
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.close()


@pytest.fixture
def workdir():
    """A private temporary directory, removed after the test."""
    path = tempfile.mkdtemp(prefix="gw-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def redis_server(workdir):
    """A private redis-server on a free loopback port."""
    from tests.support.redis_server import RedisServer
    server = RedisServer(workdir)
    try:
        yield server
    finally:
        server.stop()
