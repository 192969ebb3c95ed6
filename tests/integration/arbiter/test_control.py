"""The CLI against a running arbiter: status (human, --json), reload, stop; systemd sockets;
the private redis-server; SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

from tests.integration.arbiter.conftest import fdhttp_service
from tests.support.procs import REPO, child_env, free_port, wait_until


def gateway(e, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "-c", e.path, *args], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=60)


def test_status_reload_and_stop_through_the_cli(estate):
    port = free_port()
    e = estate(fdhttp_service("web", port) + """
[services.worker]
runtime = "py2"
app = "tests.integration.arbiter.wsgiapp:app"
""")
    out = gateway(e, "status", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    progs = {p["name"]: p for p in doc["programs"]}
    assert progs["worker"]["version"].startswith("cpython-2.7")
    assert progs["http"]["version"].startswith("cpython-3.")
    assert doc["registrations"] == {"worker": "200"}
    assert all(r["pid"] and r["uptime_s"] is not None
               for p in doc["programs"] for r in p["replicas"])
    human = gateway(e, "status").stdout
    assert "worker" in human and "py2 cpython-2.7" in human and "READY" in human
    assert doc["arbiter"]["redis"] == "" and "redis -" in human  # no service uses queues

    with open(e.path, encoding="utf-8") as fh:
        text = fh.read()
    e.write(text[text.index("\n[services.web]"):].replace("replicas = 1", "replicas = 2"))
    out = gateway(e, "reload")
    assert out.returncode == 0 and "restarted: web" in out.stdout, out.stdout + out.stderr
    assert e.program("web")["generation"] == 1
    wait_until(lambda: len(e.program("web")["replicas"]) == 2, timeout=10,
               what="the old generation drained")

    out = gateway(e, "reload", "nosuch")
    assert out.returncode == 1 and "no service 'nosuch'" in out.stderr

    out = gateway(e, "stop")
    assert out.returncode == 0
    assert e.proc.wait(timeout=20) == 0


def test_sighup_reloads_and_a_bad_config_is_refused(estate):
    e = estate("""
[services.sleeper]
runtime = "command"
command = ["sleep", "60"]
""", front=False)
    pid = e.program("sleeper")["replicas"][0]["pid"]
    e.write('[services.sleeper]\nruntime = "command"\ncommand = ["sleep", "61"]\n')
    e.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: e.program("sleeper")["replicas"][0]["pid"] != pid
               and e.program("sleeper")["state"] == "READY", timeout=10, what="SIGHUP reload")
    e.write('[services.sleeper]\nruntime = "command"\nreplicas = 0\ncommand = ["sleep"]\n')
    out = gateway(e, "reload")
    assert out.returncode == 1 and "services.sleeper.replicas: must be >= 1" in out.stderr
    assert e.program("sleeper")["state"] == "READY"


def test_takes_its_http_socket_from_systemd_socket_activation(estate, procs):
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    svc = fdhttp_service("web", free_port())
    e = estate(svc, start=False)
    e.port = port  # the config's [gateway] listen names the inherited socket
    e.write(svc)
    fd = listener.fileno()
    # bash puts the socket at fd 3 and sets LISTEN_PID to its own pid, which exec keeps.
    argv = ["bash", "-c", f'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&{fd}',
            sys.executable, "-m", "gateway", "-c", e.path, "up", "--log-format", "json"]
    with open(e.log_path, "ab") as log:
        e.proc = procs.spawn(argv, stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,))
    listener.close()
    e.wait_ready()
    code, body, _ = e.get("/nope")
    assert code == 404 and b"no_route" in body
    with open(os.path.join(e.run_dir, "arbiter.pid"), encoding="ascii") as fh:
        assert int(fh.read()) == e.proc.pid


def test_private_redis_when_queues_are_configured(estate):
    e = estate("""
[services.consumer]
runtime = "command"
command = ["sleep", "60"]
queues = ["jobs"]
""")
    redis = e.program("redis")
    assert redis["state"] == "READY"
    path = os.path.join(e.run_dir, "redis.sock")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(path)
    s.sendall(b"PING\r\n")
    assert s.recv(16).startswith(b"+PONG")
    s.close()
    names = [p["name"] for p in e.status()["programs"]]
    assert names.index("redis") < names.index("consumer")
    # The URL a user points a producer or the bash consumer at, as the services get it.
    out = gateway(e, "status", "--json")
    assert json.loads(out.stdout)["arbiter"]["redis"] == "unix://" + path
    assert f"redis unix://{path}" in gateway(e, "status").stdout
