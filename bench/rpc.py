"""RPC over the broker against raw pyzmq and zerorpc, all measured in one run on loopback.

Paths (same payload everywhere; every peer is its own process):

- raw REQ/REP echo, sync: the latency baseline;
- raw DEALER/ROUTER echo with a window of requests in flight: the throughput baseline;
- our brokered call, py3 client -> broker -> py3 worker, and -> py2 worker, through the
  Python broker and through the compiled one (``build/gateway-broker``);
- two floors: a bare RFC 7 relay in Python, and a compiled relay (libzmq's own
  ``zmq_proxy`` between a ROUTER and a DEALER, driven from pyzmq);
- zerorpc 0.6.3 (py3), sync and pipelined, when it is installed.

Every loop is bounded in count and in time. Rounds are interleaved and the
median kept, so drift hits every path alike.
"""

from __future__ import annotations

import os
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import zmq

from bench.report import Table
from protocol import codec
from protocol.client import Client
from protocol.errors import ProtocolError, Timeout

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY2 = os.environ.get("GATEWAY_PY2") or os.path.join(REPO, ".venv2", "bin", "python")
PAYLOAD = {"text": "hello world " * 8, "n": 42, "flags": [True, False, None]}
WINDOW = 100

RAW_REP = """
import sys, zmq
s = zmq.Context.instance().socket(zmq.REP); s.bind("tcp://127.0.0.1:*")
print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    s.send_multipart(s.recv_multipart())
"""
RAW_ROUTER = """
import sys, zmq
s = zmq.Context.instance().socket(zmq.ROUTER); s.bind("tcp://127.0.0.1:*")
print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    s.send_multipart(s.recv_multipart())
"""
WORKER = """
import sys
from protocol.worker import Worker
w = Worker(sys.argv[1], u"echo", {u"echo": lambda value: value}, credit=16)
w.install_signal_handlers()
w.run()
"""
# The floor: RFC 7 frames relayed with no logic at all (no registry, deadlines, heartbeats,
# envelope checks). A real MDP broker, client and worker written with pyzmq cannot beat it.
BARE_RELAY = """
import sys, zmq
s = zmq.Context.instance().socket(zmq.ROUTER)
s.bind(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:*")
print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
worker = None
while True:
    f = s.recv_multipart()
    if f[2] == b"MDPW01":
        worker = f[0]
        if f[3] == b"\\x03":  # [worker, '', MDPW01, REPLY, client, '', body...]
            s.send_multipart([f[4], b"", b"MDPC01", b"echo"] + f[6:])
    elif worker is not None:  # [client, '', MDPC01, service, body...]
        s.send_multipart([worker, b"", b"MDPW01", b"\\x02", f[0], b""] + f[4:])
"""
BARE_WORKER = """
import sys, zmq
d = zmq.Context.instance().socket(zmq.DEALER); d.connect(sys.argv[1])
d.send_multipart([b"", b"MDPW01", b"\\x01", b"echo"])
while True:
    f = d.recv_multipart()  # ['', MDPW01, REQUEST, client, '', body...]
    d.send_multipart([b"", b"MDPW01", b"\\x03", f[3], b""] + f[5:])
"""
# The compiled floor: libzmq's zmq_proxy() (C, no Python per message) between a ROUTER for
# clients and a DEALER to one echo worker. The client's RFC 7 request comes back to it
# unchanged, frame for frame, so it carries the brokered call's bytes and nothing else.
C_RELAY = """
import sys, zmq
ctx = zmq.Context.instance()
front = ctx.socket(zmq.ROUTER); front.bind("tcp://127.0.0.1:*")
back = ctx.socket(zmq.DEALER); back.bind(sys.argv[1])
print(front.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
zmq.proxy(front, back)
"""
C_RELAY_WORKER = """
import sys, zmq
d = zmq.Context.instance().socket(zmq.DEALER); d.connect(sys.argv[1])
while True:
    d.send_multipart(d.recv_multipart())  # [client, '', MDPC01, service, body...]
"""
NATIVE_BROKER = os.path.join(REPO, "build", "gateway-broker")
ZERORPC_SERVER = """
import sys, zerorpc
class Echo(object):
    def echo(self, value):
        return value
s = zerorpc.Server(Echo()); s.bind(sys.argv[1]); s.run()
"""


def _port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _spawn(argv: list[str], announce: bool = False) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run a peer; with ``announce``, read the endpoint it prints first (bound on port *)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(argv, env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE if announce else subprocess.DEVNULL)
    try:
        endpoint = ""
        if announce:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 20.0)
            if not ready:
                raise RuntimeError(f"{argv[:3]} did not announce its endpoint")
            endpoint = proc.stdout.readline().split()[-1]
        yield proc, endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _sync_p50(call: Callable[[], object], count: int, seconds: float) -> float:
    """Median latency in microseconds over at most ``count`` calls / ``seconds``."""
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    for _ in range(count):
        t = time.perf_counter()
        call()
        lat.append(time.perf_counter() - t)
        if t > stop:
            break
    return statistics.median(lat) * 1e6


def _pipelined(send: Callable[[], object], recv: Callable[[], object], count: int,
               seconds: float) -> float:
    """Messages per second with WINDOW in flight, bounded by ``count`` and ``seconds``."""
    sent = done = 0
    start = time.perf_counter()
    stop = start + seconds
    while done < count:
        while sent < count and sent - done < WINDOW:
            send()
            sent += 1
        recv()
        done += 1
        if time.perf_counter() > stop:
            while done < sent:  # drain what is in flight, bounded by the window
                recv()
                done += 1
            break
    return done / (time.perf_counter() - start)


def _wait_ready(client: Client, service: str, seconds: float = 20.0) -> None:
    stop = time.time() + seconds
    while True:
        try:
            if client.mmi(service, timeout=1.0) == "200":
                return
        except Timeout:
            pass  # the broker is still starting
        if time.time() > stop:
            raise RuntimeError(f"no worker for {service}")
        time.sleep(0.05)


def _raw(counts: tuple[int, float]) -> dict[str, float]:
    ctx = zmq.Context.instance()
    body = codec.encode(codec.Envelope("call", method="echo", payload=PAYLOAD))
    out: dict[str, float] = {}
    with _spawn([sys.executable, "-c", RAW_REP], announce=True) as (_, ep):
        req = ctx.socket(zmq.REQ)
        req.linger = 0
        req.rcvtimeo = 5000
        req.connect(ep)
        out["sync"] = _sync_p50(lambda: (req.send_multipart(body), req.recv_multipart()),
                                *counts)
        req.close(linger=0)
    with _spawn([sys.executable, "-c", RAW_ROUTER], announce=True) as (_, ep):
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.rcvtimeo = 5000
        dealer.connect(ep)
        dealer.send_multipart(body)
        dealer.recv_multipart()
        out["pipe"] = _pipelined(lambda: dealer.send_multipart(body), dealer.recv_multipart,
                                 counts[0] * 10, counts[1])
        dealer.close(linger=0)
    return out


def wait_bare(sock: zmq.Socket[bytes], request: list[bytes], seconds: float = 20.0) -> None:
    """Ask the bare relay until the echo worker has said READY and one answer came back."""
    stop = time.time() + seconds
    while True:  # the relay drops requests while it knows no worker
        sock.send_multipart(request)
        if sock.poll(200):
            sock.recv_multipart()
            break
        if time.time() > stop:
            raise RuntimeError("the bare relay never answered")
    while sock.poll(100):  # answers to the asks sent before the worker was there
        sock.recv_multipart()


def _bare(counts: tuple[int, float]) -> dict[str, float]:
    """The bare relay and worker: the same frames as the brokered call, and nothing else."""
    body = codec.encode(codec.Envelope("call", method="echo", payload=PAYLOAD))
    request = [b"", b"MDPC01", b"echo", *body]
    with _spawn([sys.executable, "-c", BARE_RELAY], announce=True) as (_, ep), \
            _spawn([sys.executable, "-c", BARE_WORKER, ep]):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = 5000
        sock.connect(ep)
        try:
            wait_bare(sock, request)
            sync = _sync_p50(lambda: (sock.send_multipart(request), sock.recv_multipart()),
                             *counts)
            pipe = _pipelined(lambda: sock.send_multipart(request), sock.recv_multipart,
                              counts[0] * 10, counts[1])
        finally:
            sock.close(linger=0)
    return {"sync": sync, "pipe": pipe}


def _c_relay(counts: tuple[int, float]) -> dict[str, float]:
    """The compiled floor: the brokered call's frames through zmq_proxy and an echo."""
    body = codec.encode(codec.Envelope("call", method="echo", payload=PAYLOAD))
    request = [b"", b"MDPC01", b"echo", *body]
    back = f"tcp://127.0.0.1:{_port()}"
    with _spawn([sys.executable, "-c", C_RELAY, back], announce=True) as (_, ep), \
            _spawn([sys.executable, "-c", C_RELAY_WORKER, back]):
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = 5000
        sock.connect(ep)
        try:
            wait_bare(sock, request)
            sync = _sync_p50(lambda: (sock.send_multipart(request), sock.recv_multipart()),
                             *counts)
            pipe = _pipelined(lambda: sock.send_multipart(request), sock.recv_multipart,
                              counts[0] * 10, counts[1])
        finally:
            sock.close(linger=0)
    return {"sync": sync, "pipe": pipe}


def _brokered(worker_python: str, counts: tuple[int, float],
              native: bool = False) -> dict[str, float] | None:
    if native and not os.access(NATIVE_BROKER, os.X_OK):
        return None  # not built: `make setup`
    head = [NATIVE_BROKER] if native else [sys.executable, "-m", "gateway.broker"]
    broker = [*head, "--bind", "tcp://127.0.0.1:*"]
    with _spawn(broker, announce=True) as (_, ep), _spawn([worker_python, "-c", WORKER, ep]):
        client = Client(ep, timeout=10.0)
        try:
            _wait_ready(client, "echo")
            sync = _sync_p50(lambda: client.call("echo", "echo", [PAYLOAD]), *counts)
            window: list[object] = []
            pipe = _pipelined(
                lambda: window.append(client.submit("echo", "echo", [PAYLOAD])),
                lambda: window.pop(0).result(),  # type: ignore[attr-defined]
                counts[0] * 10, counts[1])
        finally:
            client.close()
    return {"sync": sync, "pipe": pipe}


def _zerorpc(counts: tuple[int, float]) -> dict[str, float] | None:
    try:
        import zerorpc  # noqa: F401
    except ImportError:
        return None
    ep = f"tcp://127.0.0.1:{_port()}"
    code = """
import sys, time, statistics, json, zerorpc
ep, count, seconds, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
payload = json.loads(sys.argv[5])
c = zerorpc.Client(timeout=10); c.connect(ep)
stop = time.time() + 20
while True:
    try:
        c.echo(payload); break
    except Exception:
        if time.time() > stop: raise
lat = []
end = time.perf_counter() + seconds
for _ in range(count):
    t = time.perf_counter(); c.echo(payload); lat.append(time.perf_counter() - t)
    if t > end: break
done = 0; start = time.perf_counter(); end = start + seconds; n = count * 10
while done < n and time.perf_counter() < end:
    batch = [c.echo(payload, **{"async": True}) for _ in range(min(window, n - done))]
    for r in batch: r.get()
    done += len(batch)
print(statistics.median(lat) * 1e6, done / (time.perf_counter() - start))
"""
    import json
    with _spawn([sys.executable, "-c", ZERORPC_SERVER, ep]):  # zerorpc cannot bind port *
        res = subprocess.run([sys.executable, "-c", code, ep, str(counts[0]), str(counts[1]),
                              str(WINDOW), json.dumps(PAYLOAD)], capture_output=True,
                             timeout=120, env=dict(os.environ, PYTHONPATH=REPO))
    if res.returncode != 0:
        return None
    p50, pipe = res.stdout.split()
    return {"sync": float(p50), "pipe": float(pipe)}


def run(smoke: bool) -> list[Table]:
    """Measure every path over interleaved rounds; return latency and throughput tables."""
    counts = (50, 0.3) if smoke else (2000, 3.0)
    rounds = 1 if smoke else 3
    paths: dict[str, Callable[[], dict[str, float] | None]] = {
        "raw": lambda: _raw(counts),
        "bare": lambda: _bare(counts),
        "c-relay": lambda: _c_relay(counts),
        "py3->py3": lambda: _brokered(sys.executable, counts),
        "py3->py2": lambda: _brokered(PY2, counts) if os.path.exists(PY2) else None,
        "native py3->py3": lambda: _brokered(sys.executable, counts, native=True),
        "native py3->py2":
            lambda: _brokered(PY2, counts, native=True) if os.path.exists(PY2) else None,
        "zerorpc": lambda: None if smoke else _zerorpc(counts),
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    failures: list[str] = []
    for _ in range(rounds):
        for name, fn in paths.items():
            try:
                got = fn()
            except (ProtocolError, RuntimeError, zmq.ZMQError) as exc:
                failures.append(f"{name}: a round failed ({type(exc).__name__}: {exc})")
                continue
            if got is not None:
                samples[name].append(got)
    med = {name: {k: statistics.median(s[k] for s in vals) for k in vals[0]}
           for name, vals in samples.items() if vals}
    lat = Table("rpc: sync latency p50 (same payload)", "µs", "raw REQ/REP",
                higher_is_better=False)
    lat.add("raw REQ/REP", med["raw"]["sync"])
    thr = Table(f"rpc: pipelined throughput ({WINDOW} in flight)", "calls/s",
                "raw DEALER/ROUTER")
    thr.add("raw DEALER/ROUTER", med["raw"]["pipe"])
    if "bare" in med:
        lat.add("bare MDP relay (floor)", med["bare"]["sync"])
        thr.add("bare MDP relay (floor)", med["bare"]["pipe"])
    if "c-relay" in med:
        lat.add("compiled relay, zmq_proxy (floor)", med["c-relay"]["sync"])
        thr.add("compiled relay, zmq_proxy (floor)", med["c-relay"]["pipe"])
    for name in ("py3->py3", "py3->py2"):
        if name in med:
            lat.add(f"brokered {name}", med[name]["sync"], target="<= 2.5x")
            thr.add(f"brokered {name}", med[name]["pipe"], target=">= 0.25x")
    for name in ("native py3->py3", "native py3->py2"):
        if name in med:
            lat.add(f"brokered {name} (compiled broker)", med[name]["sync"], target="<= 2.5x")
            thr.add(f"brokered {name} (compiled broker)", med[name]["pipe"], target=">= 0.25x")
    if "c-relay" in med and "native py3->py3" in med:
        floor, ours = med["c-relay"], med["native py3->py3"]
        lat.notes.append(f"compiled broker py3->py3 p50 = {ours['sync'] / floor['sync']:.2f}x "
                         "the compiled relay's")
        thr.notes.append(f"compiled broker py3->py3 = {ours['pipe'] / floor['pipe']:.2f}x the "
                         "compiled relay's calls/s")
    if not any(name.startswith("native") for name in med):
        thr.notes.append("compiled broker: not measured (build/gateway-broker is not built; "
                         "run `make setup`)")
    if "bare" in med and "py3->py3" in med:
        floor, ours = med["bare"], med["py3->py3"]
        lat.notes.append(f"brokered py3->py3 p50 = {ours['sync'] / floor['sync']:.2f}x the "
                         "bare relay's; the bare relay itself is "
                         f"{floor['sync'] / med['raw']['sync']:.2f}x raw (target <= 2.5x)")
        thr.notes.append(f"brokered py3->py3 = {ours['pipe'] / floor['pipe']:.2f}x the bare "
                         "relay's calls/s; the bare relay itself is "
                         f"{floor['pipe'] / med['raw']['pipe']:.3f}x raw (target >= 0.25x)")
    if "zerorpc" in med:
        lat.add("zerorpc 0.6.3", med["zerorpc"]["sync"])
        thr.add("zerorpc 0.6.3", med["zerorpc"]["pipe"])
        ours, theirs = med["py3->py3"], med["zerorpc"]
        thr.notes.append(f"sync calls/s vs zerorpc: {theirs['sync'] / ours['sync']:.2f}x "
                         "(target >= 3x)")
        thr.notes.append(f"pipelined calls/s vs zerorpc: {ours['pipe'] / theirs['pipe']:.2f}x "
                         "(target >= 5x)")
        if "bare" in med:
            bare = med["bare"]
            thr.notes.append(f"the bare relay vs zerorpc: sync {theirs['sync'] / bare['sync']:.2f}x"
                             f", pipelined {bare['pipe'] / theirs['pipe']:.2f}x")
    else:
        thr.notes.append("zerorpc: not measured (smoke run, or not installed)")
    thr.notes.extend(failures)
    lat.notes.append("brokered = client -> broker -> worker -> broker -> client, "
                     "envelope encoded and decoded at both ends")
    floor = ("bare MDP relay = the brokered call's RFC 7 frames relayed by a pyzmq ROUTER "
             "to a pyzmq DEALER echo, with no logic at all: the least any MDP broker, client "
             "and worker written with pyzmq can cost on this machine")
    compiled = ("compiled relay = the same frames through libzmq's zmq_proxy (C) from a "
                "ROUTER to a DEALER and back from a pyzmq echo: the floor of a compiled "
                "broker with Python clients and workers")
    for table in (lat, thr):
        table.notes.extend([floor, compiled])
    return [lat, thr]
