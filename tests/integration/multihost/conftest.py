"""Fixtures of the multi-host tests: a lab of network namespaces and the estate in it.

No namespaces on this machine (not root, a sandbox without CAP_SYS_ADMIN):
every test here is skipped, and the reason is printed. HAProxy and
redis-server missing is a failure: ``scripts/bootstrap.sh --test`` installs them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.integration.multihost.estate import Estate
from tests.support.netns import Lab, LabUnavailable


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab, removed (namespaces, veths, processes) after the test."""
    for tool in ("haproxy", "redis-server"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/bootstrap.sh --test")
    try:
        made = Lab.create()
    except LabUnavailable as exc:
        print(f"multi-host test skipped: {exc}")
        pytest.skip(f"network namespaces unavailable: {exc}")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def estate(lab: Lab, workdir: str) -> Estate:
    """Two gateway hosts, two worker hosts, Redis and HAProxy, all answering."""
    made = Estate(lab, workdir)
    made.start()
    return made
