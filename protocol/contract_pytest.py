"""pytest plugin: run a service contract's cases against an implementation (2.7 and 3.x).

Enable it with ``-p protocol.contract_pytest``. Give it contracts and the
implementation of each (a table of functions, or a service on a running broker)::

    pytest -p protocol.contract_pytest --contract contracts/textsvc.json \\
        --impl textsvc=legacy.textsvc:TABLE --contract-results .contract/py2.json

or the same in the ini file. The implementation's label is ``py2`` on 2.7 and
``py3`` on 3.x (or ``--contract-label``); ``{label}`` is replaced by it and a line
starting ``py2:`` is read on py2 only, so one ini serves both tox legs::

    [pytest]
    contract_files = contracts/textsvc.json
    contract_impls =
        py2: textsvc=legacy.textsvc:TABLE
        py3: textsvc=port.textsvc:TABLE
    contract_results = .contract/{label}.json

Each case (the contract's examples, then generated params: :mod:`protocol.casegen`)
becomes one test item. It fails when the answer breaks the contract, when an
example's expected result or error does not come back, or when a generated call
raises something that is not a protocol error. Every case's outcome is recorded,
encoded with protocol.codec (text stays text, bytes stay bytes), in the results
file, which ``gateway contract test`` compares across interpreters; with
``--contract-parity`` the pass/fail counts also go into the dashboard's parity table.
"""
from __future__ import absolute_import, division, print_function

import os
import platform
import re

import pytest

from protocol import casegen, contract, contract_run
from protocol._compat import PY2

MYPY = False
if MYPY:  # pragma: no cover - read by the type checker only
    from typing import Any, Dict, List, Optional  # noqa: F401

DEFAULT_COUNT = 20
_PYTEST_MAJOR = int(pytest.__version__.split(".")[0])


def pytest_addoption(parser):
    # type: (Any) -> None
    group = parser.getgroup("contract", "contract cases (protocol.contract_pytest)")
    group.addoption("--contract", action="append", default=[], dest="contract_files",
                    metavar="PATH", help="a service contract (.json); repeat for several")
    group.addoption("--impl", action="append", default=[], dest="contract_impls",
                    metavar="[SERVICE=]TARGET",
                    help="module:ATTR (a table of functions) or broker:ENDPOINT[#service]")
    group.addoption("--contract-results", dest="contract_results", metavar="PATH",
                    help="write every case's outcome here (JSON)")
    group.addoption("--contract-parity", dest="contract_parity", metavar="PATH",
                    help="merge pass/fail counts into this parity table (JSON)")
    group.addoption("--contract-label", dest="contract_label", metavar="NAME",
                    help="this implementation's name in results and parity (py2 or py3)")
    group.addoption("--contract-seed", dest="contract_seed", type=int, metavar="N",
                    help="seed of the generated cases (default 0)")
    group.addoption("--contract-call-timeout", dest="contract_call_timeout", type=float,
                    default=10.0, metavar="SECONDS",
                    help="deadline of each call through a broker (default 10)")
    group.addoption("--contract-count", dest="contract_count", type=int, metavar="N",
                    help="generated cases per method (default %d; 0: examples only)"
                    % DEFAULT_COUNT)
    for name, kind, text in (
            ("contract_files", "linelist", "contracts to run (like --contract)"),
            ("contract_impls", "linelist", "implementations (like --impl)"),
            ("contract_results", None, "results file (like --contract-results)"),
            ("contract_parity", None, "parity table (like --contract-parity)"),
            ("contract_count", None, "generated cases per method")):
        if kind:
            parser.addini(name, text, type=kind, default=[])
        else:
            parser.addini(name, text, default="")


def pytest_configure(config):
    # type: (Any) -> None
    label = config.getoption("contract_label") or ("py2" if PY2 else "py3")

    def opt(name):
        # type: (str) -> Any
        value = config.getoption(name) or config.getini(name)
        if isinstance(value, list):
            return [v.replace("{label}", label) for v in for_label(value, label)]
        return value.replace("{label}", label) if value else None
    files = opt("contract_files")
    if not files:
        return
    count = config.getoption("contract_count")
    if count is None:
        count = int(config.getini("contract_count") or DEFAULT_COUNT)
    plugin = ContractPlugin(files, opt("contract_impls"), label,
                            results=opt("contract_results"), parity=opt("contract_parity"),
                            seed=config.getoption("contract_seed") or 0, count=count,
                            timeout=config.getoption("contract_call_timeout"))
    config.pluginmanager.register(plugin, "contract-cases")


_LABELLED = re.compile(r"^([A-Za-z0-9_-]+):\s+(\S.*)$")


def for_label(lines, label):
    # type: (List[str], str) -> List[str]
    """The ini lines for this implementation: ``py2: x`` only on py2, unprefixed lines always."""
    out = []
    for line in lines:
        found = _LABELLED.match(line.strip())
        if found is None:
            out.append(line.strip())
        elif found.group(1) == label:
            out.append(found.group(2))
    return out


class CaseFailed(AssertionError):
    """A case broke its contract; the message lists how."""


class ContractItem(pytest.Item):
    """One contract case against one implementation."""

    def __init__(self, name, parent, plugin=None, spec=None, case=None, **kw):
        # type: (str, Any, Any, Any, Any, Any) -> None
        super(ContractItem, self).__init__(name, parent, **kw)
        self.plugin = plugin
        self.spec = spec
        self.case = case

    @classmethod
    def make(cls, parent, name, **kw):
        # type: (Any, str, Any) -> ContractItem
        """pytest >= 5.4 builds nodes with from_parent; pytest 4.6 (the last on 2.7) directly."""
        if hasattr(cls, "from_parent"):
            return cls.from_parent(parent, name=name, **kw)
        return cls(name, parent, **kw)

    def runtest(self):
        # type: () -> None
        record = self.plugin.run(self.spec, self.case)
        if record[u"problems"]:
            raise CaseFailed(u"\n".join(record[u"problems"]))

    def repr_failure(self, excinfo, style=None):
        # type: (Any, Any) -> Any
        if excinfo.errisinstance(CaseFailed):
            return u"%s %s (%s)\n  params: %s\n  %s" % (
                self.spec.service, self.case.id, self.plugin.impls[self.spec.service].target,
                casegen.canonical(self.case.params, self.spec.schema_for(self.case.method)),
                u"%s" % (excinfo.value,))
        return super(ContractItem, self).repr_failure(excinfo)

    def reportinfo(self):
        # type: () -> Any
        return self.spec.source, None, u"%s %s" % (self.spec.service, self.case.id)


class ContractFile(pytest.File):
    """A contract file named on the command line or met during collection: its cases."""

    plugin = None  # type: Any
    spec = None  # type: Any

    @classmethod
    def make(cls, parent, path, plugin, spec):
        # type: (Any, str, Any, Any) -> ContractFile
        """pytest >= 7 takes a pathlib path through from_parent; 4.6 a py.path positionally."""
        if _PYTEST_MAJOR >= 7:
            import pathlib
            node = cls.from_parent(parent, path=pathlib.Path(path))
        else:
            import py
            node = cls(py.path.local(path), parent)
        node.plugin, node.spec = plugin, spec
        return node

    def collect(self):
        # type: () -> Any
        return self.plugin.items(self, self.spec)


class ContractPlugin(object):
    """Adds the cases of ``contracts`` as test items and records their outcomes.

    ``anchor`` (a directory) adds the cases only when the run selects that
    directory, the way a conftest's tests are only collected when asked for;
    ``service_of(nodeid)`` may file other tests under a service in the parity
    counts.
    """

    def __init__(self, contracts, impls, label, results=None, parity=None, seed=0,
                 count=DEFAULT_COUNT, timeout=10.0, anchor=None, service_of=None):
        # type: (List[str], List[str], str, str, str, int, int, float, str, Any) -> None
        self.label = label
        self.results = results
        self.parity = parity
        self.seed = seed
        self.count = count
        self.anchor = anchor
        self.service_of = service_of
        self.specs = []  # type: List[Any]
        self.impls = {}  # type: Dict[str, Any]
        self.records = {}  # type: Dict[str, List[Any]]
        self.skipped = {}  # type: Dict[str, Dict[str, str]]
        self.counts = {}  # type: Dict[str, Dict[str, int]]
        self.collected = set()  # type: Any
        self.item_services = {}  # type: Dict[str, str]
        try:
            self.specs = [contract.load(path) for path in contracts]
            by_name = dict((s.service, s) for s in self.specs)
            for text in impls:
                head = text.split(u":", 1)[0]
                if u"=" in head:
                    name = head.split(u"=", 1)[0]
                elif len(self.specs) == 1:
                    name = self.specs[0].service
                else:
                    raise ValueError(u"--impl %s: name the service (SERVICE=%s)" % (text, text))
                if name not in by_name:
                    raise ValueError(u"--impl %s: no contract for service %r" % (text, name))
                self.impls[name] = contract_run.resolve(text, by_name[name], timeout)
        except Exception as exc:  # an implementation that cannot load is a usage error
            raise pytest.UsageError(u"contract cases: %s: %s" % (type(exc).__name__, exc))
        self.by_path = dict((os.path.realpath(s.source), s) for s in self.specs)
        missing = [s.service for s in self.specs if s.service not in self.impls]
        if missing:
            raise pytest.UsageError(u"contract cases: no --impl for %s" % (u", ".join(missing),))

    def _anchored(self, config):
        # type: (Any) -> bool
        if self.anchor is None:
            return True
        anchor = os.path.abspath(self.anchor)
        for arg in config.args:
            path = os.path.abspath(os.path.join(str(config.invocation_dir), arg))
            if u"::" not in arg and (anchor + os.sep).startswith(path.rstrip(os.sep) + os.sep):
                return True
        return False

    def items(self, parent, spec):
        # type: (Any, Any) -> List[Any]
        """One item per case of ``spec``, under ``parent`` (its file, or the session)."""
        self.collected.add(spec.service)
        skipped = self.skipped.setdefault(spec.service, {})
        prefix = u"" if isinstance(parent, ContractFile) else u"%s:" % (spec.service,)
        cases = casegen.cases(spec, self.seed, self.count, skipped)
        if isinstance(self.impls[spec.service], contract_run.ViaBroker):
            # A running estate may hold real data: made-up calls go only to methods that
            # change nothing. The examples, written on purpose, still run.
            unsafe = {m for m in spec.method_names() if not spec.is_idempotent(m)}
            for method in sorted(unsafe):
                skipped.setdefault(method, u"not idempotent: no generated calls to a broker")
            cases = [c for c in cases if c.source == u"example" or c.method not in unsafe]
        out = [ContractItem.make(parent, u"%s%s" % (prefix, case.id), plugin=self, spec=spec,
                                 case=case)
               for case in cases]
        for item in out:
            self.item_services[item.nodeid] = spec.service
        return out

    def _collect(self, path, parent):
        # type: (str, Any) -> Any
        spec = self.by_path.get(os.path.realpath(path))
        if spec is None:
            return None
        return ContractFile.make(parent, path, self, spec)

    if _PYTEST_MAJOR >= 7:
        def pytest_collect_file(self, file_path, parent):
            # type: (Any, Any) -> Any
            return self._collect(str(file_path), parent)
    else:
        def pytest_collect_file(self, path, parent):  # type: ignore[misc]
            # type: (Any, Any) -> Any
            return self._collect(str(path), parent)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session, config, items):
        # type: (Any, Any, List[Any]) -> None
        """Contracts that collection did not meet (they live outside the paths given) run too."""
        if not self._anchored(config):
            return
        for spec in self.specs:
            if spec.service not in self.collected:
                items.extend(self.items(session, spec))

    def run(self, spec, case):
        # type: (Any, casegen.Case) -> Dict[str, Any]
        """Run one case and keep its record for the results file."""
        record = contract_run.run_case(spec, self.impls[spec.service], case)
        self.records.setdefault(spec.service, []).append(record)
        return record

    def pytest_runtest_logreport(self, report):
        # type: (Any) -> None
        service = self.item_services.get(report.nodeid)
        if service is None and self.service_of is not None:
            service = self.service_of(report.nodeid)
        if service is None:
            return
        slot = self.counts.setdefault(service, {u"passed": 0, u"failed": 0, u"skipped": 0})
        if report.failed:
            slot[u"failed"] += 1
        elif report.when == "call":
            slot[u"passed" if report.passed else u"skipped"] += 1
        elif report.skipped:
            slot[u"skipped"] += 1

    def pytest_sessionfinish(self, session, exitstatus):
        # type: (Any, int) -> None
        for impl in self.impls.values():
            impl.close()
        python = platform.python_version()
        if self.results and self.records:
            contract_run.write_json(self.results, {
                u"version": contract_run.RESULTS_VERSION, u"label": self.label,
                u"python": python, u"seed": self.seed, u"count": self.count,
                u"contracts": dict((s.service, {
                    u"contract": s.source, u"impl": self.impls[s.service].target,
                    u"skipped": self.skipped.get(s.service, {}),
                    u"cases": self.records.get(s.service, [])}) for s in self.specs)})
        if self.parity and self.counts:
            contract_run.update_parity(self.parity, self.label, self.counts, python)
