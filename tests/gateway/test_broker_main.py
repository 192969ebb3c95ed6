"""Both brokers' command lines: exit statuses for a refused bind and a signal; the Python
broker's for a crash."""

from __future__ import annotations

import logging
import signal
import subprocess

import pytest
import zmq

from gateway.broker import __main__ as broker_main
from gateway.broker.broker import Broker
from tests.support.broker import IMPLEMENTATIONS, broker_argv
from tests.support.procs import ProcessGroup, free_port


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_bind_failure_exits_2_without_a_traceback(procs: ProcessGroup, impl: str) -> None:
    taken = zmq.Context.instance().socket(zmq.REP)
    taken.linger = 0
    try:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        proc = procs.spawn(broker_argv(impl, ["--bind", f"tcp://127.0.0.1:{port}"]),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=30)
    finally:
        taken.close(linger=0)
    assert proc.returncode == 2
    assert b"cannot bind" in err and b"Traceback" not in err
    assert b"broker ready" not in out


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_after_ready(procs: ProcessGroup, impl: str, sig: int) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = procs.spawn(broker_argv(impl, ["--bind", endpoint, "--bind", "tcp://127.0.0.1:*"]),
                       stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    assert line.startswith(f"broker ready {endpoint} tcp://127.0.0.1:")
    assert not line.rstrip().endswith(":*")  # the port actually bound is reported
    procs.signal(proc, sig)
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("args", [[], ["--bind", "tcp://127.0.0.1:*", "--heartbeat-ms", "0"],
                                  ["--bind", "tcp://127.0.0.1:*", "--heartbeat-ms", "x"],
                                  ["--bind", "tcp://127.0.0.1:*", "--startup-grace-ms", "-1"],
                                  ["--bind", "tcp://127.0.0.1:*", "--outlier-consecutive", "-1"],
                                  ["--bind", "tcp://127.0.0.1:*",
                                   "--outlier-max-ejection-percent", "101"],
                                  ["--bind", "tcp://127.0.0.1:*",
                                   "--outlier-base-ejection-ms", "0"],
                                  ["--bind", "tcp://127.0.0.1:*", "--no-such-flag", "1"]])
def test_bad_command_line_exits_2(procs: ProcessGroup, impl: str, args: list[str]) -> None:
    proc = procs.spawn(broker_argv(impl, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert b"usage:" in err and b"broker ready" not in out


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


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_events_bind_failure_exits_2(procs: ProcessGroup, impl: str) -> None:
    taken = zmq.Context.instance().socket(zmq.REP)
    taken.linger = 0
    try:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        argv = broker_argv(impl, ["--bind", f"tcp://127.0.0.1:{free_port()}",
                                  "--events-pub", f"tcp://127.0.0.1:{port}",
                                  "--events-sub", f"tcp://127.0.0.1:{free_port()}"])
        proc = procs.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=30)
    finally:
        taken.close(linger=0)
    assert proc.returncode == 2 and b"broker ready" not in out
    assert f"cannot bind tcp://127.0.0.1:{port}".encode() in err and b"Traceback" not in err
