"""``python -m gateway.broker``: exit statuses for a refused bind, a crash and a signal."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import pytest
import zmq

from gateway.broker import __main__ as broker_main
from gateway.broker.broker import Broker
from tests.support.procs import ProcessGroup, free_port


def test_bind_failure_exits_2_without_a_traceback(procs: ProcessGroup) -> None:
    taken = zmq.Context.instance().socket(zmq.REP)
    taken.linger = 0
    try:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        proc = procs.spawn([sys.executable, "-m", "gateway.broker",
                            "--bind", f"tcp://127.0.0.1:{port}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=30)
    finally:
        taken.close(linger=0)
    assert proc.returncode == 2
    assert b"cannot bind" in err and b"Traceback" not in err
    assert b"broker ready" not in out


def test_sigterm_exits_0_after_ready(procs: ProcessGroup) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = procs.spawn([sys.executable, "-m", "gateway.broker", "--bind", endpoint],
                       stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().decode().startswith("broker ready tcp://127.0.0.1:")
    procs.signal(proc, signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_a_dying_loop_is_logged_and_exits_1(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken(self: Broker, sock: object) -> None:
        raise RuntimeError("loop bug")
    monkeypatch.setattr(Broker, "_loop", broken)
    monkeypatch.setattr(broker_main.signal, "signal", lambda *args: None)
    with caplog.at_level(logging.CRITICAL, logger="gateway.broker"):
        status = broker_main.main(["--bind", "tcp://127.0.0.1:*"])
    assert status == 1
    assert any("loop bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)
