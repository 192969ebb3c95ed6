"""Host roles, remote brokers and CURVE keys in the config (gateway.config.hosts, SPEC 2.15)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from gateway.arbiter import export
from gateway.arbiter.plan import build
from gateway.commands.keys import make_keys
from gateway.config import hosts, parse
from gateway.errors import ConfigError
from tests.support.procs import REPO, child_env

SERVICES = """
[services.highlight]
runtime = "py2"
module = "py2_services.highlight:TABLE"
"""


@pytest.fixture
def keys(workdir: str) -> str:
    directory = os.path.join(workdir, "keys")
    make_keys(directory, ["broker", "w1"])
    return directory


def gateway_host(keys: str, extra: str = "") -> str:
    return f"""
[broker]
public_endpoint = "tcp://10.9.0.1:5555"
curve_secret_file = "{keys}/broker.key_secret"
curve_clients_dir = "{keys}/clients"
{extra}
""" + SERVICES


def worker_host(keys: str) -> str:
    return f"""
[broker]
connect = ["tcp://10.9.0.1:5555", "tcp://10.9.0.2:5555"]
curve_server_key = "{keys}/broker.key"
curve_client_secret = "{keys}/w1.key_secret"
""" + SERVICES


def test_gateway_host_binds_local_plain_and_public_with_curve(keys: str, workdir: str) -> None:
    cfg = parse(gateway_host(keys), base_dir=workdir)
    broker = next(p for p in build(cfg, sys.executable) if p.name == "broker")
    argv = list(broker.argv)
    assert argv[argv.index("--bind-local") + 1] == cfg.broker.endpoint
    assert argv[argv.index("--bind") + 1] == "tcp://10.9.0.1:5555"
    assert argv[argv.index("--curve-secret") + 1] == f"{keys}/broker.key_secret"
    assert argv[argv.index("--curve-clients") + 1] == f"{keys}/clients"
    assert "--events-local" in argv
    # The resolved config the arbiter hands its children parses back to the same.
    from gateway.config import from_dict
    assert from_dict(cfg.to_dict()) == cfg


def test_worker_host_services_register_with_every_broker(keys: str, workdir: str) -> None:
    cfg = hosts.apply_role(parse(worker_host(keys), base_dir=workdir), "workers")
    programs = build(cfg, sys.executable)
    assert [p.name for p in programs] == ["highlight"]
    svc = programs[0]
    assert svc.needs == ()
    argv = list(svc.argv)
    assert argv[argv.index("--broker") + 1] == "tcp://10.9.0.1:5555,tcp://10.9.0.2:5555"
    assert svc.env["GATEWAY_BROKER"] == "tcp://10.9.0.1:5555,tcp://10.9.0.2:5555"
    assert svc.env["GATEWAY_CURVE_SERVER_KEY"] == f"{keys}/broker.key"
    assert svc.env["GATEWAY_CURVE_SECRET"] == f"{keys}/w1.key_secret"


def test_gateway_role_runs_no_services(keys: str, workdir: str) -> None:
    cfg = hosts.apply_role(parse(gateway_host(keys), base_dir=workdir), "gateway")
    assert [p.name for p in build(cfg, sys.executable)] == ["broker", "http"]
    assert [s.name for s in cfg.services] == ["highlight"]  # known to the front, not run
    same = parse(gateway_host(keys, extra="") + '[gateway]\nrole = "gateway"\n',
                 base_dir=workdir)
    assert hosts.apply_role(same) == cfg
    plain = parse(SERVICES, base_dir=workdir)
    assert hosts.apply_role(plain, "all") is plain


@pytest.mark.parametrize("text, message", [
    ('[broker]\npublic_endpoint = "tcp://10.9.0.1:5555"', "needs curve_secret_file"),
    ('[broker]\npublic_endpoint = "10.9.0.1:5555"', "expected tcp://HOST:PORT"),
    ('[broker]\nconnect = ["tcp://10.9.0.1:5555"]', "needs CURVE"),
    ('[broker]\nconnect = "tcp://a"', "expected tcp://HOST:PORT"),
    ('[broker]\nconnect = [1]', "expected a list"),
    ('[broker]\ncurve_server_key = "nope.key"', "does not exist"),
    ('[broker]\nendpoint = "tcp://10.9.0.1:5555"', "must be loopback"),
])
def test_curve_is_required_off_loopback(workdir: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(text, base_dir=workdir)


def test_loopback_connect_needs_no_keys(workdir: str) -> None:
    cfg = parse('[broker]\nconnect = "tcp://127.0.0.1:1, ipc:///x"\n' + SERVICES,
                base_dir=workdir)
    assert hosts.service_brokers(cfg) == "tcp://127.0.0.1:1,ipc:///x"
    assert hosts.curve_env(cfg) == {}


def test_workers_role_is_refused_without_what_it_needs(keys: str, workdir: str) -> None:
    with pytest.raises(ConfigError, match="broker\\] connect"):
        hosts.apply_role(parse(SERVICES, base_dir=workdir), "workers")
    with pytest.raises(ConfigError, match="no \\[services"):
        hosts.apply_role(parse("", base_dir=workdir), "workers")
    queued = worker_host(keys) + 'queues = ["thumbs"]\n'
    with pytest.raises(ConfigError, match="redis\\] url"):
        hosts.apply_role(parse(queued, base_dir=workdir), "workers")
    with pytest.raises(ConfigError, match="--role"):
        hosts.apply_role(parse(SERVICES, base_dir=workdir), "front")


def test_export_writes_the_units_of_one_role(keys: str, workdir: str) -> None:
    cfg = parse(worker_host(keys), base_dir=workdir)
    files = export.export("systemd", hosts.apply_role(cfg, "workers"), sys.executable, workdir)
    assert "gateway-highlight@.service" in files
    assert "gateway-broker.service" not in files and "gateway-http.socket" not in files
    unit = files["gateway-highlight@.service"]
    assert "tcp://10.9.0.1:5555,tcp://10.9.0.2:5555" in unit
    assert "GATEWAY_CURVE_SECRET=" in unit and "Requires=" not in unit


def test_supervisord_export_of_a_worker_host(keys: str, workdir: str) -> None:
    cfg = hosts.apply_role(parse(worker_host(keys), base_dir=workdir), "workers")
    conf = export.export("supervisord", cfg, sys.executable, workdir)["supervisord.conf"]
    programs = re.findall(r"^\[(?:fcgi-)?program:([^\]]+)\]", conf, re.MULTILINE)
    assert programs == ["highlight"]
    assert "GATEWAY_CURVE_SERVER_KEY" in conf and "tcp://10.9.0.2:5555" in conf


def test_cli_keys_and_export_role(workdir: str) -> None:
    keys = os.path.join(workdir, "k")
    out = subprocess.run([sys.executable, "-m", "gateway", "keys", keys, "w1"], cwd=REPO,
                         env=child_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert os.path.join(keys, "clients", "w1.key") in out.stdout.split()
    toml = os.path.join(workdir, "gateway.toml")
    with open(toml, "w", encoding="utf-8") as fh:
        fh.write(worker_host(keys))
    out = subprocess.run([sys.executable, "-m", "gateway", "-c", toml, "export", "systemd",
                          "--role", "workers", "-o", os.path.join(workdir, "units")],
                         cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(os.listdir(os.path.join(workdir, "units"))) == [
        "gateway-highlight@.service", "gateway.json", "gateway.target"]
    # A second run keeps the pairs: a deployed key never changes under a host.
    def secret() -> str:
        with open(os.path.join(keys, "w1.key_secret"), encoding="utf-8") as fh:
            return fh.read()

    before = secret()
    assert make_keys(keys, ["broker", "w1"]) == []
    assert secret() == before
