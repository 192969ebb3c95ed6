"""The ``gateway`` command: check, export, and errors when no arbiter runs."""

from __future__ import annotations

import os
import subprocess
import sys

from gateway import cli
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
