"""gateway.contracttest: comparing two runs, the parity table, and what init finds and writes."""

import json
import os
import re

from gateway import config as gwconfig
from gateway.contracttest import report as rep
from gateway.contracttest import scaffold, templates
from gateway.contracttest.cli import folder_config, ini_contracts
from gateway.migration.compare import Rules


def record(cid, result=None, error=None, params=None, problems=()):
    out = {"id": cid, "method": cid.split("/")[0], "source": "generated",
           "params": params if params is not None else {"text": cid}, "problems": list(problems)}
    if error:
        out.update(outcome="error", error={"code": "remote", "type": error, "message": "m"})
    else:
        out.update(outcome="result", result=result)
    return out


def run(label, python, cases, seed=0):
    return {"version": 1, "label": label, "python": python, "seed": seed, "count": 20,
            "contracts": {"svc": {"contract": "c.json", "impl": "x:T", "skipped": {},
                                  "cases": cases}}}


def test_interpreter_noise_is_not_a_difference():
    left = record("m/gen/0", {"b": 1.0, "a": "x", "raw": {"$bytes": "aGk="}})
    right = record("m/gen/0", {"a": "x", "b": 1, "raw": "hi"})
    assert rep.compare_case(left, right, Rules()) == []


def test_field_diffs_outcomes_and_params():
    diffs = rep.compare_case(record("m/gen/0", {"a": "ß"}), record("m/gen/0", {"a": "SS"}),
                             Rules())
    assert [(d.path, d.kind, d.left, d.right) for d in diffs] == [
        ("result/a", "changed", "ß", "SS")]
    (outcome,) = rep.compare_case(record("m/gen/1", 1), record("m/gen/1", error="TypeError"),
                                  Rules())
    assert outcome.path == "outcome" and outcome.right.startswith("error")
    (err,) = rep.compare_case(record("m/gen/2", error="KeyError"),
                              record("m/gen/2", error="LookupError"), Rules())
    assert err.path == "error/type"
    (params,) = rep.compare_case(record("m/gen/3", 1, params={"n": 1}),
                                 record("m/gen/3", 1, params={"n": 2}), Rules())
    assert params.path == "params/n"
    ignored = rep.compare_case(record("m/gen/0", {"at": 1}), record("m/gen/0", {"at": 2}),
                               Rules(ignore_pointers=("/at",)))
    assert ignored == []


def test_runs_compare_case_by_case_and_report():
    left = run("py2", "2.7.18", [record("m/gen/0", "A"), record("m/gen/1", "ß"),
                                 record("m/example/x", "z", problems=["expected y, got z"])])
    right = run("py3", "3.11.7", [record("m/gen/0", "A"), record("m/gen/1", "SS"),
                                  record("m/example/x", "z", problems=["expected y, got z"])])
    verdict = rep.compare_runs(left, right, Rules())
    svc = verdict.services["svc"]
    assert (svc.cases, svc.same, [d.case for d in svc.diffs]) == (3, 2, ["m/gen/1"])
    assert svc.counts == {"py2": {"passed": 2, "failed": 1, "skipped": 0},
                          "py3": {"passed": 2, "failed": 1, "skipped": 0}}
    assert not verdict.ok and verdict.differences == 1 and verdict.problems == 2
    text = rep.format_report(verdict)
    assert 'result  changed  py2: "ß"  py3: "SS"' in text
    assert "py2 broke the contract: m/example/x: expected y, got z" in text
    assert text.endswith("FAIL: 1 different cases, 2 contract failures")
    assert json.loads(json.dumps(rep.report_json(verdict)))["differences"] == 1


def test_different_seeds_are_noted():
    verdict = rep.compare_runs(run("py2", "2", [], seed=1), run("py3", "3", [], seed=2), Rules())
    assert not verdict.ok and "different seeds" in verdict.notes[0]


def test_parity_table_keeps_other_services_and_adds_the_verdict(workdir):
    path = os.path.join(workdir, "build", "parity.json")
    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"services": {"other": {"py2": {"status": "pass"}}}}, fh)
    verdict = rep.compare_runs(run("py2", "2.7.18", [record("m/gen/0", "ß")]),
                               run("py3", "3.11.7", [record("m/gen/0", "SS")]), Rules())
    rep.write_parity(path, verdict)
    with open(path, encoding="utf-8") as fh:
        table = json.load(fh)
    assert table["services"]["other"] == {"py2": {"status": "pass"}}
    row = table["services"]["svc"]
    assert row["py2"]["status"] == "pass" and row["py3"]["passed"] == 1
    assert row["parity"]["status"] == "different" and row["parity"]["different"] == 1
    assert table["implementations"]["py2"]["python"] == "2.7.18"


def test_unusable_results_are_named(workdir):
    path = os.path.join(workdir, "py2.json")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{}")
    try:
        rep.load_results(path)
    except rep.ResultsError as exc:
        assert path in str(exc)
    else:
        raise AssertionError("no ResultsError")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def test_scan_pairs_tables_by_name_and_tells_py2_from_syntax(workdir):
    write(os.path.join(workdir, "contracts", "calc.json"),
          json.dumps({"service": "calc", "version": 1, "methods": {}}))
    write(os.path.join(workdir, "contracts", "notes.txt"), "not a contract")
    write(os.path.join(workdir, "src", "calc.py"), 'print "old"\nTABLE = {}\n')
    write(os.path.join(workdir, "py3", "calc.py"), "TABLE: dict = {}\n")
    write(os.path.join(workdir, "web", "site.py"), "app = None\n")  # valid on both: unknown
    write(os.path.join(workdir, "requirements-legacy.txt"), "flask==1.1.4\n")
    write(os.path.join(workdir, "requirements.txt"), "pyyaml\n")
    found = scaffold.scan(workdir)
    assert found.contracts == {"calc": os.path.join("contracts", "calc.json")}
    assert found.tables == {"py2": {"calc": "src.calc:TABLE"}, "py3": {"calc": "py3.calc:TABLE"}}
    assert found.apps == {}
    assert found.requirements == {"py2": ["requirements-legacy.txt", "requirements.txt"],
                                  "py3": ["requirements.txt"]}
    assert templates.pairs(found) == [("calc", "src.calc:TABLE", "py3.calc:TABLE")]


def test_templates_leave_placeholders_for_what_was_not_found(workdir):
    found = scaffold.Found(contracts={"calc": "contracts/calc.json"},
                           tables={"py2": {"calc": "old.calc:TABLE"}})
    toml = templates.gateway_toml(found)
    assert '[services.calc]\nruntime = "py2"\nmodule = "old.calc:TABLE"' in toml
    assert "# [services.calc3]" in toml
    tox = templates.tox_ini(found)
    assert "    py2: calc=old.calc:TABLE" in tox and "#   py3: calc=package.module:TABLE" in tox
    write(os.path.join(workdir, "tox.ini"), tox)
    assert ini_contracts(workdir) == ["contracts/calc.json"]
    empty = templates.gateway_toml(scaffold.Found())
    assert "No contracts found" in empty


def test_an_app_and_its_port_get_distinct_names_a_route_and_a_migration(workdir):
    write(os.path.join(workdir, "legacy", "web.py"), "def app(environ, start_response):\n"
          "    return []\n")
    write(os.path.join(workdir, "port", "web.py"), "from flask import Flask\napp = Flask('x')\n")
    found = scaffold.scan(workdir)
    assert found.apps == {"py2": {"web": "legacy.web:app"}, "py3": {"web": "port.web:app"}}
    toml = templates.gateway_toml(found)
    assert '# [services.web-web]' in toml and '# app = "legacy.web:app"' in toml
    assert '# [services.web3-web]' in toml and '# app = "port.web:app"' in toml
    assert '# prefix = "/web"' in toml and '# py3 = "web3-web"' in toml
    # Uncommented, it is a valid config: no table is defined twice.
    text = re.sub(r"^# (\[|\w+ = )", r"\1", toml, flags=re.M)
    cfg = gwconfig.parse(text, base_dir=workdir, source="gateway.toml")
    assert {s.name for s in cfg.services} >= {"web-web", "web3-web"}
    assert [m.name for m in cfg.migration_settings.migrations] == ["web"]


def test_folder_config_reads_runtimes_and_the_parity_file(workdir):
    write(os.path.join(workdir, "gateway.toml"),
          '[runtimes]\npy2 = "venv2/bin/python"\npy3 = "python3"\n'
          '[migration]\nparity_file = "reports/parity.json"\n')
    assert folder_config(workdir) == {
        "py2": os.path.join(workdir, "venv2/bin/python"), "py3": "python3",
        "parity_file": os.path.join(workdir, "reports/parity.json")}
    write(os.path.join(workdir, "gateway.toml"), "[runtimes\n")
    assert folder_config(workdir) == {}
