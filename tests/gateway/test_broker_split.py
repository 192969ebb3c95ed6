"""Traffic splits of migrated services (SPEC 2.14), against both brokers.

A split file names a service, its candidate (the port's service) and a percent; the
broker re-reads it on ``mmi.split``. A call goes to the candidate when the CRC-32 of
``SERVICE:KEY`` modulo 100 is below the percent, KEY being the header's ``sticky``,
else ``rid``, else ``id``. The tests compute the expected side of every key from that
rule, so shares are exact counts, not tolerances.
"""
# The fixtures come from the conformance suite's module, so their names are parameters here.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Iterator

import pytest
import zmq

from protocol import codec, mdp
from protocol.client import Client
from protocol.errors import RemoteError
from protocol.worker import Worker
from tests.gateway.test_broker import (  # noqa: F401 (fixtures)
    HB_MS,
    RawWorker,
    dealer,
    impl,
    raw_workers,
)
from tests.support.broker import BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

KEYS = 1000


def side(service: str, key: str, percent: int) -> str:
    """The side the rule of SPEC 2.14 puts ``key`` on."""
    return "py3" if zlib.crc32(f"{service}:{key}".encode()) % 100 < percent else "py2"


@pytest.fixture
def split_file(tmp_path: object) -> str:
    return os.path.join(str(tmp_path), "broker-splits")


@pytest.fixture
def broker(procs: ProcessGroup, impl: str, split_file: str) -> BrokerProcess:
    return BrokerProcess(procs, impl, heartbeat_ms=HB_MS, extra=("--splits", split_file))


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[Client]:
    c = Client(broker.endpoint, timeout=5.0)
    yield c
    c.close()


def serve(endpoint: str, service: str, answer: str) -> tuple[Worker, threading.Thread]:
    def boom() -> None:
        raise ValueError(f"{answer} fails")

    w = Worker(endpoint, service, {"side": lambda key=None: answer, "boom": boom}, credit=10)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    wait_until(w.connected.is_set, timeout=5, what=f"{service} registered")
    return w, t


@pytest.fixture
def both_sides(broker: BrokerProcess) -> Iterator[None]:
    """``tax`` answers "py2"; its port ``tax.py3`` answers "py3"."""
    made = [serve(broker.endpoint, "tax", "py2"), serve(broker.endpoint, "tax.py3", "py3")]
    yield
    for w, t in made:
        w.stop()
        t.join(5)


def set_split(broker: BrokerProcess, path: str, text: str, expect: bytes = b"200") -> None:
    """Write the split file as the control plane does (rename) and poke the broker."""
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(broker.endpoint)
        sock.send_multipart([b"", mdp.CLIENT, b"mmi.split"])
        assert sock.poll(5000), "no answer to mmi.split"
        frames = sock.recv_multipart()
        assert frames[2:] == [b"mmi.split", expect]
    finally:
        sock.close(linger=0)


def raw_call(dealer: zmq.Socket[bytes], header: dict[str, object]) -> tuple[bytes, str]:
    """One call with a hand-made header; (the reply's service frame, the answer)."""
    head = dict({"v": 1, "kind": "call", "method": "side"}, **header)
    dealer.send_multipart([b"", mdp.CLIENT, b"tax", json.dumps(head).encode(), b"null"])
    assert dealer.poll(5000), "no reply"
    frames = dealer.recv_multipart()
    env = codec.decode(frames[3:])
    assert env.kind == "result", env.error
    return frames[2], str(env.payload)


def test_share_is_exact_over_1000_keys(broker: BrokerProcess, client: Client,
                                       split_file: str, both_sides: None) -> None:
    set_split(broker, split_file, "# service candidate percent\ntax tax.py3 30\n")
    got = [client.call("tax", "side", rid=f"user-{i}") for i in range(KEYS)]
    expected = [side("tax", f"user-{i}", 30) for i in range(KEYS)]
    assert got == expected
    sent = expected.count("py3")
    assert 250 < sent < 350  # the hash spreads keys; the exact list is checked above
    assert broker.stats()["splits"] == {
        "tax": {"candidate": "tax.py3", "percent": 30, "sent": sent, "kept": KEYS - sent,
                "sent_errors": 0, "kept_errors": 0}}


def test_sticky_field_wins_and_the_reply_names_the_asked_service(
        broker: BrokerProcess, dealer: zmq.Socket[bytes], split_file: str,
        both_sides: None) -> None:
    set_split(broker, split_file, "tax tax.py3 50\n")
    users = [f"u{i}" for i in range(40)]
    for user in users:
        want = side("tax", user, 50)
        for n in range(3):  # a different id and rid every time: the sticky key decides
            service, answer = raw_call(dealer, {"id": f"{user}-{n}", "rid": f"r{n}{user}",
                                                "sticky": user})
            assert (service, answer) == (b"tax", want)
    # Without "sticky" the rid decides, and without both the id does.
    for i in range(40):
        assert raw_call(dealer, {"id": f"x{i}", "rid": f"k{i}"})[1] == side("tax", f"k{i}", 50)
        assert raw_call(dealer, {"id": f"i{i}"})[1] == side("tax", f"i{i}", 50)
    assert {side("tax", u, 50) for u in users} == {"py2", "py3"}


def test_rollback_is_immediate_and_in_flight_calls_finish_where_they_started(
        broker: BrokerProcess, client: Client, dealer: zmq.Socket[bytes], split_file: str,
        raw_workers: list[RawWorker]) -> None:
    py2, thread = serve(broker.endpoint, "tax", "py2")
    port = RawWorker(broker.endpoint, b"tax.py3", credit=5)
    raw_workers.append(port)
    try:
        wait_until(lambda: broker.workers("tax.py3") == 1, timeout=5, what="the port")
        set_split(broker, split_file, "tax tax.py3 100\n")
        head = {"v": 1, "kind": "call", "method": "side", "id": "held-1"}
        dealer.send_multipart([b"", mdp.CLIENT, b"tax", json.dumps(head).encode(), b"null"])
        caller, body = port.next_request()
        set_split(broker, split_file, "tax tax.py3 0\n")
        # Every call after the rollback stays on py2, none waits for the port.
        assert [client.call("tax", "side", rid=f"user-{i}") for i in range(50)] == ["py2"] * 50
        port.answer(caller, body, "py3-late")
        assert dealer.poll(5000)
        frames = dealer.recv_multipart()
        assert frames[2] == b"tax" and codec.decode(frames[3:]).payload == "py3-late"
        split = broker.stats()["splits"]["tax"]
        assert (split["percent"], split["kept"]) == (0, 50)
    finally:
        py2.stop()
        thread.join(5)


def test_a_candidate_without_live_workers_takes_nothing(
        broker: BrokerProcess, client: Client, split_file: str) -> None:
    py2, thread = serve(broker.endpoint, "tax", "py2")
    try:
        set_split(broker, split_file, "tax tax.py3 100\n")
        assert [client.call("tax", "side", rid=f"k{i}") for i in range(20)] == ["py2"] * 20
        assert broker.stats()["splits"]["tax"]["kept"] == 20
    finally:
        py2.stop()
        thread.join(5)


def test_a_changed_file_is_read_without_a_poke_and_bad_lines_are_refused(
        broker: BrokerProcess, split_file: str) -> None:
    assert broker.stats()["splits"] == {}
    with open(split_file, "w", encoding="utf-8") as fh:
        fh.write("tax tax.py3 25\n")
    wait_until(lambda: broker.stats()["splits"].get("tax", {}).get("percent") == 25,
               timeout=5, what="the split file re-read on a beat")
    set_split(broker, split_file, "tax tax.py3 40\nbad line\nmmi.x y 5\nfee fee 3\n"
              "pay pay.py3 101\n", expect=b"400")
    assert {k: v["percent"] for k, v in broker.stats()["splits"].items()} == {"tax": 40}
    os.unlink(split_file)
    set_split_missing = zmq.Context.instance().socket(zmq.DEALER)
    set_split_missing.linger = 0
    try:
        set_split_missing.connect(broker.endpoint)
        set_split_missing.send_multipart([b"", mdp.CLIENT, b"mmi.split"])
        assert set_split_missing.poll(5000)
        assert set_split_missing.recv_multipart()[3] == b"200"
    finally:
        set_split_missing.close(linger=0)
    assert broker.stats()["splits"] == {}


def test_the_client_sets_the_sticky_key(broker: BrokerProcess, client: Client,
                                        split_file: str, both_sides: None) -> None:
    set_split(broker, split_file, "tax tax.py3 50\n")
    for user in [f"u{i}" for i in range(30)]:
        got = {client.call("tax", "side", rid=f"{user}-{n}", sticky=user) for n in range(3)}
        assert got == {side("tax", user, 50)}


def test_a_cancel_reaches_a_call_that_was_split_off(
        broker: BrokerProcess, dealer: zmq.Socket[bytes], split_file: str,
        raw_workers: list[RawWorker]) -> None:
    port = RawWorker(broker.endpoint, b"tax.py3")  # credit 1: the second call queues
    raw_workers.append(port)
    wait_until(lambda: broker.workers("tax.py3") == 1, timeout=5, what="the port")
    set_split(broker, split_file, "tax tax.py3 100\n")
    for rid in ("first", "second"):
        head = {"v": 1, "kind": "call", "method": "side", "id": rid}
        dealer.send_multipart([b"", mdp.CLIENT, b"tax", json.dumps(head).encode(), b"null"])
    caller, body = port.next_request()
    assert codec.decode(body).id == "first"
    wait_until(lambda: broker.stats()["services"]["tax.py3"]["waiting"] == 1, timeout=5,
               what="the second call queued on the port")
    # The cancel names the service the client asked for, as any MDP client would.
    cancel = {"v": 1, "kind": "cancel", "id": "second"}
    dealer.send_multipart([b"", mdp.CLIENT, b"tax", json.dumps(cancel).encode(), b"null"])
    wait_until(lambda: broker.counter("cancelled") == 1, timeout=5, what="the cancel")
    assert broker.stats()["services"]["tax.py3"]["waiting"] == 0
    port.answer(caller, body, "done")
    assert dealer.poll(5000)
    assert codec.decode(dealer.recv_multipart()[3:]).id == "first"
    assert port.commands_for(0.3).count(mdp.REQUEST) == 0  # the cancelled one never came


def test_nested_calls_carry_the_sticky_key_on(broker: BrokerProcess, client: Client,
                                              split_file: str, both_sides: None) -> None:
    nested = Client(broker.endpoint, timeout=5.0)
    relay = Worker(broker.endpoint, "relay", {"side": lambda: nested.call("tax", "side")})
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(relay.connected.is_set, timeout=5, what="relay registered")
        set_split(broker, split_file, "tax tax.py3 50\n")
        for user in [f"u{i}" for i in range(30)]:
            # A fresh rid on every call: only the inherited sticky key can keep the side.
            got = {client.call("relay", "side", rid=f"{user}-{n}", sticky=user)
                   for n in range(3)}
            assert got == {side("tax", user, 50)}
    finally:
        relay.stop()
        thread.join(5)
        nested.close()


def test_failed_replies_are_counted_per_side(broker: BrokerProcess, client: Client,
                                             split_file: str, both_sides: None) -> None:
    set_split(broker, split_file, "tax tax.py3 50\n")
    keys = [f"k{i}" for i in range(40)]
    for key in keys:
        with pytest.raises(RemoteError, match="fails"):
            client.call("tax", "boom", rid=key)
    for key in keys[:10]:
        client.call("tax", "side", rid=key)  # results are not errors
    moved = sum(side("tax", k, 50) == "py3" for k in keys)
    split = broker.stats()["splits"]["tax"]
    assert (split["sent_errors"], split["kept_errors"]) == (moved, len(keys) - moved)
    assert split["sent"] + split["kept"] == 50
