"""Several gateways, one migration state in Redis (issue 17 item 1), across hosts.

These run once the Redis migration store exists (``gateway.migration.redisstore``,
configured with ``[migration] store = "redis"``, ``redis_url``, ``redis_prefix``);
until then they are skipped, saying so. The estate is the one of
:mod:`tests.integration.multihost.estate`, with a route migration of ``/py2``
(py2 on w2) to ``web3`` (py3 on w3) whose state lives in the Redis host.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.multihost.estate import Estate, read_records, report
from tests.support.netns import Lab
from tests.support.procs import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("gateway.migration.redisstore") is None,
                       reason="the Redis migration store (gateway.migration.redisstore, "
                              "[migration] store = \"redis\") is not built yet"),
]
HERE = os.path.dirname(os.path.abspath(__file__))

MIGRATION = """
[migration]
store = "redis"
redis_prefix = "gw-multihost-{run}:"
token_file = "{token_file}"
allow_remote_admin = true

[migrations.py3]
route = "/py2"
py3 = "web3"
state = "shadow"
ignore_pointers = ["/host", "/py", "/pid"]
min_samples = 5
"""


@pytest.fixture
def shared(lab: Lab, workdir: str) -> Iterator[tuple[Estate, str]]:
    """The estate with the shared store on the Redis host, and the admin token."""
    token = secrets.token_hex(16)
    token_file = os.path.join(workdir, "admin.token")
    with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(token + "\n")
    estate = Estate(lab, workdir, migration=MIGRATION.format(run=lab.run_id,
                                                             token_file=token_file))
    estate.start()
    yield estate, token


def admin(estate: Estate, token: str, gateway: str, path: str,
          post: dict[str, Any] | None = None) -> dict[str, Any]:
    """One admin API call to ``gateway``'s own front, from the client host."""
    argv = [sys.executable, os.path.join(HERE, "admin.py"),
            f"{estate.gateway_url(gateway)}/_gateway/api/{path}", "--token", token]
    if post is not None:
        argv += ["--post", json.dumps(post)]
    out = estate.lab.run(estate.hosts["client"], argv, timeout=30)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def state(estate: Estate, token: str, gateway: str) -> dict[str, Any]:
    """The py3 migration's report as ``gateway`` sees it."""
    reply = admin(estate, token, gateway, "migrations")
    assert reply["status"] == 200, reply
    return next(m for m in reply["body"]["migrations"] if m["name"] == "py3")


def test_a_promote_on_gateway_a_is_obeyed_by_gateway_b(shared: tuple[Estate, str],
                                                       capsys: Any) -> None:
    estate, token = shared
    assert state(estate, token, "gb")["state"]["mode"] == "shadow"
    asked = time.time()
    reply = admin(estate, token, "ga", "migrations/py3/promote",
                  {"force": True, "reason": "multihost"})
    assert reply["status"] == 200, reply
    wait_until(lambda: state(estate, token, "gb")["state"]["mode"] == "py3", 10.0,
               interval=0.05, what="gateway B obeying the promote made on A")
    seen = time.time() - asked
    audit = admin(estate, token, "gb", "audit?name=py3&limit=50")["body"]["audit"]
    promotes = [e for e in audit if e["to"] == "py3"]
    report(capsys, f"promote on A seen by B after {seen * 1000:.0f} ms (including the admin calls);"
          f" audit entries for it: {len(promotes)}")
    assert len(promotes) == 1


def test_evidence_from_both_gateways_adds_up(shared: tuple[Estate, str], workdir: str,
                                             capsys: Any) -> None:
    estate, token = shared

    def samples(gateway: str) -> int:
        """Evidence records: comparisons, plus requests whose copy was skipped (uncompared,
        e.g. at the shadow_concurrency cap): each served request leaves exactly one."""
        evidence = state(estate, token, gateway)["evidence"]
        return int(evidence["samples"]) + int(evidence["uncompared"])

    # The start-up probes were compared too: count from what both see now.
    wait_until(lambda: samples("ga") == samples("gb"), 10.0, what="one shared count")
    base = samples("ga")
    out = os.path.join(workdir, "load.jsonl")
    load = estate.load(out, [f"{estate.lb_url}/py2/whoami"], count=200, seconds=30, threads=2)
    wait_until(lambda: load.poll() is not None, 40.0, what="the bounded load's end")
    records = read_records(out)
    served = {g: sum(1 for r in records if r.get("server") == g and r["status"] == 200)
              for g in ("ga", "gb")}
    assert served["ga"] and served["gb"]
    total = base + sum(served.values())
    wait_until(lambda: samples("ga") == samples("gb") == total, 15.0,
               what="both gateways reporting every comparison")
    uncompared = state(estate, token, "ga")["evidence"]["uncompared"]
    report(capsys, f"evidence: {served} requests served, evidence records seen by A and by B "
                   f"{samples('ga') - base} (of {sum(served.values())}; uncompared in all "
                   f"{uncompared})")


def test_a_redis_restart_with_aof_loses_no_acknowledged_change(
        shared: tuple[Estate, str], lab: Lab) -> None:
    estate, token = shared
    reply = admin(estate, token, "ga", "migrations/py3/canary",
                  {"percent": 25, "force": True, "reason": "before the restart"})
    assert reply["status"] == 200, reply
    lab.kill_host(estate.hosts["redis"])  # kill -9: only the AOF survives
    # While Redis is down the data plane serves on the last known state.
    found = estate.probe([f"{estate.lb_url}/py2/whoami"], timeout=10.0)
    assert all(found.values()), found
    estate.start_redis()
    wait_until(lambda: state(estate, token, "gb")["state"]["percent"] == 25, 20.0,
               what="the canary state read back after the restart")
    audit = admin(estate, token, "gb", "audit?name=py3&limit=50")["body"]["audit"]
    assert [e for e in audit if e["reason"].startswith("before the restart")]
