"""HTTP paths under wrk: direct gunicorn, nginx, the gateway (http, wsgi py2/py3), a naive proxy.

The same hello-world app sits behind every path; each is loaded by wrk at 32
connections over loopback, in interleaved rounds, and reported as ratios
measured in the same run. Targets (DESIGN): the wsgi path >= 0.5x nginx ->
gunicorn; the gateway's http path >= 1.5x the naive werkzeug+requests proxy;
the gateway adds < 1 ms to p50 at 32 connections.

``--smoke`` runs each path for 1 s (5 s otherwise) and skips nginx or wrk
when they are not installed, saying so (``apt-get install wrk nginx``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from bench.report import Table
from tests.support.procs import (
    ProcessGroup,
    free_port,
    port_open,
    python2,
    python3,
    wait_until,
)

HELLO = "tests.integration.http.upstream:hello"
CONNECTIONS = 32
FLOOR_HTTP = "bare Python proxy -> gunicorn (floor)"
FLOOR_WSGI = "bare MDP hop -> echo worker (floor)"
ONE_CONNECTION = ("gunicorn direct", "nginx -> gunicorn", "gateway http -> gunicorn",
                  "gateway wsgi -> py3 worker", "gateway wsgi -> py2 worker",
                  FLOOR_HTTP, FLOOR_WSGI)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_LATENCY = re.compile(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)

NGINX_CONF = """\
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://app; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }}
  }}
}}
"""


def wrk(port: int, seconds: float, connections: int = CONNECTIONS,
        errors: list[str] | None = None, label: str = "") -> tuple[float, float]:
    """(requests/s, p50 latency in ms) of wrk against 127.0.0.1:``port``.

    Non-2xx answers and socket errors are appended to ``errors`` (if given).
    """
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(seconds))}s",
         "--timeout", "5s", "--latency", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rate = _RATE.search(out)
    p50 = _LATENCY.search(out)
    if rate is None or p50 is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    bad = re.search(r"(Non-2xx or 3xx responses: \d+|Socket errors: .*)", out)
    if bad and errors is not None:
        errors.append(f"{label or f'port {port}'}: {bad.group(1)}")
    return float(rate.group(1)), float(p50.group(1)) * _UNITS[p50.group(2)]


class Estate:
    """Every server of the benchmark, started once, stopped by PID at the end."""

    def __init__(self, smoke: bool) -> None:
        self.procs = ProcessGroup()
        self.dir = tempfile.mkdtemp(prefix="gw-bench-http-")
        self.paths: dict[str, int] = {}
        self.notes: list[str] = []
        self.smoke = smoke

    def close(self) -> None:
        """Stop everything and remove the temp dir."""
        self.procs.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _wait(self, port: int, proc: Any, what: str) -> None:
        wait_until(lambda: port_open(port) or proc.poll() is not None, 30, what=what)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")

    def gunicorn(self, app: str, env: dict[str, str] | None = None) -> int:
        """gunicorn gthread 2x8, workers pinned, serving ``app``."""
        port = free_port()
        log = open(os.path.join(self.dir, f"gunicorn-{port}.log"), "wb")  # noqa: SIM115
        proc = self.procs.spawn(
            [python3(), "-m", "gunicorn", "-k", "gthread", "-w", "2", "--threads", "8",
             "-b", f"127.0.0.1:{port}", "-c", "python:tests.integration.http.pinned_conf",
             "--log-level", "warning", app], env=env, stdout=log, stderr=log)
        self._wait(port, proc, app)
        return port

    def gateway(self, http: dict[str, Any]) -> int:
        """The gateway under gunicorn (2 workers x 8 threads, pinned)."""
        port = free_port()
        path = os.path.join(self.dir, f"gateway-{port}.json")
        with open(path, "w") as fh:
            json.dump({"http": http, "bind": f"127.0.0.1:{port}", "workers": 2,
                       "threads": 8}, fh)
        log = open(os.path.join(self.dir, f"gateway-{port}.log"), "wb")  # noqa: SIM115
        proc = self.procs.spawn([python3(), "-m", "tests.integration.http.launch", path],
                                stdout=log, stderr=log)
        self._wait(port, proc, "gateway")
        return port

    def broker(self) -> str:
        """A broker on loopback TCP."""
        port = free_port()
        proc = self.procs.spawn([python3(), "-m", "gateway.broker", "--bind",
                                 f"tcp://127.0.0.1:{port}", "--heartbeat-ms", "2500"],
                                stdout=subprocess.DEVNULL)
        self._wait(port, proc, "broker")
        return f"tcp://127.0.0.1:{port}"

    def wsgi_workers(self, endpoint: str, service: str, python: str, count: int) -> None:
        """``count`` protocol.wsgi workers hosting the hello app, waited for via mmi."""
        from protocol.client import Client
        for _ in range(count):
            self.procs.spawn([python, "-m", "protocol.wsgi", "--broker", endpoint,
                              "--service", service, HELLO])
        client = Client(endpoint, timeout=1.0)
        try:
            wait_until(lambda: client.mmi(service, timeout=1.0) == "200", 30,
                       what=f"{service} workers")
        finally:
            client.close()

    def bare_relay(self) -> str:
        """The RPC benchmark's bare RFC 7 relay and echo worker, answering (bench.floors)."""
        import zmq

        from bench.rpc import BARE_RELAY, BARE_WORKER, wait_bare
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.procs.spawn([python3(), "-c", BARE_RELAY, endpoint], stdout=subprocess.DEVNULL)
        self.procs.spawn([python3(), "-c", BARE_WORKER, endpoint])
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        try:
            wait_bare(sock, [b"", b"MDPC01", b"echo", b"ping"])
        finally:
            sock.close(linger=0)
        return endpoint

    def nginx(self, upstream: int) -> int | None:
        """nginx proxy_pass with upstream keep-alive, or None when nginx is missing."""
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists(
            "/usr/sbin/nginx") else None)
        if binary is None:
            self.notes.append("nginx is not installed: the nginx row is skipped")
            return None
        port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(dir=self.dir, upstream=upstream, port=port))
        proc = self.procs.spawn([binary, "-c", conf, "-p", self.dir, "-g", "daemon off;"],
                                stderr=subprocess.DEVNULL)
        self._wait(port, proc, "nginx")
        return port

    def start(self) -> None:
        """Start every path."""
        direct = self.gunicorn(HELLO)
        self.paths["gunicorn direct"] = direct
        nginx = self.nginx(direct)
        if nginx is not None:
            self.paths["nginx -> gunicorn"] = nginx
        upstream = f"http://127.0.0.1:{direct}"
        self.paths["naive proxy -> gunicorn"] = self.gunicorn(
            "tests.integration.http.naive_proxy:app", env={"NAIVE_UPSTREAM": upstream})
        self.paths[FLOOR_HTTP] = self.gunicorn("bench.floors:bare_proxy",
                                               env={"FLOOR_UPSTREAM": upstream})
        self.paths[FLOOR_WSGI] = self.gunicorn("bench.floors:bare_mdp",
                                               env={"FLOOR_BROKER": self.bare_relay()})
        endpoint = self.broker()
        try:
            py2: str | None = python2()
        except RuntimeError:
            py2 = None
            self.notes.append("no Python 2.7 environment: the py2 wsgi row is skipped")
        self.wsgi_workers(endpoint, "hello3", python3(), 2)
        if py2:
            self.wsgi_workers(endpoint, "hello2", py2, 2)
        self.paths["gateway http -> gunicorn"] = self.gateway({"routes": [
            {"prefix": "/", "backend": "http", "upstream": upstream}]})
        self.paths["gateway wsgi -> py3 worker"] = self.gateway({"broker": endpoint, "routes": [
            {"prefix": "/", "backend": "wsgi", "service": "hello3"}]})
        if py2:
            self.paths["gateway wsgi -> py2 worker"] = self.gateway({
                "broker": endpoint,
                "routes": [{"prefix": "/", "backend": "wsgi", "service": "hello2"}]})


def _ratio(values: dict[str, float], a: str, b: str) -> float:
    return values[a] / values[b] if a in values and b in values and values[b] else float("nan")


def run(smoke: bool) -> list[Table]:
    """Measure every path; return the throughput and the latency tables."""
    if shutil.which("wrk") is None:
        table = Table("http: skipped", "req/s", "none")
        table.notes.append("wrk is not installed (apt-get install wrk): nothing measured")
        return [table]
    seconds, rounds = (1.0, 1) if smoke else (5.0, 3)
    estate = Estate(smoke)
    try:
        estate.start()
        rates: dict[str, list[float]] = {n: [] for n in estate.paths}
        p50s: dict[str, list[float]] = {n: [] for n in estate.paths}
        errors: list[str] = []
        for port in estate.paths.values():
            wrk(port, 1.0)  # warm pools, sockets and caches
        single: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, port in estate.paths.items():
                rate, p50 = wrk(port, seconds, errors=errors, label=name)
                rates[name].append(rate)
                p50s[name].append(p50)
                if name in ONE_CONNECTION:
                    single.setdefault(name, []).append(wrk(port, seconds, 1, errors, name)[1])
        rate = {n: statistics.median(v) for n, v in rates.items()}
        p50 = {n: statistics.median(v) for n, v in p50s.items()}
        p50_one = {n: statistics.median(v) for n, v in single.items()}
        estate.notes += [f"errors under load: {e}" for e in errors]
        with open("/proc/loadavg") as fh:
            estate.notes.append(f"load average at the end: {fh.read().split()[0]} on "
                                f"{os.cpu_count()} CPUs (other load skews every figure)")
    finally:
        estate.close()
    return _tables(rate, p50, p50_one, estate.notes, seconds, rounds)


def _tables(rate: dict[str, float], p50: dict[str, float], p50_one: dict[str, float],
            notes: list[str], seconds: float, rounds: int) -> list[Table]:
    baseline = "nginx -> gunicorn" if "nginx -> gunicorn" in rate else "gunicorn direct"
    targets: dict[str, Callable[[], str]] = {
        "gateway wsgi -> py3 worker": lambda: ">= 0.5x nginx",
        "gateway wsgi -> py2 worker": lambda: ">= 0.5x nginx",
        "gateway http -> gunicorn": lambda: (
            f">= 1.5x naive (got {_ratio(rate, 'gateway http -> gunicorn', 'naive proxy -> gunicorn'):.2f}x)"),  # noqa: E501
    }
    table = Table(f"http: hello world under wrk, {CONNECTIONS} connections", "req/s", baseline)
    for name, value in rate.items():
        table.add(name, value, target=targets.get(name, lambda: "")())
    table.notes += [*notes, f"{rounds} round(s) of {seconds:.0f} s per path; medians",
                    "gunicorn everywhere is gthread 2 workers x 8 threads, pinned",
                    f"{FLOOR_HTTP}: a gunicorn app that only relays the request line over "
                    "http.client (bench/floors.py), the least a Python front can do",
                    f"{FLOOR_WSGI}: a gunicorn app that only sends one RFC 7 request "
                    "through a logic-free relay to an echo (bench/floors.py): the least "
                    "a Python front plus an MDP broker and worker can do"]
    for ours, floor in (("gateway wsgi -> py3 worker", FLOOR_WSGI),
                        ("gateway http -> gunicorn", FLOOR_HTTP)):
        if ours in rate and floor in rate:
            table.notes.append(f"{ours} = {_ratio(rate, ours, floor):.2f}x its floor's req/s; "
                               f"the floor itself is {_ratio(rate, floor, baseline):.2f}x "
                               f"{baseline}")
    lat = Table("http: p50 latency at 32 connections", "ms", "gunicorn direct",
                higher_is_better=False)
    for name, value in p50.items():
        added = value - p50.get("gunicorn direct", value)
        target = "added < 1 ms" if name.startswith("gateway http") else ""
        lat.add(name, value, target=target, extra=f"adds {added:+.3f} ms")
    lat.notes.append("at 32 connections the CPUs are saturated, so p50 is mostly queueing")
    one = Table("http: p50 latency at 1 connection (the cost of each hop)", "ms",
                "gunicorn direct", higher_is_better=False)
    for name, value in p50_one.items():
        added = value - p50_one.get("gunicorn direct", value)
        one.add(name, value, target="added < 1 ms" if name.startswith("gateway") else "",
                extra=f"adds {added:+.3f} ms")
    return [table, lat, one]


if __name__ == "__main__":
    for t in run("--smoke" in sys.argv):
        print(t.markdown())
