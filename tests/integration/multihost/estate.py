"""A multi-host estate in network namespaces, as the README's "Running on several hosts".

Hosts (each a namespace on one bridge, see :mod:`tests.support.netns`):

=======  ===========  ==================================================
ga, gb   .11, .12     ``gateway up --role gateway``: front + broker, the
                      broker's public endpoint with CURVE
w2, w3   .21, .22     ``gateway up --role workers``: the py2 service on
                      w2, the py3 one on w3, each registered with both
                      brokers over CURVE
redis    .31          redis-server with a password and an AOF
lb       .40          HAProxy, health check on ``/_gateway/health``
client   .50          the load and the probes
=======  ===========  ==================================================

::

    estate = Estate(lab, workdir)          # writes keys and configs
    estate.start()                         # everything up and answering through the LB
    estate.probe(["http://10.231.0.11:8080/py3/whoami"], until_ok=True, timeout=10)

``migration`` (extra TOML for the gateway hosts) lets a test add the shared
migration store's keys (``[migration] store = "redis"`` ...) and migrations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from gateway.commands.keys import make_keys
from tests.support.netns import Host, Lab
from tests.support.procs import REPO, python2, python3

NET = "10.231.0"
HTTP_PORT, BROKER_PORT, REDIS_PORT, LB_PORT = 8080, 5555, 6379, 8080
REDIS_PASSWORD = "multihost-test-password"
HERE = os.path.dirname(os.path.abspath(__file__))
APP = "tests.integration.multihost.hostinfo:app"
TABLE = "tests.integration.multihost.hostinfo:TABLE"

GATEWAY_TOML = """\
[gateway]
listen = "{ip}:{http_port}"
role = "gateway"
workers = 1
threads = 8
run_dir = "{run_dir}"
stop_grace_s = 2.0

[runtimes]
py2 = "{py2}"
py3 = "{py3}"

[broker]
heartbeat_ms = 250
public_endpoint = "tcp://{ip}:{broker_port}"
curve_secret_file = "{keys}/broker.key_secret"
curve_clients_dir = "{keys}/clients"

[redis]
url = "{redis_url}"

[[routes]]
prefix = "/py2"
backend = "wsgi"
service = "web2"
timeout_ms = {timeout_ms}

[[routes]]
prefix = "/py3"
backend = "wsgi"
service = "web3"
timeout_ms = {timeout_ms}

[services.web2]
runtime = "py2"
app = "{app}"

[services.web3]
runtime = "py3"
app = "{app}"
{migration}
"""

WORKER_TOML = """\
[gateway]
role = "workers"
run_dir = "{run_dir}"
stop_grace_s = 2.0

[runtimes]
py2 = "{py2}"
py3 = "{py3}"

[broker]
connect = [{connect}]
curve_server_key = "{keys}/broker.key"
curve_client_secret = "{keys}/{name}.key_secret"

[redis]
url = "{redis_url}"

[services.{service}]
runtime = "{runtime}"
app = "{app}"
env = {{ MULTIHOST_NAME = "{name}" }}

[services.info{py}]
runtime = "{runtime}"
module = "{table}"
env = {{ MULTIHOST_NAME = "{name}" }}
"""

HAPROXY_CFG = """\
global
    maxconn 1000
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 15s
    timeout server 15s
    timeout check 1s
    retries 3
    option redispatch

frontend gateway
    bind {lb_ip}:{lb_port}
    default_backend gateways

backend gateways
    balance roundrobin
    option httpchk GET /_gateway/health
    http-check expect status 200
    http-response set-header X-Served-By %[srv_name]
    default-server inter 250ms fall 2 rise 2
{servers}
"""


class Estate:
    """Configs, keys and processes of the multi-host estate; see the module docstring."""

    def __init__(self, lab: Lab, workdir: str, migration: str = "",
                 timeout_ms: int = 2000) -> None:
        self.lab = lab
        self.dir = workdir
        self.keys = os.path.join(workdir, "keys")
        make_keys(self.keys, ["broker", "w2", "w3", "client"])
        self.hosts: dict[str, Host] = {}
        for name, last in (("ga", 11), ("gb", 12), ("w2", 21), ("w3", 22), ("redis", 31),
                           ("lb", 40), ("client", 50)):
            self.hosts[name] = lab.host(name, f"{NET}.{last}")
        self.redis_url = f"redis://:{REDIS_PASSWORD}@{self.ip('redis')}:{REDIS_PORT}/0"
        self.migration = migration
        self.timeout_ms = timeout_ms
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.configs: dict[str, str] = {}
        for gw in ("ga", "gb"):
            self.configs[gw] = self._write(gw, GATEWAY_TOML.format(
                ip=self.ip(gw), http_port=HTTP_PORT, broker_port=BROKER_PORT,
                **self._common(gw), migration=migration, timeout_ms=timeout_ms))
        connect = ", ".join(f'"tcp://{self.ip(g)}:{BROKER_PORT}"' for g in ("ga", "gb"))
        for name, runtime in (("w2", "py2"), ("w3", "py3")):
            self.configs[name] = self._write(name, WORKER_TOML.format(
                connect=connect, name=name, service="web" + runtime[-1], runtime=runtime,
                py=runtime[-1], table=TABLE, **self._common(name)))

    def ip(self, name: str) -> str:
        """The lab address of host ``name``."""
        return self.hosts[name].ip

    @property
    def lb_url(self) -> str:
        """The estate's one public address: HAProxy."""
        return f"http://{self.ip('lb')}:{LB_PORT}"

    def gateway_url(self, name: str) -> str:
        """One gateway host's own front, bypassing the load balancer."""
        return f"http://{self.ip(name)}:{HTTP_PORT}"

    def _common(self, name: str) -> dict[str, str]:
        return {"run_dir": os.path.join(self.dir, name, "run"), "py2": python2(),
                "py3": python3(), "keys": self.keys, "redis_url": self.redis_url, "app": APP}

    def _write(self, name: str, text: str) -> str:
        os.makedirs(os.path.join(self.dir, name), exist_ok=True)
        path = os.path.join(self.dir, name, "gateway.toml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    def _log(self, name: str) -> Any:
        return open(os.path.join(self.dir, f"{name}.log"), "ab")

    # ------------------------------------------------------------------ start --
    def start_redis(self) -> None:
        """redis-server on the redis host: a password, an append-only file."""
        data = os.path.join(self.dir, "redis")
        os.makedirs(data, exist_ok=True)
        with self._log("redis") as log:
            self.procs["redis"] = self.lab.spawn(self.hosts["redis"], [
                "redis-server", "--bind", self.ip("redis"), "--port", str(REDIS_PORT),
                "--requirepass", REDIS_PASSWORD, "--appendonly", "yes",
                "--appendfsync", "always", "--dir", data, "--save", "",
                "--daemonize", "no", "--loglevel", "warning"], stdout=log, stderr=log)

    def start_gateway(self, name: str) -> None:
        """``gateway up --role gateway`` on host ``name`` (ga or gb)."""
        self._up(name, "gateway")

    def start_workers(self, name: str) -> None:
        """``gateway up --role workers`` on host ``name`` (w2 or w3)."""
        self._up(name, "workers")

    def _up(self, name: str, role: str) -> None:
        with self._log(name) as log:
            self.procs[name] = self.lab.spawn(self.hosts[name], [
                python3(), "-m", "gateway", "-c", self.configs[name], "up", "--role", role,
                "--no-color"], stdout=log, stderr=subprocess.STDOUT)

    def start_haproxy(self) -> None:
        """HAProxy on the lb host, in front of both gateway hosts."""
        servers = "\n".join(f"    server {g} {self.ip(g)}:{HTTP_PORT} check"
                            for g in ("ga", "gb"))
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(HAPROXY_CFG.format(lb_ip=self.ip("lb"), lb_port=LB_PORT,
                                        servers=servers))
        with self._log("haproxy") as log:
            self.procs["haproxy"] = self.lab.spawn(self.hosts["lb"], [
                "haproxy", "-db", "-f", path], stdout=log, stderr=log)

    def start(self, timeout: float = 60.0) -> None:
        """Every host up, and both services answering through both gateways and the LB."""
        self.start_redis()
        for gw in ("ga", "gb"):
            self.start_gateway(gw)
        for w in ("w2", "w3"):
            self.start_workers(w)
        self.start_haproxy()
        urls = [f"{self.gateway_url(g)}/{py}/whoami" for g in ("ga", "gb")
                for py in ("py2", "py3")] + [f"{self.lb_url}/py2/whoami"]
        found = self.probe(urls, timeout=timeout)
        missing = [u for u in urls if found.get(u) is None]
        if missing:
            raise AssertionError(f"the estate did not come up within {timeout:.0f}s: no 200 "
                                 f"from {missing}\n{self.logs()}")

    # ----------------------------------------------------------------- probes --
    def probe(self, urls: list[str], timeout: float) -> dict[str, float | None]:
        """Poll ``urls`` from the client host; the time each first answered 200 (or None)."""
        out = self.lab.run(self.hosts["client"], [
            sys.executable, os.path.join(HERE, "probe.py"), "--timeout", str(timeout),
            *urls], timeout=timeout + 30)
        if out.returncode != 0:
            raise AssertionError(f"probe failed: {out.stderr[-2000:]}")
        return dict(json.loads(out.stdout))

    def load(self, out: str, urls: list[str], count: int, seconds: float, threads: int = 4,
             stop_file: str = "") -> subprocess.Popen[Any]:
        """Start the bounded load generator on the client host."""
        argv = [sys.executable, os.path.join(HERE, "load.py"), "--out", out, "--count",
                str(count), "--seconds", str(seconds), "--threads", str(threads)]
        if stop_file:
            argv += ["--stop-file", stop_file]
        return self.lab.spawn(self.hosts["client"], argv + urls, cwd=REPO)

    def haproxy_log(self) -> list[str]:
        """HAProxy's request log lines so far (``option httplog``, one per request)."""
        path = os.path.join(self.dir, "haproxy.log")
        with open(path, encoding="utf-8", errors="replace") as fh:
            return [line for line in fh if " gateways/" in line]

    def brokers(self) -> str:
        """Every gateway host's public broker endpoint, comma-separated (GATEWAY_BROKER)."""
        return ",".join(f"tcp://{self.ip(g)}:{BROKER_PORT}" for g in ("ga", "gb"))

    def rpc_load(self, out: str, seconds: float, count: int,
                 stop_file: str) -> subprocess.Popen[Any]:
        """Service-to-service calls from the client host over both brokers (CURVE)."""
        return self.lab.spawn(self.hosts["client"], [
            sys.executable, os.path.join(HERE, "rpcload.py"), "--out", out, "--seconds",
            str(seconds), "--count", str(count), "--stop-file", stop_file,
            "--brokers", self.brokers(), "--server-key", os.path.join(self.keys, "broker.key"),
            "--secret", os.path.join(self.keys, "client.key_secret")])

    def logs(self, tail: int = 3000) -> str:
        """The end of every host's log, for a failure message."""
        parts = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                with open(os.path.join(self.dir, name), "rb") as fh:
                    text = fh.read()[-tail:].decode("utf-8", "replace")
                parts.append(f"--- {name}\n{text}")
        return "\n".join(parts)


def report(capsys: Any, text: str) -> None:
    """Print a test's measured numbers past pytest's capture, so CI logs show them."""
    with capsys.disabled():
        print(f"\n[multihost] {text}", flush=True)


def read_records(path: str) -> list[dict[str, Any]]:
    """The load generator's records so far."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.endswith("\n")]


def wait_records(path: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """Wait until the load has ``count`` records (AssertionError after ``timeout``)."""
    deadline = time.time() + timeout
    while True:
        records = read_records(path)
        if len(records) >= count:
            return records
        if time.time() > deadline:
            raise AssertionError(f"the load made {len(records)} requests, not {count}, "
                                 f"within {timeout:.0f}s")
        time.sleep(0.05)
