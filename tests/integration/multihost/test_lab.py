"""The namespace lab itself: it says why it cannot run, and it leaves nothing behind."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import netns
from tests.support.netns import Lab, LabUnavailable


def test_without_root_the_lab_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    with pytest.raises(LabUnavailable, match="need root"):
        Lab.create()


def test_close_removes_every_namespace_and_process() -> None:
    try:
        lab = Lab.create()
    except LabUnavailable as exc:
        pytest.skip(f"network namespaces unavailable: {exc}")
    try:
        host = lab.host("x", "10.231.0.9")
        proc = lab.spawn(host, ["sleep", "60"])
        assert lab.pids(host) == [proc.pid]
        names = [lab.switch, host.netns]
    finally:
        lab.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            timeout=20).stdout
    assert not [n for n in names if n in listed]
    assert proc.poll() is not None
