"""Several hosts, one estate (SPEC 2.15), across network namespaces under bounded load.

The hosts are those of :mod:`tests.integration.multihost.estate`: HAProxy in
front of two gateway hosts, each with its own broker, and two worker hosts
(py2, py3) registered with both brokers over CURVE. The load is count- and
time-bounded; the numbers are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest

from tests.integration.multihost.estate import Estate, read_records, report, wait_records
from tests.support.netns import Lab
from tests.support.procs import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.slow
TYPED = (502, 503, 504)  # the gateway's problem+json answers for a service that is gone


def finish(estate: Estate, load: Any, stop_file: str, out: str) -> list[dict[str, Any]]:
    """Stop the load and return every record it made."""
    open(stop_file, "w").close()
    wait_until(lambda: load.poll() is not None, 30.0, what="the load generator's exit")
    assert load.returncode == 0, estate.logs()
    return read_records(out)


def test_killing_a_gateway_host_moves_traffic_to_the_other(estate: Estate, lab: Lab,
                                                           workdir: str, capsys: Any) -> None:
    out, stop = os.path.join(workdir, "load.jsonl"), os.path.join(workdir, "stop")
    urls = [f"{estate.lb_url}/py2/whoami?ms=40", f"{estate.lb_url}/py3/whoami?ms=40"]
    earlier = len(estate.haproxy_log())  # the start-up probes' lines
    load = estate.load(out, urls, count=6000, seconds=40, threads=4, stop_file=stop)
    rpc_out = os.path.join(workdir, "rpc.jsonl")
    rpc = estate.rpc_load(rpc_out, seconds=40, count=4000, stop_file=stop)
    wait_records(rpc_out, 40, 20.0)
    before = wait_records(out, 120, 20.0)
    assert {r.get("server") for r in before if r["status"] == 200} == {"ga", "gb"}, \
        "HAProxy should spread the load over both gateway hosts"
    killed_at = time.time()
    killed = lab.kill_host(estate.hosts["ga"])
    killed_done = time.time()
    # Bounded: 3 s of load after the kill, at least 100 requests.
    wait_until(lambda: sum(r["start"] > killed_done + 3.0 for r in read_records(out)) >= 100,
               30.0, what="load after the kill")
    records = finish(estate, load, stop, out)
    calls = finish(estate, rpc, stop, rpc_out)

    failed = [r for r in records if r["status"] != 200]
    in_flight = [r for r in records if r["start"] < killed_done and r["end"] > killed_at]
    after = [r for r in records if r["start"] >= killed_done]
    retried = [r for r in records if r.get("retried")]
    # HAProxy's own account of what it sent where (option httplog): server and status.
    served = [line.split() for line in estate.haproxy_log()[earlier:]]
    on_a = [f for f in served if f[3] == "gateways/ga"]
    a_failed = [f for f in on_a if f[5] != "200"]
    b_failed = [f for f in served if f[3] == "gateways/gb" and f[5] != "200"]
    no_server = [f for f in served if "<NOSRV>" in f[3]]
    last_loss = (f"{(max(r['end'] for r in failed) - killed_at) * 1000:.0f} ms after the kill"
                 if failed else "none")
    report(capsys, f"kill gateway A: {killed} processes; requests {len(records)} "
          f"(before {len(before)}+, after {len(after)}); in flight at the kill "
          f"{len(in_flight)}; sent to A unanswered (HAProxy's log) {len(a_failed)}; "
          f"lost {len(failed)} "
          f"({sorted({(r['status'], r.get('code') or r.get('error', '')) for r in failed})}); "
          f"last loss {last_loss}; slowest request after the kill "
          f"{max(r['end'] - r['start'] for r in after) * 1000:.0f} ms; GETs the client sent "
          f"again on a kept-alive connection HAProxy closed unanswered {len(retried)}")
    # No accepted request is lost beyond those HAProxy had sent to A: B lost none, and
    # none went unrouted.
    assert len(failed) <= len(a_failed), (failed, a_failed)
    assert not b_failed and not no_server, (b_failed, no_server)
    # HAProxy moved the traffic to B: the last 60 requests were all answered there,
    # by both worker hosts.
    tail = sorted(records, key=lambda r: r["start"])[-60:]
    assert all(r["status"] == 200 and r["server"] == "gb" for r in tail), tail
    assert {r["host"] for r in tail} == {"w2", "w3"}
    assert not [r for r in after if r.get("server") == "ga" and r["status"] == 200]

    # Service-to-service calls from another host over both brokers (protocol.failover).
    call_failed = [c for c in calls if not c["ok"]]
    spanning = [c for c in calls if c["start"] < killed_done and c["end"] > killed_at]
    calls_after = [c for c in calls if c["start"] >= killed_done]
    report(capsys, f"service calls over both brokers: {len(calls)}; spanning the kill "
           f"{len(spanning)} (idempotent {sum(c['idem'] for c in spanning)}); failed "
           f"{len(call_failed)} ({sorted({(c['idem'], c['error']) for c in call_failed})}); "
           f"slowest call spanning the kill "
           f"{max((c['end'] - c['start'] for c in spanning), default=0) * 1000:.0f} ms; "
           f"after the kill {len(calls_after)}, failed "
           f"{sum(not c['ok'] for c in calls_after)}")
    # Only a non-idempotent call in flight on A may fail (it may have run there); every
    # idempotent one moved to B, and nothing sent after the kill failed.
    assert all(not c["idem"] and c["error"] == "BrokerLost" for c in call_failed), call_failed
    assert all(c in spanning for c in call_failed)
    assert calls_after and all(c["ok"] for c in calls_after)


def test_cutting_a_worker_hosts_link_gives_typed_errors_and_it_rejoins(
        estate: Estate, lab: Lab, workdir: str, capsys: Any) -> None:
    out, stop = os.path.join(workdir, "load.jsonl"), os.path.join(workdir, "stop")
    deadline_s = estate.timeout_ms / 1000.0
    urls = [f"{estate.lb_url}/py2/whoami?ms=20", f"{estate.lb_url}/py3/whoami?ms=20"]
    load = estate.load(out, urls, count=8000, seconds=45, threads=4, stop_file=stop)
    wait_records(out, 100, 20.0)
    cut_at = time.time()
    lab.link(estate.hosts["w3"], up=False)

    def py3_errors_after_cut() -> int:
        return sum(1 for r in read_records(out) if r["url"] == "/py3/whoami"
                   and r["start"] > cut_at and r["status"] != 200)

    wait_until(lambda: py3_errors_after_cut() >= 5, 20.0, what="py3 calls failing")
    up_at = time.time()
    lab.link(estate.hosts["w3"], up=True)
    per_gateway = [f"{estate.gateway_url(g)}/py3/whoami" for g in ("ga", "gb")]
    found = estate.probe(per_gateway, timeout=20.0)
    assert all(found[u] is not None for u in per_gateway), f"w3 never rejoined: {found}"
    rejoined = max(t for t in found.values() if t is not None)
    wait_until(lambda: sum(r["start"] > rejoined + 0.5 for r in read_records(out)) >= 60,
               20.0, what="load after the rejoin")
    records = finish(estate, load, stop, out)

    py2 = [r for r in records if r["url"] == "/py2/whoami"]
    py3_cut = [r for r in records if r["url"] == "/py3/whoami" and cut_at <= r["start"] < up_at]
    errors = [r for r in py3_cut if r["status"] != 200]
    slowest_error = max(r["end"] - r["start"] for r in errors)
    first_error = min(r["end"] for r in errors) - cut_at
    after = [r for r in records if r["start"] > rejoined + 0.5]
    report(capsys, f"cut worker host w3 for {up_at - cut_at:.2f}s: py3 calls during the cut "
          f"{len(py3_cut)}, typed errors {len(errors)} "
          f"({sorted({(r['status'], r.get('code', '')) for r in errors})}), first error "
          f"{first_error:.2f}s after the cut, slowest error {slowest_error:.2f}s "
          f"(deadline {deadline_s:.1f}s); rejoin after link up: "
          + ", ".join(f"{u.split('//')[1].split(':')[0]} {t - up_at:.2f}s"
                      for u, t in sorted(found.items()) if t is not None)
          + f"; py2 calls {len(py2)}, failed {sum(r['status'] != 200 for r in py2)}")
    # The py2 host is untouched by the py3 host's trouble.
    assert all(r["status"] == 200 for r in py2)
    # Each call that could not be served got a typed error, within its deadline.
    assert errors
    for r in errors:
        assert r["status"] in TYPED and "problem+json" in r["ctype"] and r.get("code"), r
        assert r["end"] - r["start"] <= deadline_s + 2.0, r  # no hang past the deadline
    # Back on both brokers: every call after the rejoin is served, by w3 for py3.
    assert all(r["status"] == 200 for r in after)
    assert {r["host"] for r in after if r["url"] == "/py3/whoami"} == {"w3"}


def test_service_calls_skip_a_gateway_host_that_went_silent(estate: Estate, lab: Lab,
                                                            workdir: str, capsys: Any) -> None:
    stop, rpc_out = os.path.join(workdir, "stop"), os.path.join(workdir, "rpc.jsonl")
    rpc = estate.rpc_load(rpc_out, seconds=40, count=4000, stop_file=stop)
    wait_records(rpc_out, 60, 20.0)
    cut_at = time.time()
    lab.link(estate.hosts["ga"], up=False)  # no FIN, no RST: only heartbeats can tell
    wait_until(lambda: sum(c["start"] > cut_at and c["ok"] for c in read_records(rpc_out))
               >= 150, 30.0, what="calls served after the cut")
    calls = finish(estate, rpc, stop, rpc_out)

    after = [c for c in calls if c["end"] > cut_at]
    failed = [c for c in calls if not c["ok"]]
    slowest = max(c["end"] - c["start"] for c in after)
    report(capsys, f"gateway A's cable pulled: service calls {len(calls)}, in flight or "
           f"made after the cut {len(after)}; failed {len(failed)} "
           f"({sorted({(c['idem'], c['error']) for c in failed})}); slowest call "
           f"{slowest * 1000:.0f} ms (the probe window, then B)")
    # Only non-idempotent calls that were on A (or sent there before its silence was
    # known) fail, typed and within their deadline; the idempotent ones went to B.
    for c in failed:
        assert not c["idem"] and c["error"] == "BrokerLost", c
        assert c["end"] - c["start"] <= 5.0 + 2.0, c  # the call's deadline, not a hang
    assert all(c["ok"] for c in calls[-100:])


def test_every_broker_link_between_hosts_is_curve(estate: Estate, capsys: Any) -> None:
    server_key = os.path.join(estate.keys, "broker.key")
    ways = {"no keys": [], "keys no broker admits": ["--server-key", server_key, "--stranger"],
            "the client host's keys": ["--server-key", server_key, "--secret",
                                       os.path.join(estate.keys, "client.key_secret")]}
    seen = {}
    for gateway in ("ga", "gb"):
        endpoint = estate.brokers().split(",")[("ga", "gb").index(gateway)]
        for way, flags in ways.items():
            out = estate.lab.run(estate.hosts["client"], [
                sys.executable, os.path.join(HERE, "curvecheck.py"), endpoint, "info2",
                *flags], timeout=30)
            assert out.returncode == 0, out.stderr
            seen[(gateway, way)] = out.stdout.strip()
    report(capsys, f"broker answers across hosts: {seen}")
    for gateway in ("ga", "gb"):
        assert seen[(gateway, "no keys")] == "timeout"
        assert seen[(gateway, "keys no broker admits")] == "timeout"
        assert seen[(gateway, "the client host's keys")] == "200"
