"""Run contract cases against one implementation and record what happened (2.7 and 3.x).

An implementation is a plain table of functions (``{"method": fn}``, the same
table a worker serves) called in process, or a service on a running broker
called through :class:`protocol.client.Client`. Either way a case is called
the way a worker calls its table (SPEC 7.1), and its outcome becomes a JSON
record that another interpreter's run can be compared with::

    from protocol import casegen, contract, contract_run
    spec = contract.load("contracts/textsvc.json")
    impl = contract_run.resolve(u"textsvc=legacy.textsvc:TABLE", spec)
    for case in casegen.cases(spec):
        record = contract_run.run_case(spec, impl, case)
        record["outcome"], record.get("result"), record["problems"]

The results file and the parity table the dashboard shows are written here
too (:func:`write_json`, :func:`merge_parity`).
"""
from __future__ import absolute_import, division, print_function

import importlib
import io
import json
import os
import tempfile
import time

from protocol import casegen, codec
from protocol.client import Client
from protocol.errors import (
    InvalidParams,
    ProtocolError,
    Timeout,
    Unavailable,
    UnknownMethod,
    WorkerLost,
)

MYPY = False
if MYPY:  # pragma: no cover - read by the type checker only
    from typing import Any, Dict, List, Optional  # noqa: F401

RESULTS_VERSION = 1
# Errors that mean the call never reached an answer (SPEC 5): the run failed, not the case.
_NOT_ANSWERED = (Timeout, Unavailable, WorkerLost)


class InProcess(object):
    """A table of functions named by ``module:ATTR``, called here as protocol.worker calls it."""

    def __init__(self, target):
        # type: (str) -> None
        self.target = target
        module, _, attr = target.partition(u":")
        if not module or not attr:
            raise ValueError(u"implementation %r: expected module:ATTR" % (target,))
        found = importlib.import_module(str(module))  # type: Any
        for part in attr.split(u"."):
            found = getattr(found, str(part))
        if not isinstance(found, dict):
            raise ValueError(u"implementation %r is a %s, not a table (dict) of functions"
                             % (target, type(found).__name__))
        self.table = found

    def call(self, spec, method, params):
        # type: (Any, str, Any) -> Any
        fn = self.table.get(method)
        if fn is None:
            raise UnknownMethod(u"%s has no method %r" % (spec.service, method),
                                type=u"UnknownMethod")
        return _invoke(fn, params)

    def close(self):
        # type: () -> None
        pass


def _invoke(fn, params):
    # type: (Any, Any) -> Any
    """SPEC 7.1: an object by name, a list by position, null as none, else one argument."""
    if params is None:
        return fn()
    if isinstance(params, dict):
        return fn(**dict((str(k), v) for k, v in params.items()))
    if isinstance(params, list):
        return fn(*params)
    return fn(params)


class ViaBroker(object):
    """A service on a running broker, called with :class:`protocol.client.Client`."""

    def __init__(self, target, service, timeout=10.0):
        # type: (str, str, float) -> None
        endpoint, _, name = target[len(u"broker:"):].partition(u"#")
        self.target = target
        self.endpoint = endpoint
        self.service = name or service
        self.timeout = timeout
        self._client = None  # type: Any

    def call(self, spec, method, params):
        # type: (Any, str, Any) -> Any
        if self._client is None:
            self._client = Client(str(self.endpoint), timeout=self.timeout)
        return self._client.call(self.service, method, params, timeout=self.timeout,
                                 idem=spec.is_idempotent(method),
                                 schema=spec.schema_for(method))

    def close(self):
        # type: () -> None
        if self._client is not None:
            self._client.close()
            self._client = None


def resolve(text, spec, timeout=10.0):
    # type: (str, Any, float) -> Any
    """An implementation from ``[SERVICE=]module:ATTR`` or ``[SERVICE=]broker:ENDPOINT[#name]``."""
    target = text.split(u"=", 1)[1] if u"=" in text.split(u":", 1)[0] else text
    if target.startswith(u"broker:"):
        return ViaBroker(target, spec.service, timeout)
    return InProcess(target)


def error_of(exc):
    # type: (BaseException) -> Dict[str, Any]
    """The comparable part of a failure: wire code and type (SPEC 5.2), plus the message."""
    if isinstance(exc, ProtocolError):
        kind = exc.details.get(u"type") or type(exc).__name__
        return {u"code": u"%s" % (exc.code,), u"type": u"%s" % (kind,),
                u"message": u"%s" % (exc.message,)}
    try:
        message = u"%s" % (exc,)
    except UnicodeError:
        message = repr(exc)
    return {u"code": u"remote", u"type": u"%s" % (type(exc).__name__,), u"message": message}


def _same(spec, method, expected, actual):
    # type: (Any, str, Any, Any) -> bool
    schema = spec.result_schema_for(method)
    try:
        want = json.loads(casegen.canonical(codec.from_json(expected), schema))
        got = json.loads(casegen.canonical(actual, schema))
    except (ProtocolError, ValueError, TypeError):
        return False
    return bool(want == got)


def run_case(spec, impl, case):
    # type: (Any, Any, casegen.Case) -> Dict[str, Any]
    """Call one case and return its record; ``problems`` lists what broke the contract."""
    params_schema = spec.schema_for(case.method)
    record = {u"id": case.id, u"method": case.method, u"source": case.source,
              u"params": codec.to_json(case.params, params_schema if isinstance(
                  params_schema, dict) else None)}  # type: Dict[str, Any]
    problems = []  # type: List[str]
    started = time.time()
    try:
        result = impl.call(spec, case.method, case.params)
    except Exception as exc:  # a case's failure is its outcome, never the run's
        record[u"outcome"] = u"error"
        record[u"error"] = error_of(exc)
        if isinstance(exc, _NOT_ANSWERED):
            # No implementation answered: a broken run, whatever the case expected.
            record[u"problems"] = [u"no answer: %s %s" % (record[u"error"][u"type"],
                                                         record[u"error"][u"message"])]
            record[u"ms"] = round((time.time() - started) * 1000.0, 3)
            return record
        if not isinstance(exc, ProtocolError) and case.expect is None:
            problems.append(u"raised %s: %s" % (record[u"error"][u"type"],
                                                record[u"error"][u"message"]))
    else:
        record[u"outcome"] = u"result"
        try:
            record[u"result"] = spec.validate_result(case.method, result)
        except InvalidParams as exc:
            record[u"result"] = codec.to_json(result) if _encodable(result) else repr(result)
            problems.append(u"the result breaks the contract: %s" % (exc.message,))
    record[u"ms"] = round((time.time() - started) * 1000.0, 3)
    expect = case.expect or {}
    if u"result" in expect:
        if record[u"outcome"] != u"result":
            problems.append(u"expected a result, got %s %s" % (
                record[u"error"][u"type"], record[u"error"][u"message"]))
        elif not _same(spec, case.method, expect[u"result"], record[u"result"]):
            problems.append(u"expected %s, got %s" % (
                json.dumps(expect[u"result"], sort_keys=True),
                json.dumps(record[u"result"], sort_keys=True)))
    elif u"error" in expect:
        err = record.get(u"error") or {}
        if expect[u"error"] not in (err.get(u"type"), err.get(u"code")):
            problems.append(u"expected error %s, got %s" % (
                expect[u"error"], err.get(u"type") or u"a result"))
    record[u"problems"] = problems
    return record


def _encodable(value):
    # type: (Any) -> bool
    try:
        codec.to_json(value)
    except (ProtocolError, ValueError, TypeError):
        return False
    return True


# ----------------------------------------------------------------- files --

def write_json(path, data):
    # type: (str, Any) -> None
    """Write ``data`` as JSON, atomically replacing ``path`` (readers never see half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with io.open(fd, "w", encoding="utf-8") as fh:
        fh.write(u"%s\n" % (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False),))
    os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the dashboard may run as another user
    os.rename(tmp, path)


def read_json(path, default=None):
    # type: (str, Any) -> Any
    """The JSON in ``path``, or ``default`` when it is missing or unreadable."""
    try:
        with io.open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (IOError, OSError, ValueError):
        return default


def merge_parity(table, impl_name, outcomes, python):
    # type: (Dict[str, Any], str, Dict[str, Any], str) -> Dict[str, Any]
    """``table`` with one implementation's pass/fail counts per service written in.

    The parity table (``build/parity.json``, read by the dashboard)::

        {"implementations": {"py2": {"python": "2.7.18", "updated": 1796296651}, ...},
         "services": {"htmldiff": {"py2": {"passed": 9, "failed": 0, "skipped": 0,
                                           "status": "pass"}, "py3": {...}}}}
    """
    table = dict(table or {})
    impls = dict(table.get(u"implementations") or {})
    impls[impl_name] = {u"python": python, u"updated": int(time.time())}
    services = dict(table.get(u"services") or {})
    for service, counts in sorted(outcomes.items()):
        row = dict(services.get(service) or {})
        status = u"fail" if counts[u"failed"] else (u"pass" if counts[u"passed"] else u"skip")
        row[impl_name] = dict(counts, status=status)
        services[service] = row
    table[u"implementations"] = impls
    table[u"services"] = services
    return table


def update_parity(path, impl_name, outcomes, python):
    # type: (str, str, Dict[str, Any], str) -> None
    """Merge one run's outcomes into the parity table file, keeping the other columns."""
    old = read_json(path, {})
    write_json(path, merge_parity(old if isinstance(old, dict) else {}, impl_name, outcomes,
                                  python))
