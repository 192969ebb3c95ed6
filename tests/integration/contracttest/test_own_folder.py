"""Contract tests on a team's own folder, outside the repo, as the README tells a user to run them.

A fresh folder holds a py2 RPC table, its py3 port and their contract with
examples (tests/integration/contracttest/folder.py). ``gateway init`` scaffolds
it; ``gateway contract test`` runs the same cases under the real 2.7 and 3.x
interpreters, in process and through a running broker, and must report the one
deliberate 2->3 difference (``"ß".upper()``) as a field diff while every other
case agrees. The same holds through the generated tox.ini's legs (tox builds their
virtualenvs with pip; a warm pip cache makes that about 20 s).
"""

import json
import os
import subprocess

import pytest

from tests.integration.contracttest.folder import FIXED_PORT, make_folder, write
from tests.support.broker import start_broker, wait_for_service
from tests.support.procs import REPO, child_env, free_port, python2, python3

pytestmark = pytest.mark.slow


def gateway(folder, *args, timeout=240):
    """Run ``gateway ARGS`` in ``folder`` as a user would: (exit status, stdout, stderr)."""
    env = child_env({"GATEWAY_PY2": python2(), "GATEWAY_PY3": python3()})
    done = subprocess.run([python3(), "-m", "gateway", *args], cwd=folder, env=env,
                          capture_output=True, timeout=timeout, check=False)
    return done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")


@pytest.fixture
def folder(workdir):
    """The team's folder, scaffolded by ``gateway init``."""
    path = make_folder(workdir)
    assert not path.startswith(REPO)
    status, out, err = gateway(path, "init")
    assert status == 0, out + err
    return path


def only_the_sharp_s(verdict):
    """Assert the verdict holds exactly the upper() difference; return the differing cases."""
    svc = verdict["services"]["textsvc"]
    assert svc["problems"] == {}
    assert svc["diffs"], "the ß difference was not found"
    for diff in svc["diffs"]:
        assert diff["case"].startswith("upper/gen/"), diff
        text = diff["params"]["text"]
        assert "\u00df" in text or "\ufb01" in text, diff
        assert [(d["path"], d["kind"]) for d in diff["differences"]] == [("result", "changed")]
        (d,) = diff["differences"]
        assert d["left"] == "".join(c.upper() if len(c.upper()) == 1 else c for c in text)
        assert d["right"] == text.upper()
    assert svc["cases"] == svc["same"] + len(svc["diffs"])
    assert svc["same"] >= 60  # every other case: examples and generated, all five methods
    return svc["diffs"]


def test_init_writes_config_and_tox_for_the_folder(folder):
    """init finds the contract, the table and its port; never overwrites without --force."""
    from gateway import config as gwconfig
    with open(os.path.join(folder, "gateway.toml"), encoding="utf-8") as fh:
        toml = fh.read()
    cfg = gwconfig.parse(toml, base_dir=folder, source="gateway.toml")
    services = {s.name: s for s in cfg.services}
    assert services["textsvc"].runtime == "py2"
    assert services["textsvc3"].runtime == "py3"
    with open(os.path.join(folder, "tox.ini"), encoding="utf-8") as fh:
        tox_ini = fh.read()
    assert "py2: textsvc=legacy.textsvc:TABLE" in tox_ini
    assert "py3: textsvc=port.textsvc:TABLE" in tox_ini
    assert "-r {toxinidir}/requirements-py2.txt" in tox_ini
    status, out, err = gateway(folder, "check")
    assert status == 0, out + err
    assert "2 services" in out

    write(os.path.join(folder, "tox.ini"), "# mine\n")
    status, out, _err = gateway(folder, "init")
    assert status == 1 and "kept" in out
    with open(os.path.join(folder, "tox.ini"), encoding="utf-8") as fh:
        assert fh.read() == "# mine\n"
    status, out, _err = gateway(folder, "init", "--force")
    assert status == 0
    with open(os.path.join(folder, "tox.ini"), encoding="utf-8") as fh:
        assert fh.read() == tox_ini


def test_generated_tox_ini_is_valid_for_tox(folder):
    """tox reads the generated file: both legs, their deps, the plugin's command line."""
    tox = os.path.join(os.path.dirname(python3()), "tox")
    done = subprocess.run([tox, "config", "-c", os.path.join(folder, "tox.ini"),
                           "-e", "py27,py3", "-k", "commands", "deps", "basepython"],
                          cwd=folder, capture_output=True, timeout=120, check=False,
                          env={key: value for key, value in child_env().items()
                               if not key.startswith("TOX_")})  # not the calling tox's
    out = done.stdout.decode("utf-8")
    assert done.returncode == 0, out + done.stderr.decode("utf-8")
    assert "[testenv:py27]" in out and "[testenv:py3]" in out
    assert "pytest==4.6.11" in out
    assert "protocol.contract_pytest" in out and "--contract-label py2" in out


def test_contract_run_finds_the_difference_and_nothing_else(folder):
    """Both interpreters, same cases; the ß difference is a field diff; the fix makes it pass."""
    status, out, err = gateway(folder, "contract", "test", "--json")
    assert status == 1, out + err
    verdict = json.loads(out)
    assert verdict["pythons"][0].startswith("2.7") and verdict["pythons"][1].startswith("3.")
    only_the_sharp_s(verdict)
    assert verdict["services"]["textsvc"]["skipped"] == {}
    with open(os.path.join(folder, "build", "parity.json"), encoding="utf-8") as fh:
        parity = json.load(fh)
    row = parity["services"]["textsvc"]
    assert row["parity"]["status"] == "different"
    assert row["py2"]["status"] == row["py3"]["status"] == "pass"

    status, text, _err = gateway(folder, "contract", "test", "--ingest")
    assert status == 1
    assert "py2: \"" in text and "FAIL: " in text

    write(os.path.join(folder, "port", "textsvc.py"), FIXED_PORT)
    status, text, err = gateway(folder, "contract", "test")
    assert status == 0, text + err
    assert "PASS: every case agrees" in text
    with open(os.path.join(folder, "build", "parity.json"), encoding="utf-8") as fh:
        assert json.load(fh)["services"]["textsvc"]["parity"]["status"] == "same"


def test_contract_run_through_tox(folder):
    """The generated tox.ini's legs (their own virtualenvs and requirements), then the verdict."""
    status, out, err = gateway(folder, "contract", "test", "--tox", "--json", timeout=600)
    assert status == 1, out + err
    only_the_sharp_s(json.loads(out))
    for leg, dep in (("py27", "six"), ("py3", "attrs")):
        assert os.path.isdir(os.path.join(folder, ".tox", leg))
        python = os.path.join(folder, ".tox", leg, "bin", "python")
        subprocess.run([python, "-c", f"import {dep}"], check=True, timeout=60)


def test_a_broken_example_fails_on_both_interpreters(folder):
    """An example whose expected result is wrong is a contract failure, named per leg."""
    path = os.path.join(folder, "contracts", "textsvc.json")
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    spec["methods"]["words"]["examples"][0]["result"] = ["b", "a"]
    write(path, json.dumps(spec))
    status, out, err = gateway(folder, "contract", "test", "--json", "--count", "0")
    assert status == 1, err
    problems = json.loads(out)["services"]["textsvc"]["problems"]
    assert sorted(problems) == ["py2", "py3"]
    assert problems["py2"] == ['words/example/0: expected ["b", "a"], got ["a", "b"]']


def test_a_leg_that_cannot_start_is_reported(folder):
    """A missing interpreter is exit status 2 with a message, not a traceback."""
    status, _out, err = gateway(folder, "contract", "test", "--py2", "/nonexistent/python")
    assert status == 2
    assert "no interpreter at /nonexistent/python" in err


def test_contract_run_through_a_broker(folder, procs):
    """The same cases sent to the py2 table and the py3 port on a running broker."""
    endpoint = start_broker(procs)
    lib = os.path.join(folder, ".contract", "lib")
    env = dict(child_env(), PYTHONPATH=os.pathsep.join((folder, lib)))
    for python, service, target in ((python2(), "textsvc", "legacy.textsvc:TABLE"),
                                    (python3(), "textsvc3", "port.textsvc:TABLE")):
        procs.spawn([python, "-m", "protocol.worker", "--broker", endpoint,
                     "--service", service, target], env=env, cwd=folder)
    for service in ("textsvc", "textsvc3"):
        wait_for_service(endpoint, service)
    status, out, err = gateway(folder, "contract", "test", "--json", "--broker", endpoint,
                               "--py2-service", "textsvc", "--py3-service", "textsvc3")
    assert status == 1, out + err
    verdict = json.loads(out)
    only_the_sharp_s(verdict)
    # A write is sent only as its written example, never with generated params.
    assert verdict["services"]["textsvc"]["skipped"] == {
        "note": "not idempotent: no generated calls to a broker"}


def test_unreachable_broker_is_a_typed_error_per_case(folder):
    """No broker: each case records a protocol error quickly instead of hanging."""
    status, out, err = gateway(folder, "contract", "test", "--json", "--count", "0",
                               "--broker", f"tcp://127.0.0.1:{free_port()}",
                               "--py2-service", "a", "--py3-service", "b",
                               "--call-timeout", "0.5")
    assert status == 1, out + err
    problems = json.loads(out)["services"]["textsvc"]["problems"]
    assert sorted(problems) == ["py2", "py3"]
    assert len(problems["py2"]) == 7  # one per example: no answer came
    assert all(": no answer: " in p for p in problems["py2"])
