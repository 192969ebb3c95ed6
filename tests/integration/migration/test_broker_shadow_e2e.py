"""Shadowing inside the broker, end to end, under ``gateway up`` (SPEC 2.14).

``shop`` (py2, or py3) calls ``tax`` (py2) through the broker, never through the
gateway; ``tax3`` is the port of ``tax`` on Python 3 with one deliberate
difference (the currency in lower case). With ``[migrations.tax]`` in shadow the
broker copies each call to ``tax3`` and publishes the pairs; the ``comparer``
program compares them, learns the ``serial`` field as noise by asking ``tax``
again, and stores the evidence. The gate refuses promotion while the bug is
there; a hung port never touches a caller; once the port is fixed and reloaded,
fresh evidence opens the gate and promote succeeds without ``--force``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from protocol.client import Client
from tests.integration.migration.conftest import MigrationEstate
from tests.support.broker import wait_for_service
from tests.support.procs import REPO, WaitTimeout, wait_until

pytestmark = pytest.mark.slow

MODULE = "tests.integration.migration.shadow_services"
CALLS = 25
MIN_SAMPLES = 20
MAX_ROUNDS = 6


def body(caller: str, port_env: str) -> str:
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
shadow_safe = true
shadow_timeout_ms = 2000
shadow_concurrency = 4
min_samples = 20
max_diff_rate = 0.01
"""


def quotes(client: Client, caller: str, tag: str, count: int = CALLS) -> None:
    """``count`` quotes, each answered right by the primary (never the port's answer)."""
    for i in range(count):
        answer: Any = client.call("shop", "quote", {"amount": 1000}, rid=f"{tag}-{i}")
        assert answer["caller"] == caller
        assert (answer["tax"]["tax"], answer["tax"]["currency"]) == (200, "EUR")


def evidence_of(e: MigrationEstate, client: Client, caller: str, tag: str,
                endpoint: str) -> dict[str, Any]:
    """Quote in rounds until the epoch holds MIN_SAMPLES comparisons; the report then.

    Copies past the cap are skipped (a busy machine answers the port later than the
    primary), so the number of comparisons per call is not fixed: bounded rounds of
    calls, each followed by a wait for the comparer, until enough are in.
    """
    for round_ in range(MAX_ROUNDS):
        quotes(client, caller, f"{tag}{round_}")
        try:
            return e.wait_samples("tax", MIN_SAMPLES, timeout=10)
        except WaitTimeout:
            continue
    raise AssertionError(f"fewer than {MIN_SAMPLES} comparisons after {MAX_ROUNDS} rounds: "
                         f"report {e.report('tax')}, broker {shadows(endpoint).get('shadows')} "
                         f"{shadows(endpoint).get('shadow_pairs')}")


def shadows(endpoint: str) -> dict[str, Any]:
    import zmq
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        sock.send_multipart([b"", b"MDPC01", b"mmi.stats"])
        assert sock.poll(5000), "no mmi.stats answer"
        stats: dict[str, Any] = json.loads(sock.recv_multipart()[3])
        return stats
    finally:
        sock.close(linger=0)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("caller", ["py2", "py3"])
def test_shadow_in_the_broker_finds_the_bug_gates_promote_and_opens_once_fixed(
        procs: Any, workdir: str, caller: str) -> None:
    e = MigrationEstate(procs, workdir, body(caller, '{ TAX_BUG = "1" }'))
    try:
        e.start(timeout=90)
        endpoint = "ipc://" + os.path.join(e.run_dir, "broker.ipc")
        for service in ("shop", "tax", "tax3"):
            wait_for_service(endpoint, service)
        assert e.program("comparer")["state"] == "READY"
        assert e.migrate("shadow", "tax")[0] == 0
        stats = shadows(endpoint)
        assert stats["shadows"]["tax"]["candidate"] == "tax3"
        wait_until(lambda: shadows(endpoint)["shadow_pairs"]["subscriptions"] >= 1,
                   timeout=20, what="the comparer subscribed to the pairs")
        client = Client(endpoint, timeout=10.0)
        try:
            # 1. The bug is found, with the field that differs; serial is learned as noise.
            report = evidence_of(e, client, caller, "bug", endpoint)
            evidence = report["evidence"]
            assert evidence["regressions"] == evidence["samples"] >= MIN_SAMPLES, evidence
            status, doc = e.api("GET", "/_gateway/api/diffs?name=tax&limit=5")
            assert status == 200
            diff = doc["diffs"][0]
            assert diff["path"] == "tax/compute" and not diff["noise"]
            fields = {f["path"]: f for f in diff["fields"]}
            assert set(diff["paths"]) == {"result/currency", "result/serial"}, diff
            currency = next(f for p, f in fields.items() if "currency" in p)
            assert (currency["left"], currency["right"]) == ("EUR", "eur")
            assert "result/serial" in report["evidence"]["noisy_paths"], report["evidence"]
            # 2. The gate refuses promotion.
            code, why = e.migrate("promote", "tax")
            assert code != 0 and "refused" in why and "diff rate" in why, why
            report = e.report("tax")
            assert report["state"]["mode"] == "shadow"
            assert report["broker_shadow"]["answered"] >= MIN_SAMPLES
            status_text = subprocess.run(
                [sys.executable, "-m", "gateway", "-c", e.path, "migrate", "status"],
                capture_output=True, text=True, timeout=30, cwd=REPO, check=True).stdout
            line = next(row for row in status_text.splitlines() if row.startswith("tax "))
            assert "diff rate" in line and "[shadow: " in line, status_text
            # 3. A hung port: every caller still gets the primary's answer, no error.
            e.write(body(caller, '{ TAX_HANG = "1" }'))
            e.reload()
            wait_for_service(endpoint, "tax3")
            before = shadows(endpoint)["shadows"]["tax"]
            quotes(client, caller, "hang")
            wait_until(lambda: shadows(endpoint)["shadows"]["tax"]["inflight"] == 0,
                       timeout=20, what="the hung copies ended by their deadline")
            after = shadows(endpoint)["shadows"]["tax"]
            ended = (after["failed"] - before["failed"]) + \
                (after["skipped_cap"] - before["skipped_cap"]) + \
                (after["skipped_down"] - before["skipped_down"])
            assert ended >= 1 and after["answered"] == before["answered"], (before, after)
            # 4. Fixed and reloaded: a fresh epoch of evidence opens the gate.
            e.write(body(caller, "{}"))
            e.reload()
            wait_for_service(endpoint, "tax3")
            assert e.migrate("shadow", "tax")[0] == 0  # a new evidence epoch
            report = evidence_of(e, client, caller, "fixed", endpoint)
            assert report["evidence"]["regressions"] == 0, report["evidence"]
            code, doc = e.migrate("promote", "tax")
            assert code == 0 and doc["state"]["mode"] == "py3", doc
            # Promoted: the port serves every call, and nothing is copied any more.
            answer: Any = client.call("shop", "quote", {"amount": 1000}, rid="after")
            assert answer["tax"]["currency"] == "EUR"
            assert "shadows" not in shadows(endpoint)
        finally:
            client.close()
    finally:
        e.close()
