"""Service migrations write the broker's shadow lines (SPEC 2.14): which methods, which caps.

The contracts are the repository's own (``protocol/spec``), the store a SQLite file
in a temp dir, and the brokers real processes of each implementation.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from gateway.migration.brokershadow import sample_text, shadow_methods, shadowable
from gateway.migration.brokersplits import BrokerSplits, render
from gateway.migration.config import MigrationConfig
from gateway.migration.store import MigrationStore, Thresholds
from protocol.client import Client
from protocol.contract import SPEC_DIR
from protocol.worker import Worker
from tests.support.broker import IMPLEMENTATIONS, BrokerProcess
from tests.support.procs import ProcessGroup, wait_until

ECHO = MigrationConfig(name="echo", py3="echo3", service="echo", sample=0.5,
                       shadow_timeout_ms=1500, shadow_concurrency=3)


@pytest.fixture
def store(tmp_path: object) -> Iterator[MigrationStore]:
    s = MigrationStore(os.path.join(str(tmp_path), "m.sqlite3"))
    s.ensure("echo")
    yield s
    s.close()


def body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_the_contract_decides_which_methods_are_copied_as_for_rpc_shadowing() -> None:
    # echo: echo is idempotent, upper is shadow_safe only, checksum neither.
    assert shadowable([ECHO], SPEC_DIR) == {"echo": "echo,upper"}
    strict = MigrationConfig(name="echo", py3="echo3", service="echo", shadow_safe=False)
    assert shadowable([strict], SPEC_DIR) == {"echo": "echo"}
    every = MigrationConfig(name="tax", py3="tax3", service="tax", shadow_safe=True)
    assert shadow_methods(every, None) == "*"
    # No contract and no shadow_safe: nothing may be copied, so no line.
    assert shadowable([MigrationConfig(name="tax", py3="tax3", service="tax")], SPEC_DIR) == {}
    assert [sample_text(s) for s in (1.0, 0.5, 0.25, 0.00004, 0.12346, 0.0)] == \
        ["1", "0.5", "0.25", "0", "0.1235", "0"]


def test_shadow_and_canary_write_the_line_with_the_migration_s_caps(
        store: MigrationStore) -> None:
    methods = shadowable([ECHO], SPEC_DIR)
    assert body(render([ECHO], store.all(), methods)) == ["echo echo3 0"]
    store.transition("echo", "shadow", actor="t")
    line = "shadow echo echo3 echo,upper sample=0.5 timeout_ms=1500 max_inflight=3"
    assert body(render([ECHO], store.all(), methods)) == ["echo echo3 0", line]
    store.transition("echo", "canary", 20, actor="t")
    assert body(render([ECHO], store.all(), methods)) == ["echo echo3 20", line]
    store.promote("echo", Thresholds(), actor="t", force=True)
    # py3: every call is on the port, so nothing stays on the primary to copy.
    assert body(render([ECHO], store.all(), methods)) == ["echo echo3 100"]
    assert body(render([ECHO], store.all())) == ["echo echo3 100"]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_the_broker_copies_what_the_states_say(
        procs: ProcessGroup, tmp_path: object, store: MigrationStore, impl: str) -> None:
    path = os.path.join(str(tmp_path), "run", "broker-splits")
    broker = BrokerProcess(procs, impl, heartbeat_ms=60_000, extra=("--splits", path))
    splits = BrokerSplits(path, broker.endpoint, shadowable([ECHO], SPEC_DIR))
    made = []
    for name, answer in (("echo", "py2"), ("echo3", "py3")):
        w = Worker(broker.endpoint, name, {"echo": lambda x, a=answer: a,
                                           "checksum": lambda x, a=answer: a}, credit=5)
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        made.append((w, t))
        wait_until(w.connected.is_set, timeout=5, what=f"{name} registered")
    try:
        store.transition("echo", "shadow", actor="t")
        assert splits.sync([ECHO], store.all()) is True
        with Client(broker.endpoint, timeout=5.0) as client:
            for _ in range(4):
                assert client.call("echo", "echo", "x") == "py2"
                assert client.call("echo", "checksum", "x") == "py2"  # not listed
        # sample = 0.5: exactly every second echo call was copied.
        wait_until(lambda: broker.stats()["shadows"]["echo"]["answered"] == 2, timeout=5,
                   what="two copies answered")
        stats = broker.stats()["shadows"]["echo"]
        assert stats["sent"] == 2 and stats["methods"] == ["echo", "upper"]
        store.rollback("echo", actor="t")
        assert splits.sync([ECHO], store.all()) is True
        assert "shadows" not in broker.stats()
    finally:
        for w, t in made:
            w.stop()
            t.join(5)


def test_the_comparer_process_stores_evidence_and_stops_on_sigterm(
        procs: ProcessGroup, workdir: str) -> None:
    import signal
    import sys

    from tests.gateway.test_broker_split import set_split
    run = os.path.join(workdir, "run")
    os.makedirs(run)
    path = os.path.join(workdir, "gateway.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f'[gateway]\nrun_dir = "{run}"\n\n[migrations.tax]\nservice = "tax"\n'
                 'py3 = "tax3"\nshadow_safe = true\nnoise = false\n')
    broker = BrokerProcess(procs, "native", "ipc://" + os.path.join(run, "broker.ipc"),
                           extra=("--splits", os.path.join(run, "broker-splits"),
                                  "--shadow-pub", "ipc://" + os.path.join(run,
                                                                          "shadow-pairs.ipc")))
    made = []
    for name, currency in (("tax", "EUR"), ("tax3", "eur")):
        w = Worker(broker.endpoint, name, {"quote": lambda c=currency: {"currency": c}})
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        made.append((w, t))
        wait_until(w.connected.is_set, timeout=5, what=f"{name} registered")
    comparer = procs.spawn([sys.executable, "-m", "gateway", "-c", path, "comparer"])
    store = MigrationStore(os.path.join(run, "migrations.sqlite3"))
    store.ensure("tax")  # as the comparer does; whichever comes first creates it
    try:
        set_split(broker, os.path.join(run, "broker-splits"), "shadow tax tax3 *\n")
        wait_until(lambda: broker.stats()["shadow_pairs"]["subscriptions"] == 1, timeout=20,
                   what="the comparer subscribed")
        with Client(broker.endpoint, timeout=5.0) as client:
            assert [client.call("tax", "quote") for _ in range(3)] == [{"currency": "EUR"}] * 3
        evidence = wait_until(lambda: (lambda ev: ev if ev.samples == 3 else None)(
            store.evidence("tax")), timeout=10, what="three comparisons stored")
        assert evidence.regressions == 3
        assert store.recent_diffs("tax")[0]["paths"] == ["result/currency"]
        procs.signal(comparer, signal.SIGTERM)
        assert comparer.wait(10) == 0
    finally:
        store.close()
        for w, t in made:
            w.stop()
            t.join(5)
