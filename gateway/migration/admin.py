"""The admin API and the dashboard, served by the front under ``/_gateway/``.

::

    GET  /_gateway/                       the dashboard (HTML; the token goes in #token=...)
    GET  /_gateway/dashboard.js
    GET  /_gateway/api/overview           migrations with their evidence, services, parity
    GET  /_gateway/api/migrations         the same migrations, without services and parity
    GET  /_gateway/api/diffs?name=&limit= recent differences, newest first
    GET  /_gateway/api/audit?name=&limit= the audit log, newest first
    POST /_gateway/api/migrations/<name>/<shadow|canary|promote|rollback|retire>
         {"percent": 10, "force": false, "reason": "..."}

Every ``/_gateway/api/`` call needs ``Authorization: Bearer <token>`` (the
token file of ``[migration]``, 0600), and answers loopback clients only
unless ``allow_remote_admin`` is set. "Loopback" follows the forwarding rule
(:meth:`gateway.http.forwarding.Forwarding.client_chain`): with
``trusted_proxies = N`` the client is read from X-Forwarded-For as forwarding
reads it, and the client and every hop after it must be loopback, so a
same-host reverse proxy does not make every client "loopback". Every answer
forbids framing (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``):
no other page can overlay the dashboard's buttons (clickjacking).
``X-Gateway-Actor`` names who acts; the audit log records it with the client
address. Errors are problem+json:
401, 403, 404 (unknown migration), 409 (``gate_refused`` with the gate's
``reasons``, or ``illegal_transition``), 400 for a malformed body.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.http.bodies import request_body
from gateway.http.config import GatewayHttpConfig
from gateway.http.forwarding import Forwarding
from gateway.http.problems import Problem
from gateway.http.wsgitypes import StartResponse
from gateway.metrics.live import LiveNumbers, MetricsOff
from gateway.migration.config import MigrationConfig
from gateway.migration.lab import Migrations
from gateway.migration.store import GateRefused, StoreError, TransitionError

HERE = Path(__file__).parent
ASSETS = {"/_gateway/": ("dashboard.html", "text/html; charset=utf-8"),
          "/_gateway": ("dashboard.html", "text/html; charset=utf-8"),
          "/_gateway/dashboard.js": ("dashboard.js", "application/javascript; charset=utf-8")}
ACTIONS = ("shadow", "canary", "promote", "rollback", "retire")
MAX_BODY = 16 * 1024
NO_FRAMING = [("X-Frame-Options", "DENY")]
DASHBOARD_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
API_CSP = "default-src 'none'; frame-ancestors 'none'"


class AdminApi:
    """The ``/_gateway/`` handler the front hands unknown internal paths to."""

    def __init__(self, migrations: Migrations, config: GatewayHttpConfig) -> None:
        self.migrations = migrations
        self.settings = migrations.settings
        self.config = config
        self.py2_names = {r.prefix: (r.service or r.upstream) for r in config.routes}
        self.forwarding = Forwarding(config.trusted_proxies, config.via, config.preserve_host)
        self.live: LiveNumbers | None = LiveNumbers()

    def close(self) -> None:
        """Stop the migrations' threads (the front is shutting down)."""
        self.migrations.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse, path: str,
                 rid: str) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if path in ASSETS:
            if method not in ("GET", "HEAD"):
                raise Problem(405, "GET only", headers=[("Allow", "GET, HEAD")])
            name, ctype = ASSETS[path]
            body = (HERE / name).read_bytes()
            return self.answer(start_response, method, body, ctype, rid,
                               [("Content-Security-Policy", DASHBOARD_CSP)])
        if not path.startswith("/_gateway/api/"):
            raise Problem(404, "no such gateway endpoint", code="not_found")
        self.authorise(environ)
        parts = path[len("/_gateway/api/"):].strip("/").split("/")
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        if method == "POST" and len(parts) == 3 and parts[0] == "migrations":
            doc = self.act(parts[1], parts[2], self.read_json(environ), self.actor(environ))
        elif method in ("GET", "HEAD") and len(parts) == 1:
            doc = self.read(parts[0], query)
        else:
            raise Problem(404, "no such admin endpoint", code="not_found")
        data = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()
        return self.answer(start_response, method, data, "application/json", rid,
                           [("Cache-Control", "no-store"), ("Content-Security-Policy", API_CSP)])

    @staticmethod
    def answer(start_response: StartResponse, method: str, body: bytes, ctype: str, rid: str,
               extra: list[tuple[str, str]]) -> list[bytes]:
        """A 200 with ``body``."""
        start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                  ("X-Request-ID", rid), *extra, *NO_FRAMING])
        return [] if method == "HEAD" else [body]

    def authorise(self, environ: dict[str, Any]) -> None:
        """401 without the token, 403 from a non-loopback client (unless allowed)."""
        chain = self.forwarding.client_chain(environ)
        if not self.settings.allow_remote_admin and not all(_loopback(a) for a in chain):
            raise Problem(403, "the admin API answers loopback clients only "
                          "(migration.allow_remote_admin)", code="forbidden")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not self.migrations.trusted(token.strip()):
            raise Problem(401, "the admin API needs Authorization: Bearer <admin token>",
                          code="unauthorized", headers=[("WWW-Authenticate", "Bearer")])

    def actor(self, environ: dict[str, Any]) -> str:
        """Who acts, as the audit log records it (the client address as forwarding reads it)."""
        who = (environ.get("HTTP_X_GATEWAY_ACTOR") or "api")[:64]
        who = "".join(c for c in who if c.isprintable())
        return f"{who} ({self.forwarding.client_address(environ)})"

    @staticmethod
    def read_json(environ: dict[str, Any]) -> dict[str, Any]:
        """The JSON object in the request body ({} when empty)."""
        body = request_body(environ, MAX_BODY)
        raw = body.read_all() if body else b""
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise Problem(400, f"the body is not valid JSON: {exc}"[:200],
                          code="bad_request") from None
        if not isinstance(doc, dict):
            raise Problem(400, "the body must be a JSON object", code="bad_request")
        return doc

    def migration(self, name: str) -> MigrationConfig:
        """The configured migration ``name`` (404 if none)."""
        try:
            return self.settings.get(name)
        except KeyError:
            raise Problem(404, f"no migration {name!r}", code="unknown_migration") from None

    def act(self, name: str, action: str, body: dict[str, Any], actor: str) -> dict[str, Any]:
        """One state change; the new state, or 409 with why not."""
        m = self.migration(name)
        store = self.migrations.store
        reason = body.get("reason", "")
        force = body.get("force", False)
        if not isinstance(reason, str) or not isinstance(force, bool):
            raise Problem(400, "reason must be a string and force a boolean", code="bad_request")
        try:
            if action == "shadow":
                state = store.transition(name, "shadow", actor=actor, reason=reason)
            elif action == "canary":
                percent = body.get("percent")
                if isinstance(percent, bool) or not isinstance(percent, int) \
                        or not 1 <= percent <= 99:
                    raise Problem(400, "canary needs an integer percent from 1 to 99",
                                  code="bad_request")
                state = store.transition(name, "canary", percent, actor=actor, reason=reason)
            elif action == "promote":
                state = store.promote(name, m.thresholds, actor=actor, force=force,
                                      reason=reason)
            elif action == "rollback":
                state = store.rollback(name, actor=actor, reason=reason)
            elif action == "retire":
                state = store.transition(name, "retired", actor=actor, reason=reason)
            else:
                raise Problem(404, f"actions are {', '.join(ACTIONS)}", code="not_found")
        except GateRefused as exc:
            raise Problem(409, str(exc), code="gate_refused",
                          extra={"reasons": list(exc.gate.reasons),
                                 "evidence": exc.gate.evidence.to_json()}) from None
        except TransitionError as exc:
            raise Problem(409, str(exc), code="illegal_transition") from None
        except StoreError as exc:
            raise Problem(503, f"the migration store failed: {exc}", code="store") from None
        except KeyError:  # a store that was down at start gets the state within a second
            raise Problem(503, f"migration {name!r} is not in the store yet",
                          code="store", headers=[("Retry-After", "1")]) from None
        self.migrations.broker.sync()  # a service migration's rollback is immediate
        return {"state": state.to_json()}

    def read(self, what: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """The GET endpoints."""
        name = (query.get("name") or [""])[0] or None
        try:
            limit = max(1, min(500, int((query.get("limit") or ["50"])[0])))
        except ValueError:
            raise Problem(400, "limit must be an integer", code="bad_request") from None
        if name is not None:
            self.migration(name)
        store = self.migrations.store
        try:
            if what == "overview":
                return {"now": self.migrations.clock(), "migrations": self.reports(),
                        "services": self.services(), "parity": self.parity()}
            if what == "migrations":
                return {"now": self.migrations.clock(), "migrations": self.reports()}
            if what == "diffs":
                return {"diffs": store.recent_diffs(name, limit)}
            if what == "audit":
                return {"audit": [e.to_json() for e in store.audit(name, limit)]}
        except StoreError as exc:
            raise Problem(503, f"the migration store failed: {exc}", code="store") from None
        raise Problem(404, "no such admin endpoint", code="not_found")

    def reports(self) -> list[dict[str, Any]]:
        """Every migration's report (state, evidence, gate, traffic, latency) and series.

        A route migration's per-runtime requests, errors, p50/p99 and rate come
        from the front's metrics (:mod:`gateway.metrics.live`), the numbers
        ``/_gateway/metrics`` serves; the evidence (comparisons, regressions),
        shared by every gateway, comes from the store. Without metrics, and for
        RPC migrations (the front counts no RPC method), the store's samples
        stand in (``"source": "store"``).
        """
        store = self.migrations.store
        samples = None
        if self.live is not None and any(m.route for m in self.settings.migrations):
            try:
                samples = self.live.read()
            except MetricsOff:
                self.live = None
        out = []
        splits = self.migrations.broker.live_splits()
        shadows = self.migrations.broker.live_shadows() if splits else {}
        for m in self.settings.migrations:
            report = store.report(m.name, m.thresholds)
            for numbers in report["runtimes"].values():
                numbers["source"] = "store"
            if m.route and self.live is not None and samples is not None:
                report["runtimes"] = self.live.runtimes(m.route, samples)
            report.update(m.to_json())
            report["py2"] = (m.rpc_service if m.kind == "rpc" else m.service
                             if m.kind == "service" else self.py2_names.get(m.route, ""))
            report["series"] = store.series(m.name)
            if m.kind == "service":  # what the broker routes by now (SPEC 2.14)
                report["split"] = splits.get(m.service)
                report["broker_shadow"] = shadows.get(m.service)  # copies the broker makes
            out.append(report)
        return out

    def services(self) -> dict[str, Any]:
        """The supervisor's published service states ({} without one)."""
        return self.migrations.services()

    def parity(self) -> Any:
        """The contract suite's py2/py3 parity table, or None when it was never run."""
        try:
            with open(self.settings.parity_file, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False
