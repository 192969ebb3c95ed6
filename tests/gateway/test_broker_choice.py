"""Choosing the broker: ``[broker] implementation``, the argv each choice runs, and the
refusal to start (or pass ``gateway check``) when the compiled broker is not built."""

from __future__ import annotations

import os
import sys

import pytest

from gateway import cli
from gateway.arbiter import plan
from gateway.config import parse
from gateway.errors import ConfigError

CONFIG = """
[gateway]
run_dir = "{run}"
[broker]
{broker}
"""


def config_text(tmp_path: object, broker: str = "") -> str:
    return CONFIG.format(run=os.path.join(str(tmp_path), "run"), broker=broker)


def test_native_is_the_default_and_python_can_be_chosen(tmp_path: object) -> None:
    assert parse(config_text(tmp_path)).broker.implementation == "native"
    chosen = parse(config_text(tmp_path, 'implementation = "python"\nstartup_grace_ms = 0'))
    assert chosen.broker.implementation == "python" and chosen.broker.startup_grace_ms == 0


@pytest.mark.parametrize("line, message", [
    ('implementation = "rust"', "broker.implementation: must be one of native, python"),
    ("startup_grace_ms = -1", "broker.startup_grace_ms: must be >= 0"),
    ('startup_grace_ms = "5s"', "broker.startup_grace_ms: must be an integer"),
    ("max_queued = 0", "broker.max_queued: must be >= 1"),
    ("max_deadline_ms = -5", "broker.max_deadline_ms: must be >= 1"),
    ("outlier_consecutive = -1", "broker.outlier_consecutive: must be >= 0"),
    ("outlier_max_ejection_percent = 101", "broker.outlier_max_ejection_percent: must be <= 100"),
    ("outlier_base_ejection_ms = 0", "broker.outlier_base_ejection_ms: must be >= 1"),
    ('outlier_count_errors = "yes"', "broker.outlier_count_errors"),
])
def test_bad_broker_keys_are_named(tmp_path: object, line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(config_text(tmp_path, line))


@pytest.mark.parametrize("implementation", ["native", "python"])
def test_both_brokers_get_the_same_arguments(tmp_path: object, implementation: str) -> None:
    cfg = parse(config_text(tmp_path, f'implementation = "{implementation}"\n'
                                      "heartbeat_ms = 250\nstartup_grace_ms = 1500\n"
                                      "max_deadline_ms = 60000\nmax_queued_bytes = 4096\n"
                                      "outlier_consecutive = 3\noutlier_count_errors = true"))
    program = plan.broker_program(cfg, "/usr/bin/python3")
    if implementation == "native":
        head, args = program.argv[:1], program.argv[1:]
        assert head == (plan.NATIVE_BROKER,) and program.interpreter == ""
    else:
        head, args = program.argv[:3], program.argv[3:]
        assert head == ("/usr/bin/python3", "-m", "gateway.broker")
    assert args == ("--bind", cfg.broker.endpoint, "--heartbeat-ms", "250",
                    "--events-pub", cfg.broker.events_pub, "--events-sub",
                    cfg.broker.events_sub, "--startup-grace-ms", "1500",
                    "--max-deadline-ms", "60000", "--max-queued", "10000",
                    "--max-queued-total", "50000", "--max-queued-bytes", "4096",
                    "--max-queued-bytes-total", str(512 * 1024 * 1024),
                    "--outlier-consecutive", "3", "--outlier-base-ejection-ms", "30000",
                    "--outlier-max-ejection-ms", "300000", "--outlier-max-ejection-percent",
                    "50", "--splits", cfg.migration_settings.splits_file,
                    "--shadow-pub", cfg.migration_settings.pairs_endpoint,
                    "--outlier-count-errors")
    assert cfg.migration_settings.splits_file == os.path.join(cfg.gateway.run_dir,
                                                              "broker-splits")
    assert cfg.migration_settings.pairs_endpoint == "ipc://" + os.path.join(
        cfg.gateway.run_dir, "shadow-pairs.ipc")
    # No service migration: no comparer to run.
    assert "comparer" not in [p.name for p in plan.build(cfg, "/usr/bin/python3")]


def test_a_missing_native_broker_is_refused_with_how_to_build_it(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plan, "NATIVE_BROKER", os.path.join(str(tmp_path), "gateway-broker"))
    cfg = parse(config_text(tmp_path))
    with pytest.raises(ConfigError, match=r"not built; run `make setup`"):
        plan.broker_program(cfg, sys.executable)
    path = os.path.join(str(tmp_path), "gateway.toml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(config_text(tmp_path))
    for command in ("check", "up"):
        assert cli.main(["-c", path, command]) == 1
        err = capsys.readouterr().err
        assert "broker.implementation: the compiled broker" in err and "make setup" in err
    assert not os.path.exists(os.path.join(str(tmp_path), "run", "arbiter.pid"))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(config_text(tmp_path, 'implementation = "python"'))
    assert cli.main(["-c", path, "check"]) == 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(config_text(tmp_path, "enabled = false"))
    assert cli.main(["-c", path, "check"]) == 0


def test_the_native_broker_is_built_here() -> None:
    """CI builds it through scripts/bootstrap.sh; without it the native tests fail too."""
    assert os.access(plan.NATIVE_BROKER, os.X_OK), \
        f"{plan.NATIVE_BROKER} is missing: run `make setup`"


def test_the_conformance_suite_fails_without_the_native_broker(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import broker as support

    monkeypatch.setattr(support, "NATIVE_BINARY", os.path.join(str(tmp_path), "missing"))
    with pytest.raises(AssertionError, match="not built: run `make setup`"):
        support.broker_argv("native", ["--bind", "tcp://127.0.0.1:*"])
    assert support.broker_argv("python", ["-x"])[1:] == ["-m", "gateway.broker", "-x"]


def test_a_service_migration_adds_the_comparer_and_a_change_of_it_rolls_the_comparer(
        tmp_path: object) -> None:
    def comparer(extra: str) -> plan.Program:
        text = config_text(tmp_path) + ('\n[migrations.tax]\nservice = "tax"\npy3 = "tax3"\n'
                                        + extra)
        programs = {p.name: p for p in plan.build(parse(text), "/usr/bin/python3")}
        return programs["comparer"]

    first = comparer("")
    assert first.argv == ("/usr/bin/python3", "-m", "gateway", "comparer")
    assert first.needs == ("broker",) and first.replicas == 1
    assert first.env["GATEWAY_CONFIG"].endswith("config.json")
    assert comparer("").signature == first.signature
    assert comparer("min_samples = 5\n").signature != first.signature
