"""The README's own-estate walkthrough is well formed, checked in seconds.

The slow end-to-end run is tests/integration/contracttest/test_walkthrough.py; this
catches a lost tag, a file that no longer compiles on its interpreter, or a config
block that no longer parses, without building virtualenvs.
"""

from __future__ import annotations

import json
import subprocess
import tomllib

from gateway import config as gwconfig
from tests.support.procs import python2
from tests.support.walkthrough import TAG, section, steps


def test_every_tag_names_a_block_and_the_steps_come_in_order():
    found = steps()
    assert len(found) == len(TAG.findall(section()))
    runs = [arg or kind for kind, arg, _ in found if kind in ("run", "up")]
    assert runs == ["layout", "venvs", "init", "check", "contract", "up", "traffic",
                    "migrate", "queue", "stop"]


def test_each_file_is_valid_for_its_side():
    files = {arg: text for kind, arg, text in steps() if kind == "file"}
    assert sorted(files) == ["contracts/textsvc.json", "legacy/produce.py",
                             "legacy/textsvc.py", "legacy/web.py", "port/orders.py",
                             "port/textsvc.py", "port/web.py", "requirements-py2.txt",
                             "requirements-py3.txt"]
    for path, text in files.items():
        if path.startswith("port/"):
            compile(text, path, "exec")
    legacy = {p: t for p, t in files.items() if p.startswith("legacy/")}
    code = ("import json, sys\nfor p, t in json.load(sys.stdin).items(): compile(t, p, 'exec')")
    done = subprocess.run([python2(), "-c", code], input=json.dumps(legacy).encode(),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    contract = json.loads(files["contracts/textsvc.json"])
    assert contract["service"] == "textsvc" and sorted(contract["methods"]) == ["upper", "words"]


def test_the_appended_config_parses_with_the_services_init_writes():
    (extra,) = [text for kind, _, text in steps() if kind == "append"]
    base = ('[runtimes]\npy2 = "venv2/bin/python"\npy3 = "venv3/bin/python"\n'
            '[[routes]]\nprefix = "/rpc"\nbackend = "rpc"\n'
            '[services.textsvc]\nruntime = "py2"\nmodule = "legacy.textsvc:TABLE"\n'
            '[services.textsvc3]\nruntime = "py3"\nmodule = "port.textsvc:TABLE"\n')
    tomllib.loads(extra)
    cfg = gwconfig.parse(base + extra, base_dir="/srv/shop", source="gateway.toml")
    assert {s.name for s in cfg.services} == {"textsvc", "textsvc3", "web", "web3", "orders3"}
    assert {m.name for m in cfg.migration_settings.migrations} == {"shop", "upper"}
