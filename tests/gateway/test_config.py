"""gateway.config: the TOML schema, its defaults, and errors that name the offending key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.config import DEFAULT_TOML, from_dict, parse, parse_listen
from gateway.errors import ConfigError

SERVICES = """
[services.highlight]
runtime = "py2"
module = "py2_services.highlight:TABLE"
replicas = 2

[services.legacy]
runtime = "py3"
app = "py3_services.legacy:app"

[services.thumbs]
runtime = "command"
command = "python3 -m thumbs --fd {fd}"
listen = "127.0.0.1:9100"
ready = "http:http://127.0.0.1:9100/health"
queues = ["thumbnails"]
env = { LEVEL = "debug" }

[[routes]]
prefix = "/api"
backend = "rpc"

[[routes]]
prefix = "/"
backend = "wsgi"
service = "legacy"

[[routes]]
prefix = "/thumbs"
backend = "http"
target = "http://127.0.0.1:9100"
service = "thumbs"
"""


def test_embedded_default_is_front_and_broker_on_loopback():
    cfg = parse(DEFAULT_TOML, base_dir="/srv/gw")
    assert cfg.gateway.listen == "127.0.0.1:8080"
    assert cfg.gateway.run_dir == "/srv/gw/var/run"
    assert cfg.broker.endpoint == "ipc:///srv/gw/var/run/broker.ipc"
    assert cfg.runtimes.py2 == "/srv/gw/.venv2/bin/python"
    assert cfg.services == () and cfg.routes == ()
    assert not cfg.wants_private_redis
    assert cfg.control_socket == "/srv/gw/var/run/arbiter.sock"


def test_services_routes_and_derived_values():
    cfg = parse(SERVICES, base_dir="/srv/gw")
    hl = cfg.service("highlight")
    assert (hl.runtime, hl.kind, hl.replicas, hl.ready) == ("py2", "rpc", 2, "broker")
    assert cfg.service("legacy").kind == "wsgi"
    thumbs = cfg.service("thumbs")
    assert thumbs.command == ("python3", "-m", "thumbs", "--fd", "{fd}")
    assert thumbs.ready.startswith("http:") and thumbs.env == {"LEVEL": "debug"}
    assert thumbs.cwd == "/srv/gw"
    assert cfg.wants_private_redis
    assert cfg.redis_url == "unix:///srv/gw/var/run/redis.sock"
    assert [r.prefix for r in cfg.routes] == ["/api", "/", "/thumbs"]


def test_to_dict_round_trips():
    cfg = parse(SERVICES + '\n[http]\ntrusted_proxies = 1\n', base_dir="/srv/gw")
    assert from_dict(cfg.to_dict(), base_dir="/elsewhere") == cfg
    assert from_dict(cfg.to_dict()).base_dir == "/srv/gw"


@pytest.mark.parametrize("text, message", [
    ("[services.highlight]\nmodule = 'a:B'\nreplicas = 0",
     "services.highlight.replicas: must be >= 1"),
    ("[gateway]\nworkers = 0", "gateway.workers: must be >= 1"),
    ("[redis]\nappendfsync = 'sometimes'",
     "redis.appendfsync: must be one of everysec, always, no"),
    ("[redis]\nappendonly = 'yes'", "redis.appendonly: must be true or false"),
    ("[gateway]\nworkers = 'two'", "gateway.workers: must be an integer"),
    ("[gateway]\nlisten = 'nowhere'", "gateway.listen: expected HOST:PORT"),
    ("[gateway]\nlog_format = 'xml'", "gateway.log_format: must be one of text, json"),
    ("[gateway]\nlisen = '1'", "gateway.lisen: unknown key"),
    ("[bogus]\nx = 1", "bogus: unknown key"),
    ("[broker]\nendpoint = 'tcp://0.0.0.0:5555'",
     "broker.endpoint: tcp endpoints must be loopback"),
    ("[broker]\nendpoint = 'udp://x'", "broker.endpoint: expected ipc://PATH"),
    ("[broker]\nendpoint = 'tcp://127.0.0.1:5555'",
     "broker.endpoint: a tcp:// endpoint has no CURVE authentication"),
    ("[broker]\nevents_sub = 'tcp://[::1]:5556'",
     "broker.events_sub: a tcp:// endpoint has no CURVE authentication"),
    ("[broker]\nallow_insecure_tcp = true\nendpoint = 'tcp://0.0.0.0:5555'",
     "broker.endpoint: tcp endpoints must be loopback"),
    ("[services.x]\nruntime = 'py4'", "services.x.runtime: must be one of py2, py3, command"),
    ("[services.x]\nruntime = 'command'", "services.x.command: required"),
    ("[services.x]\nruntime = 'py3'", "services.x.module: give exactly one of module or app"),
    ("[services.x]\nmodule = 'nocolon'", "services.x.module: expected 'package.module:NAME'"),
    ("[services.x]\nmodule = 'a:B'\nready = 'soon'", "services.x.ready: must be broker"),
    ("[services.x]\nmodule = 'a:B'\nenv = { A = 1 }", "services.x.env.A: must be a string"),
    ("[services.broker]\nmodule = 'a:B'", "services.broker: 'broker' is reserved"),
    ("[services.comparer]\nmodule = 'a:B'", "services.comparer: 'comparer' is reserved"),
    ("[services.x]\nmodule = 'a:B'\nqueues = 'q'", "services.x.queues: must be a list of strings"),
    ("[[routes]]\nprefix = 'api'\nbackend = 'rpc'", "routes[0].prefix: must start with '/'"),
    ("[[routes]]\nprefix = '/a'\nbackend = 'ftp'", "routes[0].backend: must be one of"),
    ("[[routes]]\nprefix = '/a'\nbackend = 'wsgi'", "routes[0].service: required"),
    ("[[routes]]\nprefix = '/a'\nbackend = 'http'\ntarget = 'x'",
     "routes[0].target: expected an http"),
    ("[[routes]]\nprefix = '/a'\nbackend = 'rpc'\n[[routes]]\nprefix = '/a'\nbackend = 'rpc'",
     "routes[1].prefix: duplicate prefix"),
    ("[services.x]\nmodule = 'a:B'\n[[routes]]\nprefix = '/a'\nbackend = 'wsgi'\nservice = 'x'",
     "routes[0].backend: service 'x' is a rpc service, not wsgi"),
    ("[gateway\n", "invalid TOML"),
])
def test_errors_name_the_offending_key(text, message):
    with pytest.raises(ConfigError) as info:
        parse(text, base_dir="/srv")
    assert message in str(info.value)


def test_parse_listen():
    assert parse_listen("127.0.0.1:80", "x") == ("127.0.0.1", 80)
    assert parse_listen("[::1]:8080", "x") == ("::1", 8080)
    assert parse_listen("unix:/run/gw.sock", "x") == "/run/gw.sock"
    with pytest.raises(ConfigError, match="host must be an IP address"):
        parse_listen("example.com:80", "gateway.listen")
    for port in ("\uff18\uff10", "\u0668\u0660", "\u00b2"):  # fullwidth, Arabic-Indic, superscript
        with pytest.raises(ConfigError, match="expected HOST:PORT"):
            parse_listen("127.0.0.1:" + port, "gateway.listen")


@pytest.mark.parametrize("data", [[], "gateway", 3, None])
def test_a_config_that_is_not_a_table_is_a_config_error_naming_the_source(data):
    with pytest.raises(ConfigError, match=r"^/etc/gw\.json: the config must be a table"):
        from_dict(data, base_dir="/srv", source="/etc/gw.json")


def test_a_route_idle_timeout_reaches_the_front_and_a_bad_one_is_named() -> None:
    from gateway.commands.frontcfg import http_config

    routes = """
[[routes]]
prefix = "/a"
backend = "wsgi"
service = "legacy"
timeout_ms = 2000
idle_timeout_ms = 1500

[[routes]]
prefix = "/b"
backend = "wsgi"
service = "legacy"
"""
    cfg = parse(routes)
    # One Route type: the parsed route is the front's, in seconds.
    assert [r.idle_timeout for r in cfg.routes] == [1.5, 60.0]
    assert http_config(cfg).routes == cfg.routes
    front = {r.prefix: r for r in http_config(cfg).routes}
    assert (front["/a"].timeout, front["/a"].idle_timeout) == (2.0, 1.5)
    assert front["/b"].idle_timeout == 60.0
    with pytest.raises(ConfigError, match=r"routes\[0\]\.idle_timeout_ms"):
        parse(routes.replace("idle_timeout_ms = 1500", "idle_timeout_ms = 0"))


def test_loopback_tcp_broker_is_an_explicit_opt_in():
    cfg = parse("[broker]\nallow_insecure_tcp = true\nendpoint = 'tcp://127.0.0.1:5555'\n",
                base_dir="/srv/gw")
    assert cfg.broker.endpoint == "tcp://127.0.0.1:5555" and cfg.broker.allow_insecure_tcp
    assert cfg.broker.tcp_endpoints() == ["tcp://127.0.0.1:5555"]
    assert from_dict(cfg.to_dict()) == cfg
    assert parse(DEFAULT_TOML, base_dir="/srv/gw").broker.tcp_endpoints() == []


@pytest.mark.parametrize("hosts, message", [
    ("example.com", "must be a list"),
    (["example.com:8080"], "'example.com:8080' is not a host name"),
    (["a.*.com"], "'a.*.com' is not a host name"),
    ([""], "must be a list of host names"),
])
def test_allowed_hosts_are_checked(hosts, message):
    from gateway.http.config import GatewayHttpConfig
    with pytest.raises(ConfigError, match=message):
        GatewayHttpConfig.from_dict({"allowed_hosts": hosts})
    ok = GatewayHttpConfig.from_dict({"allowed_hosts": ["Example.com", "*.example.com",
                                                        "[::1]", "127.0.0.1"]})
    assert ok.allowed_hosts == ("example.com", "*.example.com", "[::1]", "127.0.0.1")


@pytest.mark.parametrize("host, ok", [
    ("example.com", True), ("EXAMPLE.com:8080", True), ("example.com.", True),
    ("a.example.com", True), ("a.b.example.com:1", True), ("evil.com", False),
    ("example.com.evil.com", False), ("notexample.com", False), (".example.com", False),
    ("", False), ("[::1]:8080", True), ("[::2]", False), ("127.0.0.1:80", True),
])
def test_host_allow_list_matching(host, ok):
    from gateway.http.app import host_allowed
    assert host_allowed(host, ("example.com", "*.example.com", "[::1]", "127.0.0.1")) is ok


def test_named_runtimes_parse_round_trip_and_are_checked():
    cfg = parse('[runtimes]\nlegacy = "venvs/legacy/bin/python"\nsys = "python3.11"\n'
                '[services.a]\nruntime = "legacy"\nmodule = "a:T"\nuntyped = true\n',
                base_dir="/srv/gw")
    assert cfg.runtimes.named == {"legacy": "/srv/gw/venvs/legacy/bin/python",
                                  "sys": "python3.11"}
    assert cfg.runtimes.interpreter("legacy", "/x") == "/srv/gw/venvs/legacy/bin/python"
    assert cfg.runtimes.interpreter("py3", "/own/python") == "/own/python"
    assert cfg.service("a").untyped
    assert from_dict(cfg.to_dict()) == cfg
    for text, message in (
        ('[services.a]\nruntime = "nope"\nmodule = "a:T"', "services.a.runtime: must be one of"),
        ('[runtimes]\ncommand = "/usr/bin/python3"', "runtimes.command: runtime names"),
        ('[runtimes]\nx = ""', "runtimes.x: must be the path of a Python interpreter"),
        ('[services.a]\napp = "a:app"\nuntyped = true', "services.a.untyped: only an rpc"),
        ('[gateway]\nready_timeout_s = 0', "gateway.ready_timeout_s: must be >= 0.1"),
    ):
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            parse(text)


LAYERED = """\
[[routes]]
prefix = "/a"
backend = "http"
target = "http://127.0.0.1:9"
[migrations.a]
route = "/a"
py3 = "http://127.0.0.1:8"
[metrics]
enabled = true
"""


def test_parsing_a_config_imports_no_front_store_or_metrics():
    # The config layer sits below them (.importlinter): parsing must not pull in SQLite,
    # the migration stores or the HTTP front, whatever the config holds.
    code = ("import sys\nfrom gateway.config import parse\n"
            f"cfg = parse({LAYERED!r})\n"
            "assert cfg.migration_settings.migrations[0].route == '/a'\n"
            "print(sorted(m for m in sys.modules if m.startswith(("
            "'gateway.http', 'gateway.migration', 'gateway.metrics', 'sqlite3', 'redis'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"
