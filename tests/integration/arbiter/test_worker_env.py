"""A ``runtime = "command"`` service finds the broker and the rest in its environment (SPEC 2.12).

One command worker per interpreter, started by ``gateway up``: each connects
to ``$GATEWAY_BROKER`` on its own, and answers with what the supervisor set.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from protocol.client import Client
from tests.support.procs import free_port, python2

ENVWORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "envworker.py")


@pytest.mark.parametrize("runtime", ["py2", "py3"])
def test_a_command_service_sees_the_supervisor_environment(estate, runtime: str) -> None:
    python = python2() if runtime == "py2" else sys.executable
    port = free_port()
    e = estate(f"""
[services.plain]
runtime = "command"
command = [{json.dumps(python)}, {json.dumps(ENVWORKER)}]
ready = "broker"

[services.listening]
runtime = "command"
command = [{json.dumps(python)}, {json.dumps(ENVWORKER)}, "--fd", "{{fd}}"]
listen = "127.0.0.1:{port}"
ready = "broker"
""")
    broker = "ipc://" + os.path.join(e.run_dir, "broker.ipc")
    with Client(broker, timeout=10.0) as client:
        plain = client.call("plain", "env")
        listening = client.call("listening", "env")
    assert plain["GATEWAY_BROKER"] == listening["GATEWAY_BROKER"] == broker
    assert (plain["GATEWAY_SERVICE"], listening["GATEWAY_SERVICE"]) == ("plain", "listening")
    assert plain["GATEWAY_REPLICA"] == listening["GATEWAY_REPLICA"] == "0"
    assert plain["GATEWAY_REDIS_URL"] == "unix://" + os.path.join(e.run_dir, "redis.sock")
    assert plain["NOTIFY_SOCKET"] and os.path.exists(plain["NOTIFY_SOCKET"])
    assert (plain["GATEWAY_LISTEN_FD"], plain["listen_port"]) == (None, None)
    assert listening["GATEWAY_LISTEN_FD"] == listening["argv_fd"]
    assert listening["listen_port"] == port
