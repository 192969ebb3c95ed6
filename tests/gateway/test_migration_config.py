"""Migration settings and the request-side pieces of the router, without processes."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from gateway.config import parse
from gateway.errors import ConfigError
from gateway.http.problems import Problem
from gateway.migration.background import ensure_token
from gateway.migration.config import parse_settings
from gateway.migration.route import CapturedBody, status_of
from gateway.migration.split import sticky_key
from protocol import errors as perrors

BASE = """
[[routes]]
prefix = "/api/notes"
backend = "wsgi"
service = "notes"
[[routes]]
prefix = "/rpc"
backend = "rpc"
[[routes]]
prefix = "/static"
backend = "static"
target = "/tmp"
[services.notes]
runtime = "py2"
app = "py2_services.notes:app"
[services.notes3]
runtime = "py3"
app = "py3_services.notes:app"
[services.hd3]
runtime = "py3"
module = "py3_services.htmldiff:TABLE"
"""


def test_a_migration_parses_with_its_defaults(tmp_path):
    cfg = parse(BASE + '[migrations.notes]\nroute = "/api/notes/"\npy3 = "notes3"\n',
                base_dir=str(tmp_path))
    settings = cfg.migration_settings
    m = settings.get("notes")
    assert (m.kind, m.target, m.py3, m.state, m.sample) == ("route", "/api/notes", "notes3",
                                                            "py2", 1.0)
    assert m.thresholds.min_samples == 50 and m.thresholds.max_diff_rate == 0.01
    assert settings.db == os.path.join(cfg.gateway.run_dir, "migrations.sqlite3")
    assert settings.token_file == os.path.join(cfg.gateway.run_dir, "admin.token")
    assert not settings.allow_remote_admin
    # the arbiter hands the config to its children as JSON: it must survive that
    again = parse_settings(cfg.to_dict()["migration"], cfg.to_dict()["migrations"],
                           cfg.gateway.run_dir, cfg.base_dir, cfg.state_file)
    assert again == settings


@pytest.mark.parametrize("table, message", [
    ('route = "/api/notes"', "migrations.m.py3: required"),
    ('py3 = "notes3"', "migrations.m.route: give exactly one"),
    ('route = "/api/notes"\nrpc = "a/b"\npy3 = "x"', "give exactly one"),
    ('route = "/nope"\npy3 = "notes3"', "no [[routes]] entry has prefix '/nope'"),
    ('route = "/static"\npy3 = "x"', "only wsgi and http routes migrate"),
    ('route = "/api/notes"\npy3 = "hd3"', "is not a wsgi service"),
    ('rpc = "htmldiff"\npy3 = "hd3"', "expected SERVICE/METHOD"),
    ('rpc = "htmldiff/diff"\npy3 = "notes3"', "is not an rpc service"),
    ('route = "/api/notes"\npy3 = "notes3"\nstate = "beta"', "migrations.m.state: must be one"),
    ('route = "/api/notes"\npy3 = "notes3"\nstate = "canary"', "migrations.m.percent"),
    ('route = "/api/notes"\npy3 = "notes3"\nsample = 2', "migrations.m.sample"),
    ('route = "/api/notes"\npy3 = "notes3"\nsticky = "ip"', "migrations.m.sticky"),
    ('route = "/api/notes"\npy3 = "notes3"\nignore_pointers = ["x"]', "not a JSON pointer"),
    ('route = "/api/notes"\npy3 = "notes3"\nshadow_concurrency = 0', "positive"),
    ('route = "/api/notes"\npy3 = "notes3"\nnoise = "yes"', "migrations.m.noise"),
    ('route = "/api/notes"\npy3 = "notes3"\ncolour = 1', "migrations.m.colour: unknown key"),
    ('service = "notes"\nrpc = "a/b"\npy3 = "x"', "give exactly one"),
    ('service = "tax"\npy3 = "tax"', "migrations.m.py3: the port must be another service"),
    ('service = "tax now"\npy3 = "tax3"', "migrations.m.service: a broker service name"),
    ('service = "tax"\npy3 = "mmi.tax"', "migrations.m.py3: a broker service name"),
    ('service = "notes"\npy3 = "hd3"', "'hd3' is a rpc service, 'notes' a wsgi one"),
])
def test_bad_migrations_name_the_offending_key(table, message):
    with pytest.raises(ConfigError) as info:
        parse(BASE + "[migrations.m]\n" + table + "\n")
    assert message in str(info.value)


def test_one_target_is_migrated_once_and_the_migration_table_is_checked():
    twice = ('[migrations.a]\nroute = "/api/notes"\npy3 = "notes3"\n'
             '[migrations.b]\nroute = "/api/notes"\npy3 = "notes3"\n')
    with pytest.raises(ConfigError, match=r"already migrated by migrations\.a"):
        parse(BASE + twice)
    with pytest.raises(ConfigError, match=r"migration\.port: unknown key"):
        parse(BASE + "[migration]\nport = 1\n")
    with pytest.raises(ConfigError, match="allow_remote_admin"):
        parse(BASE + '[migration]\nallow_remote_admin = "yes"\n')


def test_sticky_keys():
    cookie = {"HTTP_COOKIE": "a=1; gw_canary=abc", "REMOTE_ADDR": "127.0.0.1"}
    assert sticky_key("cookie", cookie) == ("c:abc", None)
    key, fresh = sticky_key("cookie", {"REMOTE_ADDR": "127.0.0.1"})
    assert fresh is not None and key == f"c:{fresh}" and len(fresh) == 16
    assert sticky_key("cookie:sid", {"HTTP_COOKIE": "sid=s1"}) == ("c:s1", None)
    # a named cookie the client lacks: the address, and no cookie is invented
    assert sticky_key("cookie:sid", {"REMOTE_ADDR": "::1"}) == ("a:::1", None)
    assert sticky_key("header:X-User", {"HTTP_X_USER": "u7"}) == ("h:u7", None)
    assert sticky_key("addr", {"REMOTE_ADDR": "10.0.0.1"}) == ("a:10.0.0.1", None)
    assert sticky_key("cookie", {"HTTP_COOKIE": "bad\x00cookie;;=", "REMOTE_ADDR": "x"})[1]


def test_the_admin_token_is_made_once_private_and_shared(tmp_path):
    path = str(tmp_path / "run" / "admin.token")
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda: tokens.append(ensure_token(path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(set(tokens)) == 1 and len(tokens[0]) >= 40
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_token(path) == tokens[0]
    assert sorted(os.listdir(tmp_path / "run")) == ["admin.token"]


def test_status_of_failures():
    assert status_of(Problem(413, "x")) == 413
    assert status_of(perrors.Timeout("slow")) == 504
    assert status_of(ConnectionAbortedError()) == 499
    assert status_of(RuntimeError()) == 500


def test_captured_body_keeps_the_first_bytes_and_reports_once():
    done: list[tuple[bytes, bool, object]] = []
    body = CapturedBody([b"abc", b"def", b"ghi"], 5, lambda d, t, f: done.append((d, t, f)))
    assert b"".join(body) == b"abcdefghi"
    body.close()
    assert done == [(b"abcde", True, None)]

    def failing():
        yield b"x"
        raise perrors.WorkerLost("gone")
    done.clear()
    body = CapturedBody(failing(), 10, lambda d, t, f: done.append((d, t, f)))
    with pytest.raises(perrors.WorkerLost):
        list(body)
    body.close()
    assert len(done) == 1 and isinstance(done[0][2], perrors.WorkerLost)

    done.clear()
    body = CapturedBody([b"never read"], 10, lambda d, t, f: done.append((d, t, f)))
    body.close()
    assert len(done) == 1 and isinstance(done[0][2], ConnectionAbortedError)


def test_only_the_gateway_marks_shadow_copies_and_pins_never_travel():
    from gateway.http.forwarding import Forwarding
    fwd = Forwarding(0, "gateway")
    environ = {"HTTP_X_SHADOW": "1", "HTTP_X_GATEWAY_TOKEN": "secret",
               "HTTP_X_GATEWAY_RUNTIME": "py3", "HTTP_ACCEPT": "*/*", "REMOTE_ADDR": "::1"}
    names = [n.lower() for n, _ in fwd.request_headers(environ, "rid")]
    assert "x-shadow" not in names and "x-gateway-token" not in names
    assert "x-gateway-runtime" not in names and "accept" in names
    copy = dict(environ, **{"gateway.shadow": True})
    assert ("X-Shadow", "1") in fwd.request_headers(copy, "rid.shadow")


def test_migrations_see_which_services_are_fatal_through_the_health_handed_in(tmp_path):
    from gateway.arbiter.statefile import ServiceStates, write_state
    from gateway.migration.lab import Migrations
    state_file = str(tmp_path / "state.json")
    cfg = parse(BASE + '[migrations.notes]\nroute = "/api/notes"\npy3 = "notes3"\n'
                       'state = "py3"\n', base_dir=str(tmp_path))
    settings = parse_settings(cfg.migration, cfg.migrations, str(tmp_path), str(tmp_path),
                              state_file)
    migrations = Migrations(settings, health=ServiceStates(state_file))  # as the front hands in
    write_state(state_file, {"notes": {"state": "FATAL"}, "notes3": {"state": "READY"}}, 1)
    try:
        assert migrations.fatal("notes")           # the engine answers 503 for this side
        assert not migrations.fatal("notes3")      # READY
        assert not migrations.fatal("")            # no supervised service
        assert migrations.choose(settings.get("notes"), {}, migrations.state("notes"))[0] == "py3"
    finally:
        migrations.close()


def test_migrate_without_a_running_gateway_says_so(tmp_path, capsys):
    from gateway.cli import main
    path = tmp_path / "gateway.toml"
    path.write_text(BASE.replace('target = "/tmp"', f'target = "{tmp_path}"') +
                    '[migrations.notes]\nroute = "/api/notes"\npy3 = "notes3"\n')
    for argv in (["migrate", "dashboard"], ["migrate", "status"]):
        assert main(["-c", str(path), *argv]) == 1
        err = capsys.readouterr().err
        assert "no admin token at" in err and "gateway up" in err


def test_reloading_the_port_restarts_evidence_only_in_shadow(tmp_path):
    from gateway.migration.evidence import restart_evidence
    from gateway.migration.store import MigrationStore
    cfg = parse(BASE + '[migrations.notes]\nroute = "/api/notes"\npy3 = "notes3"\n'
                '[migrations.diff]\nrpc = "htmldiff/diff"\npy3 = "hd3"\n',
                base_dir=str(tmp_path))
    os.makedirs(cfg.gateway.run_dir, exist_ok=True)
    clock = iter(range(100, 200))
    store = MigrationStore(cfg.migration_settings.db, clock=lambda: float(next(clock)))
    try:
        store.ensure("notes", "shadow")
        store.ensure("diff", "canary", 20)
        before = store.all()
        lines: list[str] = []
        restart_evidence(cfg, "notes3", lines.append)
        restart_evidence(cfg, "hd3", lines.append)
        restart_evidence(cfg, "notes", lines.append)  # the py2 side: no effect
        after = store.all()
        assert after["notes"].epoch_started > before["notes"].epoch_started
        assert after["notes"].updated_by == "gateway:reload"
        assert after["diff"] == before["diff"]  # canary keeps its evidence
        assert store.audit("notes")[0].reason == "notes3 reloaded: evidence restarts"
        assert lines == ["migration notes: notes3 reloaded, evidence restarts"]
    finally:
        store.close()


def test_a_service_migration_is_split_in_the_broker(tmp_path):
    cfg = parse(BASE + '[migrations.tax]\nservice = "tax"\npy3 = "tax.py3"\n',
                base_dir=str(tmp_path))
    m = cfg.migration_settings.get("tax")
    assert (m.kind, m.target, m.service, m.py3) == ("service", "tax", "tax", "tax.py3")
    assert m.to_json() == {"name": "tax", "kind": "service", "target": "tax", "py3": "tax.py3"}
    settings = cfg.migration_settings
    assert settings.splits_file == os.path.join(cfg.gateway.run_dir, "broker-splits")
    assert type(settings).from_dict(settings.to_dict()) == settings


def test_the_store_is_sqlite_by_default_and_redis_when_asked(tmp_path):
    from gateway.migration.redisstore import RedisStore
    from gateway.migration.store import MigrationStore
    from gateway.migration.stores import open_store
    body = BASE + '[migrations.notes]\nroute = "/api/notes"\npy3 = "notes3"\n'
    default = parse(body, base_dir=str(tmp_path)).migration_settings
    assert (default.store, default.redis_url) == ("sqlite", "")
    os.makedirs(os.path.dirname(default.db))
    store = open_store(default, str(tmp_path))
    assert isinstance(store, MigrationStore)
    store.close()

    shared = parse('[redis]\nurl = "redis://10.0.0.5:6379/2"\n[migration]\nstore = "redis"\n'
                   + body, base_dir=str(tmp_path)).migration_settings
    assert (shared.store, shared.redis_url, shared.redis_prefix) == (
        "redis", "redis://10.0.0.5:6379/2", "gw:mig:")
    own = parse('[redis]\nurl = "redis://10.0.0.5:6379/2"\n[migration]\nstore = "redis"\n'
                'redis_url = "unix:///run/redis.sock"\nredis_prefix = "shop:"\n' + body,
                base_dir=str(tmp_path)).migration_settings
    assert (own.redis_url, own.redis_prefix) == ("unix:///run/redis.sock", "shop:")
    store = open_store(own)  # connects lazily: nothing is asked of Redis yet
    assert isinstance(store, RedisStore) and store.prefix == "shop:"
    store.close()
    assert type(shared).from_dict(shared.to_dict()) == shared


@pytest.mark.parametrize("table, message", [
    ('store = "mysql"', 'migration.store: must be "sqlite" or "redis"'),
    ('store = "redis"', "migration.redis_url: store = \"redis\" needs a Redis that every"),
    ('store = "redis"\nredis_url = "http://x"', "migration.redis_url: expected redis://"),
    ('store = "redis"\nredis_url = "redis://h"\nredis_prefix = ""',
     "migration.redis_prefix: must be a non-empty"),
    ("redis_url = 5", "migration.redis_url: must be a string"),
])
def test_bad_store_settings_name_the_key(table, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse("[migration]\n" + table + "\n" + BASE)
