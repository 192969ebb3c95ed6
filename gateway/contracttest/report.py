"""Compare two implementations' contract results and write the parity table.

Input is two results files written by ``protocol.contract_pytest`` (one per
interpreter, usually ``py2`` and ``py3``). Cases are matched by id; their answers
are compared with the migration's interpreter-aware rules
(:func:`gateway.migration.compare.compare_values`: key order, ``1`` vs ``1.0``,
text vs the same UTF-8 bytes are not differences). An error answer is compared
by its wire code and type, never by its message, which differs between
interpreters for the same failure::

    left, right = load_results("x/.contract/py2.json"), load_results("x/.contract/py3.json")
    report = compare_runs(left, right, Rules())
    print(format_report(report)); write_parity("x/build/parity.json", report, left, right)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError
from gateway.migration.compare import Difference, Rules, compare_values
from protocol import contract_run

MAX_LISTED = 50
FIELDS_LISTED = 8


class ResultsError(GatewayError):
    """A results file is missing, unreadable or not from protocol.contract_pytest."""


@dataclass
class CaseDiff:
    """One case whose two answers differ."""

    service: str
    case: str
    params: Any
    differences: list[Difference]

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "case": self.case, "params": self.params,
                "differences": [d.to_json() for d in self.differences]}


@dataclass
class ServiceParity:
    """The verdict for one service: how many cases, how many agreed, which did not."""

    service: str
    cases: int = 0
    same: int = 0
    diffs: list[CaseDiff] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # label -> "case: why"
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> counts
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why no generated cases


@dataclass
class Report:
    """Both runs compared: per service, plus the labels and interpreters compared."""

    labels: tuple[str, str]
    pythons: tuple[str, str]
    services: dict[str, ServiceParity]
    notes: list[str] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return sum(len(s.diffs) for s in self.services.values())

    @property
    def problems(self) -> int:
        return sum(len(v) for s in self.services.values() for v in s.problems.values())

    @property
    def ok(self) -> bool:
        return not self.differences and not self.problems and not self.notes


def load_results(path: str) -> dict[str, Any]:
    """One results file; :class:`ResultsError` names the file when it is not usable."""
    data = contract_run.read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("contracts"), dict):
        raise ResultsError(f"{path}: no contract results (did the run start?)")
    if data.get("version") != contract_run.RESULTS_VERSION:
        raise ResultsError(f"{path}: results version {data.get('version')!r} is not "
                           f"{contract_run.RESULTS_VERSION}")
    return data


def _cases(run: dict[str, Any], service: str) -> dict[str, dict[str, Any]]:
    block = run["contracts"].get(service) or {}
    return {c["id"]: c for c in block.get("cases", [])}


def _answer(case: dict[str, Any]) -> tuple[str, Any]:
    if case.get("outcome") == "result":
        return "result", case.get("result")
    error = case.get("error") or {}
    return "error", {"code": error.get("code"), "type": error.get("type")}


def compare_case(left: dict[str, Any], right: dict[str, Any], rules: Rules) -> list[Difference]:
    """Field differences between two records of one case (empty when they agree)."""
    if left.get("params") != right.get("params"):
        # Same id, other params: the two runs did not generate the same cases.
        return compare_values(left.get("params"), right.get("params"), Rules(), "params")
    (lkind, lvalue), (rkind, rvalue) = _answer(left), _answer(right)
    if lkind != rkind:
        return [Difference("outcome", "changed", f"{lkind}: {json.dumps(lvalue)[:200]}",
                           f"{rkind}: {json.dumps(rvalue)[:200]}")]
    return compare_values(lvalue, rvalue, rules, lkind)


def _counts(cases: dict[str, dict[str, Any]]) -> dict[str, int]:
    failed = sum(1 for c in cases.values() if c.get("problems"))
    return {"passed": len(cases) - failed, "failed": failed, "skipped": 0}


def compare_runs(left: dict[str, Any], right: dict[str, Any], rules: Rules) -> Report:
    """Compare every case of every service the two runs share."""
    labels = (str(left.get("label", "left")), str(right.get("label", "right")))
    report = Report(labels, (str(left.get("python", "?")), str(right.get("python", "?"))), {})
    for key in ("seed", "count"):
        if left.get(key) != right.get(key):
            report.notes.append(f"the runs used different {key}s: {left.get(key)!r} "
                                f"and {right.get(key)!r}")
    for service in sorted(set(left["contracts"]) | set(right["contracts"])):
        lcases, rcases = _cases(left, service), _cases(right, service)
        parity = report.services.setdefault(service, ServiceParity(service))
        for label, run, cases in ((labels[0], left, lcases), (labels[1], right, rcases)):
            parity.counts[label] = _counts(cases)
            block = run["contracts"].get(service) or {}
            for method, why in sorted((block.get("skipped") or {}).items()):
                parity.skipped.setdefault(method, str(why))
            if service not in run["contracts"]:
                report.notes.append(f"{service}: no results from {label}")
            for cid, case in sorted(cases.items()):
                for problem in case.get("problems") or []:
                    parity.problems.setdefault(label, []).append(f"{cid}: {problem}")
        for cid in sorted(set(lcases) | set(rcases)):
            a, b = lcases.get(cid), rcases.get(cid)
            if a is None or b is None:
                continue  # one run was cut short or filtered; noted above when whole
            parity.cases += 1
            found = compare_case(a, b, rules)
            if found:
                parity.diffs.append(CaseDiff(service, cid, a.get("params"), found))
            else:
                parity.same += 1
    return report


def format_report(report: Report, limit: int = MAX_LISTED) -> str:
    """The human verdict: per service a count line, then each differing case's field diffs."""
    a, b = report.labels
    lines = [f"contract parity: {a} (Python {report.pythons[0]}) vs {b} "
             f"(Python {report.pythons[1]})"]
    listed = 0
    for name, svc in sorted(report.services.items()):
        lines.append(f"{name}: {svc.cases} cases, {svc.same} the same, "
                     f"{len(svc.diffs)} different")
        for method, why in sorted(svc.skipped.items()):
            lines.append(f"  {method}: examples only ({why})")
        for label, items in sorted(svc.problems.items()):
            for item in items[:limit]:
                lines.append(f"  {label} broke the contract: {item}")
        for diff in svc.diffs:
            listed += 1
            if listed > limit:
                break
            lines.append(f"  {diff.case}  params {json.dumps(diff.params, ensure_ascii=False)}")
            for d in diff.differences[:FIELDS_LISTED]:
                lines.append(f"    {d.path}  {d.kind}  {a}: "
                             f"{json.dumps(d.left, ensure_ascii=False)}  {b}: "
                             f"{json.dumps(d.right, ensure_ascii=False)}")
            if len(diff.differences) > FIELDS_LISTED:
                more = len(diff.differences) - FIELDS_LISTED
                lines.append(f"    ... {more} more fields (--json lists them)")
    if listed > limit:
        lines.append(f"  ... {report.differences - limit} more different cases")
    lines.extend(f"note: {n}" for n in report.notes)
    verdict = "PASS: every case agrees" if report.ok else (
        f"FAIL: {report.differences} different cases, {report.problems} contract failures")
    lines.append(verdict)
    return "\n".join(lines)


def report_json(report: Report) -> dict[str, Any]:
    """The machine-readable verdict (``gateway contract test --json``)."""
    return {"ok": report.ok, "labels": list(report.labels), "pythons": list(report.pythons),
            "notes": report.notes, "differences": report.differences,
            "problems": report.problems,
            "services": {n: {"cases": s.cases, "same": s.same, "problems": s.problems,
                             "skipped": s.skipped,
                             "diffs": [d.to_json() for d in s.diffs], "counts": s.counts}
                         for n, s in sorted(report.services.items())}}


def write_parity(path: str, report: Report) -> dict[str, Any]:
    """Merge both runs into the parity table the dashboard reads, with the verdict per service.

    Each service row keeps the per-implementation counts (``merge_parity``) and
    gains ``parity``: cases compared, how many differ, and the first differences.
    """
    table = contract_run.read_json(path, {})
    table = table if isinstance(table, dict) else {}
    for label, python in zip(report.labels, report.pythons, strict=True):
        counts = {n: s.counts[label] for n, s in report.services.items() if label in s.counts}
        table = contract_run.merge_parity(table, label, counts, python)
    for name, svc in report.services.items():
        row = table["services"].setdefault(name, {})
        row["parity"] = {"cases": svc.cases, "same": svc.same, "different": len(svc.diffs),
                         "status": "same" if not svc.diffs else "different",
                         "diffs": [d.to_json() for d in svc.diffs[:10]]}
    contract_run.write_json(path, table)
    return dict(table)
