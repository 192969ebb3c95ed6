"""The ``gateway`` command: check, export, and errors when no arbiter runs."""

from __future__ import annotations

import os
import subprocess
import sys

from gateway import cli
from gateway.commands.reload import render_reload
from tests.support.procs import REPO

GOOD = """
[gateway]
run_dir = "{run}"
[runtimes]
py2 = "{py}"
[services.hl]
runtime = "py2"
module = "py2_services.highlight:TABLE"
[[routes]]
prefix = "/api"
backend = "rpc"
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(text.format(run=tmp_path / "run", py=sys.executable))
    return str(path)


def test_check_accepts_a_good_config(tmp_path, capsys):
    assert cli.main(["-c", write(tmp_path, GOOD), "check"]) == 0
    assert "ok:" in capsys.readouterr().out


def test_check_names_the_bad_key_and_exits_1(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace('runtime = "py2"', 'runtime = "py2"\nreplicas = 0'))
    assert cli.main(["-c", path, "check"]) == 1
    assert "services.hl.replicas: must be >= 1" in capsys.readouterr().err


def test_check_refuses_a_missing_py2_interpreter(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("{py}", "/nonexistent/python2.7"))
    assert cli.main(["-c", path, "check"]) == 1
    assert "runtimes.py2: /nonexistent/python2.7 does not exist" in capsys.readouterr().err


def test_check_validates_contracts(tmp_path, capsys):
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "bad.json").write_text('{"service": "bad", "methods": 12}')
    path = write(tmp_path, GOOD + '\n[http]\ncontracts_dir = "contracts"\n')
    assert cli.main(["-c", path, "check"]) == 1
    err = capsys.readouterr().err
    assert "http.contracts_dir: " in err and "bad.json: contract.methods:" in err


def test_export_writes_files(tmp_path, capsys):
    out = tmp_path / "units"
    assert cli.main(["-c", write(tmp_path, GOOD), "export", "systemd", "-o", str(out)]) == 0
    names = set(os.listdir(out))
    assert {"gateway.target", "gateway-http.socket", "gateway-http.service",
            "gateway-broker.service", "gateway-hl@.service", "gateway.json"} <= names
    hl = (out / "gateway-hl@.service").read_text()
    assert "Restart=on-failure" in hl and "StartLimitBurst=5" in hl
    assert "After=gateway-broker.service" in hl and "KillMode=mixed" in hl
    sock = (out / "gateway-http.socket").read_text()
    assert "ListenStream=127.0.0.1:8080" in sock
    assert cli.main(["-c", write(tmp_path, GOOD), "export", "supervisord"]) == 0
    text = capsys.readouterr().out
    assert "[program:hl]" in text and "killasgroup=true" in text and "stopasgroup=true" in text


def test_check_of_a_json_config_that_is_not_an_object_exits_1(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text("[]", encoding="utf-8")
    assert cli.main(["-c", str(path), "check"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: the config must be a table" in err and "Traceback" not in err


def test_status_without_an_arbiter_says_so(tmp_path, capsys):
    assert cli.main(["-c", write(tmp_path, GOOD), "status"]) == 1
    assert "no arbiter at" in capsys.readouterr().err


def test_python_m_gateway_and_the_console_script(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gateway", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "export" in out.stdout and "reload" in out.stdout
    script = os.path.join(os.path.dirname(sys.executable), "gateway")
    # the console script when installed (`pip install -e .`), else the same entry point
    argv = [script] if os.path.exists(script) else [sys.executable, "-m", "gateway"]
    out = subprocess.run([*argv, "-c", write(tmp_path, GOOD), "check"], cwd=REPO,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "ok:" in out.stdout


def test_check_verifies_named_runtimes_imports_and_migrations(tmp_path, capsys):
    team = GOOD + '\n[services.team]\nruntime = "team"\nmodule = "teammod:TABLE"\n'
    path = write(tmp_path, team.replace('[runtimes]\n', '[runtimes]\nteam = "/nonexistent/py"\n'))
    assert cli.main(["-c", path, "check"]) == 1
    err = capsys.readouterr().err
    assert "runtimes.team: /nonexistent/py does not exist (needed by services.team)" in err

    path = write(tmp_path, team.replace('[runtimes]\n', f'[runtimes]\nteam = "{sys.executable}"\n'))
    assert cli.main(["-c", path, "check"]) == 1
    err = capsys.readouterr().err
    assert "services.team.module: 'teammod:TABLE' does not import in runtime team" in err
    assert "No module named 'teammod'" in err
    (tmp_path / "teammod.py").write_text("TABLE = {'ping': lambda: 'pong'}\n")
    assert cli.main(["-c", path, "check"]) == 0  # the config's dir is importable

    ghost = GOOD + '\n[migrations.hl]\nrpc = "hl/highlight"\npy3 = "ghost"\n'
    assert cli.main(["-c", write(tmp_path, ghost), "check"]) == 1
    assert "migrations.hl.py3: 'ghost' is not a [services.*] entry" in capsys.readouterr().err


def test_check_warns_about_an_rpc_service_without_a_contract(tmp_path, capsys):
    (tmp_path / "contracts").mkdir()
    path = write(tmp_path, GOOD + '\n[http]\ncontracts_dir = "contracts"\n')
    assert cli.main(["-c", path, "check"]) == 0
    err = capsys.readouterr().err
    assert "warning: services.hl: no contract in" in err and "untyped = true" in err
    path = write(tmp_path, GOOD.replace('runtime = "py2"', 'runtime = "py2"\nuntyped = true')
                 + '\n[http]\ncontracts_dir = "contracts"\n')
    assert cli.main(["-c", path, "check"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_options_work_after_the_subcommand(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert cli.main(["check", "-c", path]) == 0
    assert f"ok: {path}" in capsys.readouterr().out
    args = cli.parser().parse_args(["migrate", "report", "x", "--json", "-c", path])
    assert (args.json, args.config, args.name) == (True, path, "x")
    args = cli.parser().parse_args(["-c", path, "migrate", "--json", "status"])
    assert (args.json, args.config) == (True, path)


def test_a_closed_stdout_ends_quietly(tmp_path):
    """`gateway export systemd | head -1`: the reader is gone, no traceback."""
    r, w = os.pipe()
    os.close(r)  # no reader at all: the first write fails with EPIPE
    try:
        out = subprocess.run([sys.executable, "-m", "gateway", "-c", write(tmp_path, GOOD),
                              "export", "systemd"], cwd=REPO, stdout=w,
                             stderr=subprocess.PIPE, text=True, timeout=30)
    finally:
        os.close(w)
    assert out.returncode == 141, out.stderr
    assert out.stderr == "", out.stderr


def test_reload_report_names_every_kind_of_change():
    text = render_reload({"changed": ["web"], "restarted": ["web", "http"],
                              "added": ["new"], "removed": ["old"], "updated": [],
                              "reread": {"config": "/srv/gw.toml",
                                         "migrations": ["migrations.notes"]}})
    assert text.splitlines() == ["re-read: /srv/gw.toml (migrations.notes changed)",
                                 "added: new", "removed: old", "restarted: web, http"]
    assert render_reload({"changed": []}).splitlines()[-1] == "nothing else changed"
