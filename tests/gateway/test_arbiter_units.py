"""The arbiter's pure parts: policies, states, plan, logs, state file, sockets.

The FATAL guards are in test_fatal_guards.py.
"""

from __future__ import annotations

import io
import json
import os
import socket

import pytest

from gateway.arbiter.logs import LineBuffer, LogSink
from gateway.arbiter.plan import CODE_ROOT, build
from gateway.arbiter.policy import Backoff, StartLimit
from gateway.arbiter.ready import make_check
from gateway.arbiter.sockets import SocketPool, systemd_fds
from gateway.arbiter.statefile import ServiceStates, write_state
from gateway.arbiter.states import State, aggregate
from gateway.config import parse


def test_backoff_doubles_up_to_a_cap_and_resets():
    b = Backoff(initial=0.1, factor=2.0, maximum=0.5)
    assert [b.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    b.reset()
    assert b.next() == 0.1


def test_start_limit_is_a_sliding_window_like_systemd():
    limit = StartLimit(burst=5, interval=10.0)
    for t in (0.0, 1.0, 2.0, 3.0):
        limit.record(t)
    assert not limit.hit(3.5)
    limit.record(4.0)
    assert limit.hit(4.5)          # 5 starts within 10 s
    assert not limit.hit(10.5)     # the first start left the window


def test_aggregate_state():
    assert aggregate([State.READY, State.READY]) is State.READY
    assert aggregate([State.READY, State.BACKOFF]) is State.BACKOFF
    assert aggregate([State.READY, State.STARTING]) is State.READY
    assert aggregate([State.STARTING]) is State.STARTING
    assert aggregate([State.FATAL, State.READY]) is State.FATAL


def test_plan_orders_programs_and_builds_argv():
    cfg = parse("""
[runtimes]
py2 = "/opt/py2/bin/python"
[services.hl]
runtime = "py2"
module = "py2_services.highlight:TABLE"
replicas = 3
[services.legacy]
runtime = "py3"
app = "py3_services.legacy:app"
[services.cmd]
runtime = "command"
command = ["./serve", "--fd", "{fd}"]
queues = ["jobs"]
""", base_dir="/srv/gw")
    programs = build(cfg, python3="/usr/bin/python3")
    assert [p.name for p in programs] == ["broker", "http", "redis", "cmd", "hl", "legacy"]
    by = {p.name: p for p in programs}
    ep = cfg.broker.endpoint
    assert by["hl"].argv == ("/opt/py2/bin/python", "-m", "protocol", "worker", "--broker", ep,
                             "--service", "hl", "py2_services.highlight:TABLE")
    assert by["legacy"].argv[:4] == ("/usr/bin/python3", "-m", "protocol", "wsgi")
    assert by["hl"].replicas == 3 and by["hl"].needs == ("broker", "http", "redis")
    assert by["http"].needs == ("broker",) and by["http"].ready == "notify"
    assert by["redis"].argv[:3] == ("redis-server", "--port", "0")
    assert by["hl"].env["PYTHONPATH"].split(":") == [CODE_ROOT, "/srv/gw"]
    assert by["cmd"].interpreter == "" and by["cmd"].argv[-1] == "{fd}"


def test_signature_changes_with_what_needs_new_replicas():
    a = build(parse("[services.s]\nmodule = 'a:B'", "/x"), "/py3")[-1]
    b = build(parse("[services.s]\nmodule = 'a:B'\nruntime = 'py2'", "/x"), "/py3")[-1]
    c = build(parse("[services.s]\nmodule = 'a:B'\nstart_limit_burst = 9", "/x"), "/py3")[-1]
    assert a.signature != b.signature
    assert a.signature == c.signature


def test_front_program_changes_when_routes_change():
    base = "[[routes]]\nprefix = '/a'\nbackend = 'rpc'\n"
    one = build(parse(base, "/x"), "/py3")[1]
    two = build(parse(base.replace("/a", "/b"), "/x"), "/py3")[1]
    assert one.name == "http" and one.signature != two.signature


def test_line_buffer_and_json_logs():
    buf = LineBuffer()
    assert buf.feed(b"par") == []
    assert buf.feed(b"tial\nnext\r\nla") == ["partial", "next"]
    assert buf.flush() == ["la"]
    out = io.StringIO()
    LogSink(out, fmt="json").emit("web.0", 42, "hello \u00e9")
    doc = json.loads(out.getvalue())
    assert (doc["proc"], doc["pid"], doc["line"]) == ("web.0", 42, "hello \u00e9")
    out = io.StringIO()
    LogSink(out, fmt="text", color=True).emit("web.0", 42, "hi")
    assert out.getvalue().startswith("\x1b[36m") and out.getvalue().endswith("|\x1b[0m hi\n")


def test_state_file_round_trip(tmp_path):
    path = str(tmp_path / "state.json")
    states = ServiceStates(path)
    assert states.services() == {} and not states.fatal("x")
    write_state(path, {"x": {"state": "FATAL"}, "y": {"state": "READY"}}, arbiter_pid=1)
    assert states.fatal("x") and not states.fatal("y") and states.state("z") is None
    write_state(path, {"x": {"state": "READY"}}, arbiter_pid=1)
    assert not states.fatal("x")


def test_socket_pool_binds_once_and_takes_systemd_fds():
    assert systemd_fds({"LISTEN_FDS": "2", "LISTEN_PID": "7"}, 7) == [3, 4]
    assert systemd_fds({"LISTEN_FDS": "2", "LISTEN_PID": "8"}, 7) == []
    assert systemd_fds({}, 7) == []
    inherited = socket.socket()
    inherited.bind(("127.0.0.1", 0))
    inherited.listen()
    port = inherited.getsockname()[1]
    pool = SocketPool([os.dup(inherited.fileno())])
    try:
        got = pool.get(f"127.0.0.1:{port}")
        assert got.getsockname() == inherited.getsockname() and got.get_inheritable()
        fresh = pool.get("127.0.0.1:0")
        assert pool.get("127.0.0.1:0") is fresh
    finally:
        pool.close()
        inherited.close()


def test_make_check_kinds():
    assert make_check("none").probe(1)
    assert make_check("http:http://127.0.0.1:1/").kind == "http"
    assert not make_check("tcp:127.0.0.1:1").probe(1)
    assert make_check("broker", broker="ipc:///x", service="s").kind == "broker"


def test_control_channel_round_trip_and_errors(tmp_path):
    import threading

    import pytest

    from gateway.arbiter import control

    path = str(tmp_path / "arbiter.sock")
    server = control.listen(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"

    def serve() -> None:
        # Every wait is bounded: a client that never comes ends the thread in 5 s.
        server.settimeout(5)
        for _ in range(2):
            sock, _ = server.accept()
            sock.settimeout(5)
            conn = control.Connection(sock)
            request = None
            while request is None:
                request = conn.read_request()
            if request["cmd"] == "status":
                conn.reply(True, {"echo": request})
            else:
                conn.reply(False, f"unknown command {request['cmd']!r}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert control.call(path, {"cmd": "status"}, timeout=5) == {"echo": {"cmd": "status"}}
        with pytest.raises(control.ControlError, match="unknown command 'nope'"):
            control.call(path, {"cmd": "nope"}, timeout=5)
    finally:
        thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(control.ControlError, match="already listens"):
        control.listen(path)
    server.close()
    with pytest.raises(control.ControlError, match="no arbiter at"):
        control.call(str(tmp_path / "missing.sock"), {"cmd": "status"}, timeout=1)


@pytest.mark.parametrize("table, expect", [
    ("", ("--appendonly", "yes", "--appendfsync", "everysec")),
    ("[redis]\nappendfsync = \"always\"\n", ("--appendonly", "yes", "--appendfsync", "always")),
    ("[redis]\nappendonly = false\n", ("--appendonly", "no")),
])
def test_private_redis_persists_with_aof_by_default(table, expect):
    cfg = parse(table + "[services.cmd]\nruntime = \"command\"\ncommand = [\"x\"]\n"
                "queues = [\"jobs\"]\n", base_dir="/srv/gw")
    argv = next(p for p in build(cfg, python3="/usr/bin/python3") if p.name == "redis").argv
    joined = " ".join(argv)
    assert " ".join(expect) in joined and "--save " in joined
    assert ("--appendfilename" in argv) == (expect[1] == "yes")


def test_named_runtimes_own_pythonpath_and_the_gateways_own_interpreter():
    cfg = parse("""
[runtimes]
py3 = "/srv/team/py3venv/bin/python"
legacy = "/srv/legacy/venv/bin/python"
[broker]
implementation = "python"
[services.old]
runtime = "legacy"
module = "oldsvc:TABLE"
env = { PYTHONPATH = "lib:/opt/shared" }
[services.new]
runtime = "py3"
app = "newsvc:app"
ready_timeout_s = 5
""", base_dir="/srv/gw")
    by = {p.name: p for p in build(cfg, python3="/usr/bin/python3")}
    # The broker and the front never run on a service runtime.
    assert by["broker"].argv[0] == "/usr/bin/python3"
    assert by["http"].argv[0] == "/usr/bin/python3" and by["http"].interpreter == "/usr/bin/python3"
    assert by["old"].argv[:4] == ("/srv/legacy/venv/bin/python", "-m", "protocol", "worker")
    assert by["new"].argv[0] == "/srv/team/py3venv/bin/python"
    # The service's PYTHONPATH comes first; the gateway's entries are still there.
    assert by["old"].env["PYTHONPATH"].split(":") == ["/srv/gw/lib", "/opt/shared", CODE_ROOT,
                                                      "/srv/gw"]
    assert by["new"].env["PYTHONPATH"].split(":") == [CODE_ROOT, "/srv/gw"]
    assert by["new"].ready_timeout == 5.0 and by["old"].ready_timeout == 60.0


def test_a_migration_change_rolls_the_front():
    base = """
[[routes]]
prefix = "/app"
backend = "wsgi"
service = "app"
[services.app]
app = "a:app"
[services.app3]
app = "b:app"
"""
    mig = '[migrations.app]\nroute = "/app"\npy3 = "app3"\nignore_pointers = [{}]\n'
    sigs = [{p.name: p.signature for p in build(parse(text, base_dir="/srv"), "/usr/bin/python3")}
            for text in (base, base + mig.format(""), base + mig.format('"/id"'))]
    assert sigs[0]["http"] != sigs[1]["http"] != sigs[2]["http"]
    assert sigs[0]["app"] == sigs[1]["app"] == sigs[2]["app"]
