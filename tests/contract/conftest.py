"""The contract suite's fixtures and its parity report (2.7 and 3.x).

The suite runs against the implementation package of the running
interpreter: ``py2_services`` on 2.7, ``py3_services`` on 3.x. Every call
goes through :func:`call`, which validates params and result against the
service's contract (protocol/spec/<service>.json) like a worker would see
them. At the end of the session the outcome per service is merged into
``build/parity.json`` (or ``$GATEWAY_PARITY_JSON``) under this
implementation's name, so the two interpreters' runs fill one table::

    {"implementations": {"py2": {"python": "2.7.18", "updated": ...},
                         "py3": {...}},
     "services": {"highlight": {"py2": {"passed": 9, "failed": 0, "status": "pass"},
                                "py3": {...}}, ...}}
"""
from __future__ import absolute_import, division, print_function

import importlib
import io
import json
import os
import platform
import tempfile
import time

import pytest

from protocol import contract
from protocol._compat import PY2
from tests.support.procs import REPO

IMPL = "py2" if PY2 else "py3"
SERVICES = ("highlight", "htmldiff", "thumbnails", "whoami")
_outcomes = {}  # type: dict


def implementation(name=IMPL):
    # type: (str) -> object
    """The implementation package: py2_services or py3_services."""
    return importlib.import_module("%s_services" % name)


def service_module(service, name=IMPL):
    # type: (str, str) -> object
    """One service module of an implementation."""
    return importlib.import_module("%s_services.%s" % (name, service))


def call(service, table, method, params):
    # type: (str, dict, str, object) -> object
    """Call ``table[method]`` the way protocol.worker does, checking the contract both ways."""
    spec = contract.load(service)
    spec.validate_params(method, params)
    fn = table[method]
    if params is None:
        result = fn()
    else:
        result = fn(**{str(k): v for k, v in params.items()})
    spec.validate_result(method, result)
    return result


@pytest.fixture(params=[IMPL])
def impl(request):
    """The name of the implementation under test (one per interpreter)."""
    return request.param


@pytest.fixture
def legacy_db(workdir, monkeypatch):
    """A fresh shared SQLite database, also exported as $LEGACY_DB."""
    path = os.path.join(workdir, "legacy.sqlite3")
    monkeypatch.setenv("LEGACY_DB", path)
    return path


def _service_of(nodeid):
    # type: (str) -> object
    name = nodeid.split("::")[-1].split("[")[0]
    for service in SERVICES:
        if name.startswith("test_%s_" % service):
            return service
    return None


def pytest_runtest_logreport(report):
    # type: (object) -> None
    """Count each contract test's outcome under its service (test_<service>_...)."""
    service = _service_of(report.nodeid)  # type: ignore[attr-defined]
    if service is None:
        return
    slot = _outcomes.setdefault(service, {"passed": 0, "failed": 0, "skipped": 0})
    if report.failed:  # type: ignore[attr-defined]
        slot["failed"] += 1
    elif report.when == "call":  # type: ignore[attr-defined]
        slot["passed" if report.passed else "skipped"] += 1  # type: ignore[attr-defined]
    elif report.skipped:  # type: ignore[attr-defined]
        slot["skipped"] += 1


def parity_path():
    # type: () -> str
    """Where the parity table lives."""
    return os.environ.get("GATEWAY_PARITY_JSON") or os.path.join(REPO, "build", "parity.json")


def merge_parity(table, impl_name, outcomes, python):
    # type: (dict, str, dict, str) -> dict
    """``table`` with this run's outcomes written under ``impl_name``."""
    table = dict(table or {})
    impls = dict(table.get("implementations") or {})
    impls[impl_name] = {"python": python, "updated": int(time.time())}
    services = dict(table.get("services") or {})
    for service, counts in sorted(outcomes.items()):
        row = dict(services.get(service) or {})
        status = "fail" if counts["failed"] else ("pass" if counts["passed"] else "skip")
        row[impl_name] = dict(counts, status=status)
        services[service] = row
    table["implementations"] = impls
    table["services"] = services
    return table


def pytest_sessionfinish(session, exitstatus):
    # type: (object, int) -> None
    """Merge this run's outcomes into the parity table (atomically replaced)."""
    if not _outcomes:
        return
    path = parity_path()
    try:
        with io.open(path, "r", encoding="utf-8") as fh:
            old = json.load(fh)
    except (IOError, OSError, ValueError):
        old = {}
    table = merge_parity(old if isinstance(old, dict) else {}, IMPL, _outcomes,
                         platform.python_version())
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".parity-")
    with io.open(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(table, indent=1, sort_keys=True) + u"\n")
    os.rename(tmp, path)
