"""A service migration carried out by the broker, end to end (SPEC 2.14).

``gateway up`` runs ``shop`` (py2, or py3), which calls ``tax`` (py2) through the
broker, and ``tax3``, the port of ``tax`` on Python 3. ``[migrations.tax]
service = "tax"`` is moved with ``gateway migrate``: a canary of 30% sends
exactly the keys whose bucket is below 30 to the port, the same keys every time,
and a rollback puts every key back on py2 before the command returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from typing import Any

import pytest

from protocol.client import Client
from protocol.errors import RemoteError
from tests.integration.migration.conftest import MigrationEstate
from tests.support.broker import wait_for_service
from tests.support.procs import REPO

pytestmark = pytest.mark.slow

MODULE = "tests.integration.migration.chain_services"
KEYS = [f"user-{i}" for i in range(200)]


def body(caller: str, port_env: str = "{}", thresholds: str = "") -> str:
    return f"""
[[routes]]
prefix = "/rpc"
backend = "rpc"

[services.shop]
runtime = "{caller}"
module = "{MODULE}:SHOP"

[services.tax]
runtime = "py2"
module = "{MODULE}:TAX"

[services.tax3]
runtime = "py3"
module = "{MODULE}:TAX"
env = {port_env}

[migrations.tax]
service = "tax"
py3 = "tax3"
{thresholds}
"""


def side(key: str, percent: int) -> str:
    """Where SPEC 2.14 puts ``key``'s calls of ``tax`` at ``percent``."""
    return "py3" if zlib.crc32(f"tax:{key}".encode()) % 100 < percent else "py2"


def sides(client: Client, caller: str) -> list[str]:
    """Quote once per key (its request id); the runtime that computed each tax."""
    out = []
    for key in KEYS:
        answer: Any = client.call("shop", "quote", {"amount": 1000}, rid=key)
        assert answer["caller"] == caller and answer["tax"]["tax"] == 200
        out.append(answer["tax"]["runtime"])
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("caller", ["py2", "py3"])
def test_canary_in_the_broker_is_sticky_and_rolls_back_at_once(
        procs: Any, workdir: str, caller: str) -> None:
    e = MigrationEstate(procs, workdir, body(caller))
    try:
        e.start(timeout=90)
        endpoint = "ipc://" + os.path.join(e.run_dir, "broker.ipc")
        for service in ("shop", "tax", "tax3"):
            wait_for_service(endpoint, service)
        client = Client(endpoint, timeout=10.0)
        try:
            assert sides(client, caller) == ["py2"] * len(KEYS)
            assert e.migrate("shadow", "tax")[0] == 0
            code, doc = e.migrate("canary", "tax", "30")
            assert code == 0 and doc["state"]["mode"] == "canary", doc
            expected = [side(key, 30) for key in KEYS]
            assert 30 < expected.count("py3") < 90
            assert sides(client, caller) == expected
            assert sides(client, caller) == expected  # sticky: the same keys again
            sent = 2 * expected.count("py3")
            assert e.report("tax")["split"] == {"candidate": "tax3", "percent": 30,
                                                "sent": sent, "kept": 2 * len(KEYS) - sent,
                                                "sent_errors": 0, "kept_errors": 0}
            status = subprocess.run(
                [sys.executable, "-m", "gateway", "-c", e.path, "migrate", "status"],
                capture_output=True, text=True, timeout=30, cwd=REPO, check=True).stdout
            line = next(row for row in status.splitlines() if row.startswith("tax "))
            assert "canary 30%" in line and "broker: 30% to tax3" in line, status
            code, doc = e.migrate("rollback", "tax")
            assert code == 0 and doc["state"]["mode"] == "py2", doc
            assert sides(client, caller) == ["py2"] * len(KEYS)
        finally:
            client.close()
        stats = json.loads(_mmi_stats(endpoint))
        assert stats["splits"]["tax"]["candidate"] == "tax3"
        assert stats["splits"]["tax"]["percent"] == 0
        report = e.report("tax")
        assert (report["kind"], report["target"], report["py2"]) == ("service", "tax", "tax")
        assert [a["to"] for a in e.api("GET", "/_gateway/api/audit?name=tax")[1]["audit"]][:3] \
            == ["py2", "canary 30%", "shadow"]
    finally:
        e.close()


@pytest.mark.timeout(240)
def test_a_failing_port_is_rolled_back_once_by_its_error_budget_in_the_broker(
        procs: Any, workdir: str) -> None:
    e = MigrationEstate(procs, workdir, body("py2", '{ TAX_FAIL = "1" }',
                                             "min_error_samples = 5\nerror_budget = 0.05"))
    try:
        e.start(timeout=90)
        endpoint = "ipc://" + os.path.join(e.run_dir, "broker.ipc")
        for service in ("shop", "tax", "tax3"):
            wait_for_service(endpoint, service)
        assert e.migrate("shadow", "tax")[0] == 0
        assert e.migrate("canary", "tax", "30")[0] == 0
        client = Client(endpoint, timeout=10.0)
        failed = 0
        try:
            for key in KEYS:  # bounded: 200 calls at most
                try:
                    client.call("shop", "quote", {"amount": 1000}, rid=key)
                except RemoteError:
                    failed += 1
                    assert side(key, 30) == "py3"  # only the port fails
                if e.report("tax")["state"]["mode"] == "py2":
                    break
            assert e.report("tax")["state"]["mode"] == "py2", "no automatic rollback"
            assert failed >= 5
            # Rolled back: every key is served by py2 again.
            assert sides(client, "py2") == ["py2"] * len(KEYS)
        finally:
            client.close()
        audit = e.api("GET", "/_gateway/api/audit?name=tax")[1]["audit"]
        autos = [a for a in audit if a["actor"] == "gateway:auto"]
        assert len(autos) == 1 and "in the broker" in autos[0]["reason"], audit
        assert json.loads(_mmi_stats(endpoint))["splits"]["tax"]["percent"] == 0
    finally:
        e.close()


def _mmi_stats(endpoint: str) -> str:
    import zmq
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", b"MDPC01", b"mmi.stats"])
        assert sock.poll(5000), "no mmi.stats answer"
        return str(sock.recv_multipart()[3].decode())
    finally:
        sock.close(linger=0)
