"""The comparer of service migrations against a real broker's shadow pairs (SPEC 2.14).

A py2-side ``tax`` and its port ``tax.py3`` differ in one field; the broker copies
calls to the port and publishes the pairs, the comparer decodes and compares them
with the interpreter-aware rules and the evidence lands in the migration store.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from gateway.migration.brokercompare import NoiseCheck, PairComparer, comparison_of
from gateway.migration.config import MigrationConfig
from gateway.migration.store import Comparison, MigrationStore
from protocol.client import Client
from protocol.worker import Worker
from tests.gateway.test_broker import HB_MS
from tests.gateway.test_broker_split import set_split
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

CFG = MigrationConfig(name="tax", py3="tax.py3", service="tax")


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def estate(procs: ProcessGroup, tmp_path: object,
           impl: str) -> Iterator[tuple[BrokerProcess, str, str]]:
    split_file = os.path.join(str(tmp_path), "broker-splits")
    pub = f"ipc://{tmp_path}/shadow-pairs.sock"
    broker = BrokerProcess(procs, impl, heartbeat_ms=HB_MS, extra=(
        "--splits", split_file, "--shadow-pub", pub))
    answers = {"tax": {"total": 10, "currency": "EUR", "rate": 0.2},
               "tax.py3": {"total": 10.0, "currency": "eur", "rate": 0.2}}
    serial = iter(range(1_000_000))  # a fresh number in every answer: noise
    made = []
    for name, answer in answers.items():
        w = Worker(broker.endpoint, name, {
            "quote": lambda amount, a=answer: a,
            "serial": lambda amount, a=answer: dict(a, serial=next(serial))}, credit=5)
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        made.append((w, t))
        wait_until(w.connected.is_set, timeout=5, what=f"{name} registered")
    yield broker, split_file, pub
    for w, t in made:
        w.stop()
        t.join(5)


def test_the_comparer_finds_the_one_field_that_differs_and_stores_it(
        estate: tuple[BrokerProcess, str, str], tmp_path: object) -> None:
    broker, split_file, pub = estate
    store = MigrationStore(os.path.join(str(tmp_path), "migrations.db"))
    store.ensure("tax")
    seen: list[Comparison] = []
    comparer = PairComparer(pub, [CFG], seen.append)
    comparer.start()
    try:
        set_split(broker, split_file, "tax tax.py3 0\nshadow tax tax.py3 quote\n")
        wait_until(lambda: broker.stats()["shadow_pairs"]["subscriptions"] == 1, timeout=5,
                   what="the comparer subscribed")
        with Client(broker.endpoint, timeout=5.0) as client:
            for i in range(3):
                assert client.call("tax", "quote", 100, rid=f"r-{i}")["currency"] == "EUR"
        wait_until(lambda: len(seen) == 3, timeout=5, what="three pairs compared")
    finally:
        comparer.stop()
    # 10 and 10.0 are the same number across interpreters; only the currency differs.
    assert {c.outcome for c in seen} == {"diff"}
    assert {c.paths for c in seen} == {("result/currency",)}
    assert sorted(c.rid for c in seen) == ["r-0", "r-1", "r-2"]
    assert seen[0].path == "tax/quote" and seen[0].primary == "py2"
    store.record([], seen)
    diffs = store.recent_diffs("tax")
    assert len(diffs) == 3
    store.close()


def test_a_pair_that_cannot_be_decoded_is_counted_not_fatal() -> None:
    comparer = PairComparer("ipc:///nonexistent", [CFG], lambda c: None)
    comparer.handle([b"tax", b"{}", b"x"])
    comparer.handle([b"taxes", b"{}"])  # another service's topic: ignored
    assert comparer.failed == 1 and comparer.compared == 0
    with pytest.raises(KeyError):
        comparison_of(CFG, [b"tax", b"{}"])


def test_a_difference_not_known_as_noise_asks_the_primary_again_and_learns(
        estate: tuple[BrokerProcess, str, str]) -> None:
    broker, split_file, pub = estate
    seen: list[Comparison] = []
    noise = NoiseCheck(broker.endpoint, rand=lambda: 1.0)  # no random refresh
    comparer = PairComparer(pub, [CFG], seen.append, noise)
    comparer.start()
    try:
        set_split(broker, split_file, "tax tax.py3 0\nshadow tax tax.py3 serial,quote\n")
        wait_until(lambda: broker.stats()["shadow_pairs"]["subscriptions"] == 1, timeout=5,
                   what="the comparer subscribed")
        with Client(broker.endpoint, timeout=5.0) as client:
            for i in range(3):
                assert client.call("tax", "serial", 100, rid=f"s-{i}")["currency"] == "EUR"
            wait_until(lambda: len(seen) == 3, timeout=5, what="three pairs compared")
            # quote has no serial: the primary, asked again, agrees with itself.
            assert client.call("tax", "quote", 100)["currency"] == "EUR"
            wait_until(lambda: len(seen) == 4, timeout=5, what="the fourth pair")
    finally:
        comparer.stop()
    # The serial differs between the primary's own two answers: noise. The currency
    # never does, so each difference in it is asked about again and stays a regression.
    for c in seen[:3]:
        assert c.paths == ("result/currency", "result/serial") and c.noise_checked
        assert c.noise_paths == ("result/serial",)
    assert seen[3].paths == ("result/currency",) and seen[3].noise_checked
    assert seen[3].noise_paths == ()
    assert noise.noisy == {"tax": {"result/serial"}} and noise.asked == 4
    # The second questions went to the primary only, flagged shadow: never copied.
    assert broker.stats()["shadows"]["tax"]["sent"] == 4
    assert broker.stats()["services"]["tax"]["outcomes"]["requests"] == 4 + 4
