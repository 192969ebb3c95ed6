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
import os

import pytest

from protocol import contract
from protocol._compat import PY2
from protocol.contract_pytest import ContractPlugin
from protocol.contract_run import merge_parity  # noqa: F401 - the suite tests it
from tests.support.procs import REPO

IMPL = "py2" if PY2 else "py3"
SERVICES = ("highlight", "htmldiff", "thumbnails", "whoami")
# The services whose tables run without a database or a queue: their contracts'
# examples and generated cases run through protocol.contract_pytest.
PLUGIN_SERVICES = ("highlight", "htmldiff")


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


def parity_path():
    # type: () -> str
    """Where the parity table lives."""
    return os.environ.get("GATEWAY_PARITY_JSON") or os.path.join(REPO, "build", "parity.json")


def pytest_configure(config):
    # type: (object) -> None
    """Run the contracts' own cases through the public plugin, as a team's estate would.

    The plugin also counts this directory's ``test_<service>_...`` tests, and at
    the end merges the counts into the parity table and writes every case's
    outcome to ``build/contract/<impl>.json``, which ``gateway contract test
    --ingest --results build/contract`` compares across the two interpreters.
    """
    plugin = ContractPlugin(
        [os.path.join(contract.SPEC_DIR, "%s.json" % s) for s in PLUGIN_SERVICES],
        ["%s=%s_services.%s:TABLE" % (s, IMPL, s) for s in PLUGIN_SERVICES], IMPL,
        results=os.path.join(REPO, "build", "contract", "%s.json" % IMPL),
        parity=parity_path(), anchor=os.path.dirname(os.path.abspath(__file__)),
        service_of=_service_of)
    config.pluginmanager.register(plugin, "contract-estate")  # type: ignore[attr-defined]
