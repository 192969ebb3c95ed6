"""``gateway migrate``: the admin API from the command line.

::

    gateway migrate status [--json]            # every migration: state, share, evidence, gate
    gateway migrate shadow legacy              # py2 -> shadow (again: restart the evidence)
    gateway migrate canary legacy 10           # 10% of clients, sticky, on py3
    gateway migrate promote legacy [--force]   # -> py3, refused until the gate passes
    gateway migrate rollback legacy            # -> py2
    gateway migrate retire legacy              # py3 -> retired (no more reverse shadow)
    gateway migrate report [NAME] [--json]     # share, diff / noise / error rates, p50 / p99
    gateway migrate diffs legacy [--limit 5]   # recent differences with their field diffs
    gateway migrate audit [NAME] [--json]      # who changed what, when, from what, to what
    gateway migrate dashboard                  # the dashboard's URL, token included

It talks to the running front at ``[gateway].listen`` with the token from
``[migration].token_file``; ``--actor`` (default ``$USER``) goes into the audit log.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import time
from typing import Any

from gateway.config import GatewayConfig, parse_listen
from gateway.errors import GatewayError

ACTIONS = ("shadow", "canary", "promote", "rollback", "retire")


class AdminError(GatewayError):
    """The admin API refused a request or could not be reached."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``migrate`` and its sub-commands on the ``gateway`` parser."""
    mp = sub.add_parser("migrate", help="shadow, canary, promote and roll back migrations")
    mp.add_argument("--json", action="store_true", help="print the API's JSON")
    mp.add_argument("--actor", default=os.environ.get("USER", "cli"),
                    help="who acts, for the audit log")
    mp.add_argument("--timeout", type=float, default=10.0)
    msub = mp.add_subparsers(dest="action", required=True)
    msub.add_parser("status", help="every migration's state, evidence and gate")
    for action in ACTIONS:
        a = msub.add_parser(action, help=f"{action} a migration")
        a.add_argument("name")
        if action == "canary":
            a.add_argument("percent", type=int)
        if action == "promote":
            a.add_argument("--force", action="store_true", help="promote despite the gate")
        a.add_argument("--reason", default="")
    rp = msub.add_parser("report", help="a table per migration")
    rp.add_argument("name", nargs="?")
    df = msub.add_parser("diffs", help="recent differences")
    df.add_argument("name", nargs="?")
    df.add_argument("--limit", type=int, default=10)
    au = msub.add_parser("audit", help="the audit log")
    au.add_argument("name", nargs="?")
    au.add_argument("--limit", type=int, default=50)
    msub.add_parser("dashboard", help="print the dashboard URL with the token")
    return mp  # type: ignore[no-any-return]


def read_token(cfg: GatewayConfig) -> str:
    """The admin token the front wrote, or :class:`AdminError` saying where it looked."""
    path = cfg.migration_settings.token_file
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise AdminError(f"no admin token at {path} ({exc.strerror}); "
                         "is the gateway running (gateway up)?") from None


def request(cfg: GatewayConfig, method: str, path: str, body: Any = None, actor: str = "cli",
            timeout: float = 10.0) -> Any:
    """One admin API call; the decoded JSON, or :class:`AdminError` with the problem."""
    token = read_token(cfg)
    where = parse_listen(cfg.gateway.listen, "gateway.listen")
    if isinstance(where, str):
        conn: http.client.HTTPConnection = _UnixConnection(where, timeout)
    else:
        host = "127.0.0.1" if where[0] in ("0.0.0.0", "") else where[0]
        host = "::1" if host == "::" else host
        conn = http.client.HTTPConnection(host, where[1], timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "X-Gateway-Actor": f"cli:{actor}",
               "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as exc:
        raise AdminError(f"the gateway at {cfg.gateway.listen} did not answer: {exc}") from None
    finally:
        conn.close()
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        raise AdminError(f"{method} {path}: HTTP {resp.status}, not JSON") from None
    if resp.status >= 400:
        reasons = doc.get("reasons") or []
        detail = doc.get("detail") or resp.reason
        lines = [f"{method} {path}: {resp.status} {doc.get('code', '')}: {detail}"]
        lines += [f"  - {r}" for r in reasons]
        raise AdminError("\n".join(lines))
    return doc


def run(args: argparse.Namespace, cfg: GatewayConfig) -> int:
    """Carry out one ``gateway migrate`` command."""
    base = "/_gateway/api"
    action = args.action
    if action == "dashboard":
        token = read_token(cfg)
        where = parse_listen(cfg.gateway.listen, "gateway.listen")
        host = where if isinstance(where, str) else f"http://{where[0]}:{where[1]}"
        print(f"{host}/_gateway/#token={token}")
        return 0
    if action in ACTIONS:
        body: dict[str, Any] = {"reason": args.reason}
        if action == "canary":
            body["percent"] = args.percent
        if action == "promote":
            body["force"] = args.force
        doc = request(cfg, "POST", f"{base}/migrations/{args.name}/{action}", body,
                      args.actor, args.timeout)
        state = doc["state"]
        print(json.dumps(doc, indent=2, sort_keys=True) if args.json
              else f"{state['name']}: now {mode(state)}")
        return 0
    if action in ("status", "report"):
        doc = request(cfg, "GET", f"{base}/migrations", None, args.actor, args.timeout)
        reports = [r for r in doc["migrations"]
                   if action == "status" or not args.name or r["name"] == args.name]
        if args.json:
            print(json.dumps(reports, indent=2, sort_keys=True))
        else:
            print(render_status(reports) if action == "status" else render_report(reports))
        return 0
    query = f"?limit={args.limit}" + (f"&name={args.name}" if args.name else "")
    doc = request(cfg, "GET", f"{base}/{action}{query}", None, args.actor, args.timeout)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    elif action == "audit":
        for e in doc["audit"]:
            forced = " (forced)" if e.get("forced") else ""
            print(f"{_when(e['at'])}  {e['name']:<16} {e['from']:>11} -> {e['to']:<11} "
                  f"{e['actor']}{forced}  {e.get('reason', '')}")
    else:
        for d in doc["diffs"]:
            tag = "noise" if d.get("noise") else d["outcome"]
            print(f"{_when(d['at'])}  {d['name']}  {d['method']} {d['path']}  [{tag}] "
                  f"rid={d['rid']}")
            for f in d.get("fields", [])[:20]:
                print(f"    {f['path']}: {f['kind']}: {f.get('left')!r} -> {f.get('right')!r}")
    return 0


def mode(state: dict[str, Any]) -> str:
    """``canary 10%`` or the plain mode."""
    return f"canary {state['percent']}%" if state["mode"] == "canary" else state["mode"]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def render_status(reports: list[dict[str, Any]]) -> str:
    """One line per migration: state, evidence and the gate's verdict."""
    lines = [f"{'MIGRATION':<16}{'TARGET':<18}{'STATE':<13}{'SAMPLES':>8}{'DIFFS':>7}"
             f"{'DIFF%':>8}{'NOISE%':>8}  GATE"]
    for r in reports:
        ev, gate = r["evidence"], r["gate"]
        verdict = "ok" if gate["ok"] else "; ".join(gate["reasons"])
        split = r.get("split")
        if split:
            verdict += (f"  [broker: {split['percent']}% to {split['candidate']}, "
                        f"{split['sent']} sent, {split['kept']} kept]")
        shadow = r.get("broker_shadow")  # ("shadow" is the store's latency of shadow copies)
        if shadow:
            verdict += (f"  [shadow: {shadow['sent']} copied, {shadow['answered']} answered, "
                        f"{shadow['failed']} failed, "
                        f"{shadow['skipped_cap'] + shadow['skipped_down']} skipped]")
        lines.append(f"{r['name']:<16}{r['target']:<18}{mode(r['state']):<13}"
                     f"{ev['samples']:>8}{ev['regressions']:>7}{_pct(ev['diff_rate']):>8}"
                     f"{_pct(ev['noise_rate']):>8}  {verdict}")
    return "\n".join(lines)


def render_report(reports: list[dict[str, Any]]) -> str:
    """The report table: share, diff / noise / error rates, p50 / p99 per runtime."""
    lines = [f"{'MIGRATION':<16}{'STATE':<13}{'PY3 SHARE':>10}{'DIFF%':>8}{'NOISE%':>8}"
             f"{'ERR% py2':>10}{'ERR% py3':>10}{'p50/p99 py2 ms':>18}{'p50/p99 py3 ms':>18}"]
    for r in reports:
        ev, rt = r["evidence"], r["runtimes"]
        p2, p3 = rt.get("py2", {}), rt.get("py3", {})
        lines.append(
            f"{r['name']:<16}{mode(r['state']):<13}{_pct(r['traffic'].get('py3_share')):>10}"
            f"{_pct(ev['diff_rate']):>8}{_pct(ev['noise_rate']):>8}"
            f"{_pct(p2.get('error_rate')):>10}{_pct(p3.get('error_rate')):>10}"
            f"{_ms(p2.get('p50_ms')) + '/' + _ms(p2.get('p99_ms')):>18}"
            f"{_ms(p3.get('p50_ms')) + '/' + _ms(p3.get('p99_ms')):>18}")
    return "\n".join(lines)
