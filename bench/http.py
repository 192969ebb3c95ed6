"""HTTP paths under wrk: the gateway (http, wsgi py2/py3) against what teams run today.

The same hello-world app sits behind every path; each is loaded by wrk at 32
connections over loopback, in interleaved rounds, and reported as ratios
measured in the same run. Baselines: gunicorn direct, nginx -> gunicorn (py3,
gthread 2x8 pinned), nginx -> gunicorn 19.10 on Python 2.7 (the faster of sync
x4 and gthread 2x8: what a py2 estate runs today) and nginx -> granian (py3).
Floors: the least any front on the gateway's own server can cost on each path
(bench/floors.py, served by bench/serve.py). Targets (issue "A data plane as
fast as the nginx -> gunicorn it replaces"):

- gateway wsgi -> py2 worker >= 1.0x nginx -> gunicorn-2.7 and >= 0.8x nginx -> gunicorn;
- gateway wsgi -> py3 worker >= 0.4x nginx -> granian;
- gateway http -> gunicorn >= 0.8x nginx -> gunicorn;
- added p50 at 1 connection <= 0.25 ms over the app served directly;
- front + broker RSS under 1,000 idle keep-alive connections <= 150 MiB.

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
IDLE_CONNECTIONS = 1000
FLOOR_HTTP = "bare Python proxy -> gunicorn (floor)"
FLOOR_WSGI = "bare MDP hop -> echo (floor)"
NGINX = "nginx -> gunicorn"
NGINX_PY2 = "nginx -> gunicorn-2.7"
NGINX_GRANIAN = "nginx -> granian"
HTTP = "gateway http -> gunicorn"
WSGI3 = "gateway wsgi -> py3 worker"
WSGI2 = "gateway wsgi -> py2 worker"
WSGI3_PYBROKER = "gateway wsgi -> py3 worker (python broker)"
ONE_CONNECTION = ("gunicorn direct", NGINX, HTTP, WSGI3, WSGI2, FLOOR_HTTP, FLOOR_WSGI)
NATIVE_BROKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "build", "gateway-broker")
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
        self.pids: dict[int, int] = {}   # port (brokers: -port) -> pid
        self.workers: dict[str, list[int]] = {}   # service (or floor part) -> pids
        # path -> {part: pids}: whose CPU is counted per request on that path
        self.cpu: dict[str, dict[str, list[int]]] = {}
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

    def gunicorn(self, app: str, env: dict[str, str] | None = None, python: str = "",
                 workers: int = 2, threads: int = 8) -> int:
        """gunicorn serving ``app``: gthread ``workers`` x ``threads`` pinned, or sync when
        ``threads`` is 0 (py3 by default; ``python`` picks another interpreter)."""
        port = free_port()
        log = open(os.path.join(self.dir, f"gunicorn-{port}.log"), "wb")  # noqa: SIM115
        kind = ["-k", "gthread", "--threads", str(threads)] if threads else ["-k", "sync"]
        conf = [] if python else ["-c", "python:tests.integration.http.pinned_conf"]
        # gunicorn 19.10 (the last for 2.7) has no __main__ module.
        head = [python, "-c", "from gunicorn.app.wsgiapp import run; run()"] if python \
            else [python3(), "-m", "gunicorn"]
        proc = self.procs.spawn(
            [*head, *kind, "-w", str(workers),
             "-b", f"127.0.0.1:{port}", *conf, "--log-level", "warning", app],
            env=env, stdout=log, stderr=log)
        self._wait(port, proc, app)
        self.pids[port] = proc.pid
        return port

    def served(self, app: str, env: dict[str, str] | None = None, asgi: bool = False) -> int:
        """``app`` on the gateway's own front server (bench/serve.py), 2 pinned workers."""
        port = free_port()
        log = open(os.path.join(self.dir, f"serve-{port}.log"), "wb")  # noqa: SIM115
        proc = self.procs.spawn([python3(), "-m", "bench.serve", "--port", str(port),
                                 *(["--asgi"] if asgi else []), app],
                                env=env, stdout=log, stderr=log)
        self._wait(port, proc, app)
        self.pids[port] = proc.pid
        return port

    def granian(self, app: str) -> int | None:
        """granian (Rust) serving the WSGI ``app`` with 2 workers, or None when missing."""
        binary = os.path.join(os.path.dirname(python3()), "granian")
        if not os.path.exists(binary):
            self.notes.append("granian is not installed: the granian row is skipped")
            return None
        port = free_port()
        log = open(os.path.join(self.dir, f"granian-{port}.log"), "wb")  # noqa: SIM115
        module, _, name = app.partition(":")
        proc = self.procs.spawn([binary, "--interface", "wsgi", "--workers", "2",
                                 "--blocking-threads", "2", "--host", "127.0.0.1",
                                 "--port", str(port), "--log-level", "warning",
                                 f"{module}:{name}"], stdout=log, stderr=log)
        self._wait(port, proc, "granian")
        return port

    def gateway(self, http: dict[str, Any]) -> int:
        """The gateway's front (2 workers x 8 threads, pinned) for ``http``."""
        port = free_port()
        path = os.path.join(self.dir, f"gateway-{port}.json")
        # Every benchmark client is one address, 127.0.0.1: the per-client connection cap
        # would refuse part of the 1,000 idle connections, so the throughput and memory
        # figures are taken without it (bench/faults.py measures the cap's side).
        http = {**http, "limits": {"max_connections_per_client": 0, **http.get("limits", {})}}
        with open(path, "w") as fh:
            json.dump({"http": http, "bind": f"127.0.0.1:{port}", "workers": 2,
                       "threads": 8}, fh)
        log = open(os.path.join(self.dir, f"gateway-{port}.log"), "wb")  # noqa: SIM115
        proc = self.procs.spawn([python3(), "-m", "tests.integration.http.launch", path],
                                stdout=log, stderr=log)
        self._wait(port, proc, "gateway")
        self.pids[port] = proc.pid
        return port

    def broker(self, native: bool) -> str:
        """A broker on loopback TCP: the compiled one, or the Python reference."""
        port = free_port()
        head = [NATIVE_BROKER] if native else [python3(), "-m", "gateway.broker"]
        proc = self.procs.spawn([*head, "--bind", f"tcp://127.0.0.1:{port}",
                                 "--heartbeat-ms", "2500"], stdout=subprocess.DEVNULL)
        self._wait(port, proc, "broker")
        self.pids[-port] = proc.pid
        return f"tcp://127.0.0.1:{port}"

    def wsgi_workers(self, endpoint: str, service: str, python: str, count: int) -> None:
        """``count`` protocol.wsgi workers hosting the hello app, waited for via mmi."""
        from protocol.client import Client
        for _ in range(count):
            proc = self.procs.spawn([python, "-m", "protocol.wsgi", "--broker", endpoint,
                                     "--service", service, HELLO])
            self.workers.setdefault(service, []).append(proc.pid)
        client = Client(endpoint, timeout=1.0)
        try:
            wait_until(lambda: client.mmi(service, timeout=1.0) == "200", 30,
                       what=f"{service} workers")
        finally:
            client.close()

    def c_relay(self) -> str:
        """libzmq's zmq_proxy and an echo (bench.rpc's compiled floor); the client endpoint."""
        import zmq

        from bench.rpc import C_RELAY, C_RELAY_WORKER, wait_bare
        back = f"tcp://127.0.0.1:{free_port()}"
        relay = self.procs.spawn([python3(), "-c", C_RELAY, back], stdout=subprocess.PIPE,
                                 text=True)
        assert relay.stdout is not None
        endpoint = relay.stdout.readline().strip()
        echo = self.procs.spawn([python3(), "-c", C_RELAY_WORKER, back])
        self.workers["c-relay"] = [relay.pid]
        self.workers["c-echo"] = [echo.pid]
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(endpoint)
        try:
            wait_bare(sock, [b"", b"MDPC01", b"echo", b"0", b"ping"])
        finally:
            sock.close(linger=0)
        return endpoint

    def nginx(self, upstream: int) -> int | None:
        """nginx proxy_pass with upstream keep-alive, or None when nginx is missing."""
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists(
            "/usr/sbin/nginx") else None)
        if binary is None:
            if not any(n.startswith("nginx is not") for n in self.notes):
                self.notes.append("nginx is not installed: the nginx rows are skipped")
            return None
        port = free_port()
        home = os.path.join(self.dir, f"nginx-{port}")
        os.makedirs(home)
        conf = os.path.join(home, "nginx.conf")
        with open(conf, "w") as fh:
            fh.write(NGINX_CONF.format(dir=home, upstream=upstream, port=port))
        proc = self.procs.spawn([binary, "-c", conf, "-p", home, "-g", "daemon off;"],
                                stderr=subprocess.DEVNULL)
        self._wait(port, proc, "nginx")
        return port

    def add(self, name: str, port: int | None) -> None:
        """Measure ``port`` as path ``name`` (skipped when the server is missing)."""
        if port is not None:
            self.paths[name] = port

    def start(self) -> None:
        """Start every path."""
        direct = self.gunicorn(HELLO)
        self.add("gunicorn direct", direct)
        self.add(NGINX, self.nginx(direct))
        upstream = f"http://127.0.0.1:{direct}"
        try:
            py2: str | None = python2()
        except RuntimeError:
            py2 = None
            self.notes.append("no Python 2.7 environment: the py2 rows are skipped")
        if py2:
            sync = self.nginx(self.gunicorn(HELLO, python=py2, workers=4, threads=0))
            gthread = self.nginx(self.gunicorn(HELLO, python=py2, workers=2, threads=8))
            self.add(NGINX_PY2 + " sync x4", sync)
            self.add(NGINX_PY2 + " gthread 2x8", gthread)
        granian = self.granian(HELLO)
        self.add(NGINX_GRANIAN, self.nginx(granian) if granian else None)
        self.add(FLOOR_HTTP, self.served("bench.floors:bare_proxy",
                                         env={"FLOOR_UPSTREAM": upstream}))
        self.add(FLOOR_WSGI, self.served("bench.floors:bare_mdp_asgi", asgi=True,
                                         env={"FLOOR_BROKER": self.c_relay()}))
        native = os.access(NATIVE_BROKER, os.X_OK)
        if not native:
            self.notes.append(f"{NATIVE_BROKER} is not built (make setup): the gateway "
                              "rows use the Python broker")
        endpoint = self.broker(native)
        self.wsgi_workers(endpoint, "hello3", python3(), 2)
        if py2:
            self.wsgi_workers(endpoint, "hello2", py2, 2)
        self.add(HTTP, self.gateway({"routes": [
            {"prefix": "/", "backend": "http", "upstream": upstream}]}))
        self.add(WSGI3, self.gateway({"broker": endpoint, "routes": [
            {"prefix": "/", "backend": "wsgi", "service": "hello3"}]}))
        if py2:
            self.add(WSGI2, self.gateway({"broker": endpoint, "routes": [
                {"prefix": "/", "backend": "wsgi", "service": "hello2"}]}))
        if native:
            reference = self.broker(False)
            self.wsgi_workers(reference, "hello3", python3(), 2)
            self.add(WSGI3_PYBROKER, self.gateway({"broker": reference, "routes": [
                {"prefix": "/", "backend": "wsgi", "service": "hello3"}]}))
        self.memory_port = self.paths.get(WSGI3)
        self.memory_broker = endpoint
        broker_pid = self.pids[-int(endpoint.rsplit(":", 1)[1])]
        for name, service in ((WSGI3, "hello3"), (WSGI2, "hello2")):
            if name in self.paths:
                self.cpu[name] = {"front": [self.pids[self.paths[name]]],
                                  "broker": [broker_pid],
                                  "workers": self.workers.get(service, [])}
        if HTTP in self.paths:
            self.cpu[HTTP] = {"front": [self.pids[self.paths[HTTP]]],
                              "upstream (gunicorn)": [self.pids[direct]]}
        if FLOOR_WSGI in self.paths:
            self.cpu[FLOOR_WSGI] = {"front": [self.pids[self.paths[FLOOR_WSGI]]],
                                    "relay (zmq_proxy)": self.workers["c-relay"],
                                    "echo": self.workers["c-echo"]}
        self.cpu["gunicorn direct"] = {"app (gunicorn)": [self.pids[direct]]}


def _ratio(values: dict[str, float], a: str, b: str) -> float:
    return values[a] / values[b] if a in values and b in values and values[b] else float("nan")


def pss_kib(pid: int) -> int:
    """Memory of ``pid`` and all its descendants, in KiB: the sum of their PSS (/proc).

    PSS, not RSS: forked workers share their master's pages, and RSS would count each
    shared page once per process.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            with open(f"/proc/{current}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` and all their descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    ticks, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        ticks += int(stats[pid][11]) + int(stats[pid][12])  # utime, stime
        todo += children.get(pid, [])
    return ticks / os.sysconf("SC_CLK_TCK")


def idle_memory(estate: Estate, count: int) -> tuple[float, float, int] | None:
    """(front MiB, broker MiB, connections held) with ``count`` idle keep-alive connections
    on the py3 wsgi gateway, each of which has made one request."""
    import resource
    import socket
    port = estate.memory_port
    if port is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            if not sock.recv(65536).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("the gateway did not answer 200")
            held.append(sock)
        broker_port = int(estate.memory_broker.rsplit(":", 1)[1])
        front = pss_kib(estate.pids[port]) / 1024
        broker = pss_kib(estate.pids[-broker_port]) / 1024
        return front, broker, len(held)
    finally:
        for sock in held:
            sock.close()


def run(smoke: bool) -> list[Table]:
    """Measure every path; return the throughput, latency and memory tables."""
    if shutil.which("wrk") is None:
        table = Table("http: skipped", "req/s", "none")
        table.notes.append("wrk is not installed (apt-get install wrk): nothing measured")
        return [table]
    # Five rounds: the collapse check (min/median >= 0.8: workers sharing one core)
    # needs enough of them to catch a bimodal run.
    seconds, rounds = (1.0, 1) if smoke else (5.0, 5)
    estate = Estate(smoke)
    memory = None
    try:
        estate.start()
        rates: dict[str, list[float]] = {n: [] for n in estate.paths}
        p50s: dict[str, list[float]] = {n: [] for n in estate.paths}
        errors: list[str] = []
        for port in estate.paths.values():
            wrk(port, 1.0)  # warm pools, sockets and caches
        single: dict[str, list[float]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        for _ in range(rounds):
            for name, port in estate.paths.items():
                parts = estate.cpu.get(name, {})
                before = {k: cpu_seconds(v) for k, v in parts.items()}
                rate, p50 = wrk(port, seconds, errors=errors, label=name)
                for part, pids in parts.items():
                    used = cpu_seconds(pids) - before[part]
                    cpu.setdefault(name, {}).setdefault(part, []).append(
                        used / max(1.0, rate * seconds) * 1e6)
                rates[name].append(rate)
                p50s[name].append(p50)
                if name in ONE_CONNECTION:
                    single.setdefault(name, []).append(wrk(port, seconds, 1, errors, name)[1])
        memory = idle_memory(estate, 100 if smoke else IDLE_CONNECTIONS)
        rate = {n: statistics.median(v) for n, v in rates.items()}
        p50 = {n: statistics.median(v) for n, v in p50s.items()}
        p50_one = {n: statistics.median(v) for n, v in single.items()}
        cpu_us = {n: {k: statistics.median(v) for k, v in parts.items()}
                  for n, parts in cpu.items()}
        estate.notes += [f"errors under load: {e}" for e in errors]
        steady = [f"{n} {min(v) / statistics.median(v):.2f}" for n, v in rates.items()
                  if n.startswith("gateway") and len(v) > 1]
        if steady:
            estate.notes.append("no collapse (min/median req/s over the rounds >= 0.8): "
                                + ", ".join(steady))
        with open("/proc/loadavg") as fh:
            estate.notes.append(f"load average at the end: {fh.read().split()[0]} on "
                                f"{os.cpu_count()} CPUs (other load skews every figure)")
    finally:
        estate.close()
    return [*_tables(rate, p50, p50_one, estate.notes, seconds, rounds, memory),
            _cpu_table(cpu_us)]


def _cpu_table(cpu_us: dict[str, dict[str, float]]) -> Table:
    """CPU per request by process on each measured path (where the time goes)."""
    table = Table("http: CPU per request by process, at 32 connections", "us",
                  "gunicorn direct: app (gunicorn)", higher_is_better=False)
    for path, parts in cpu_us.items():
        total = sum(parts.values())
        for part, value in parts.items():
            table.add(f"{path}: {part}", value)
        if len(parts) > 1:
            table.add(f"{path}: total", total)
    table.notes.append("user + system CPU of each process tree during the 32-connection "
                       "runs (/proc), divided by the requests served; medians over rounds")
    return table


def _py2_baseline(rate: dict[str, float]) -> str | None:
    """The faster of gunicorn-2.7 sync x4 and gthread 2x8 behind nginx (its row name)."""
    rows = [n for n in rate if n.startswith(NGINX_PY2)]
    return max(rows, key=lambda n: rate[n]) if rows else None


def _tables(rate: dict[str, float], p50: dict[str, float], p50_one: dict[str, float],
            notes: list[str], seconds: float, rounds: int,
            memory: tuple[float, float, int] | None) -> list[Table]:
    baseline = NGINX if NGINX in rate else "gunicorn direct"
    py2 = _py2_baseline(rate)

    def vs(ours: str, base: str | None, want: float) -> str:
        if base is None or base not in rate or ours not in rate:
            return f">= {want}x {base or 'baseline'} (not measured)"
        got = _ratio(rate, ours, base)
        return f">= {want}x {base}: {got:.2f}x {'met' if got >= want else 'missed'}"

    targets: dict[str, Callable[[], str]] = {
        WSGI2: lambda: f"{vs(WSGI2, py2, 1.0)}; {vs(WSGI2, NGINX, 0.8)}",
        WSGI3: lambda: vs(WSGI3, NGINX_GRANIAN, 0.4),
        HTTP: lambda: vs(HTTP, NGINX, 0.8),
    }
    table = Table(f"http: hello world under wrk, {CONNECTIONS} connections", "req/s", baseline)
    for name, value in rate.items():
        table.add(name, value, target=targets.get(name, lambda: "")())
    table.notes += [*notes, f"{rounds} round(s) of {seconds:.0f} s per path; medians",
                    "gunicorn on py3 is gthread 2 workers x 8 threads, pinned; gunicorn-2.7 "
                    "is 19.10 (sync x4 and gthread 2x8, unpinned, as a py2 estate runs it); "
                    f"the py2 baseline is the faster of the two ({py2 or 'not measured'})",
                    "the gateway's front: uvicorn (llhttp, uvloop) in 2 pinned workers; its "
                    "wsgi rows use the compiled broker unless the row says otherwise",
                    f"{FLOOR_HTTP}: an app that only relays the request line over "
                    "http.client, on the gateway's own server (bench/floors.py, bench/serve.py)",
                    f"{FLOOR_WSGI}: an ASGI app on the gateway's own server that sends one "
                    "RFC 7 request from the event loop through libzmq's zmq_proxy to an echo: "
                    "the least the wsgi fast path plus a compiled broker can cost"]
    for ours, floor in ((WSGI3, FLOOR_WSGI), (WSGI2, FLOOR_WSGI), (HTTP, FLOOR_HTTP)):
        if ours in rate and floor in rate:
            table.notes.append(f"{ours} = {_ratio(rate, ours, floor):.2f}x its floor's req/s; "
                               f"the floor itself is {_ratio(rate, floor, baseline):.2f}x "
                               f"{baseline}")
    lat = Table("http: p50 latency at 32 connections", "ms", "gunicorn direct",
                higher_is_better=False)
    for name, value in p50.items():
        added = value - p50.get("gunicorn direct", value)
        lat.add(name, value, extra=f"adds {added:+.3f} ms")
    lat.notes.append("at 32 connections the CPUs are saturated, so p50 is mostly queueing")
    one = Table("http: p50 latency at 1 connection (the cost of each hop)", "ms",
                "gunicorn direct", higher_is_better=False)
    for name, value in p50_one.items():
        added = value - p50_one.get("gunicorn direct", value)
        target = ""
        if name in (HTTP, WSGI3, WSGI2):
            target = f"added <= 0.25 ms: {'met' if added <= 0.25 else 'missed'}"
        one.add(name, value, target=target, extra=f"adds {added:+.3f} ms")
    tables = [table, lat, one]
    if memory is not None:
        front, broker, held = memory
        mem = Table(f"http: memory with {held} idle keep-alive connections", "MiB",
                    "front + broker", higher_is_better=False)
        total = front + broker
        mem.add("front + broker", total,
                target=f"<= 150 MiB: {'met' if total <= 150 else 'missed'}")
        mem.add("front (master + 2 workers)", front)
        mem.add("broker", broker)
        mem.notes.append("PSS summed over each process tree (/proc/PID/smaps_rollup: shared "
                         "pages counted once), connections held open by the benchmark after "
                         "one request each")
        tables.append(mem)
    return tables


if __name__ == "__main__":
    for t in run("--smoke" in sys.argv):
        print(t.markdown())
