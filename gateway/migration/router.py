"""Serving a migrated route: pick the primary, answer the client, shadow the candidate.

One :class:`Migrations` per front process owns the store, the state cache,
the background recorder and the shadow pools; :meth:`Migrations.wrap_route`
turns a route's two backends (the py2 original and the py3 port) into one::

    migrations = Migrations(settings)                     # after the fork, in the worker
    backend = migrations.wrap_route(cfg, py2_backend, py3_backend, py2_shadow, py3_shadow)
    backend(call, start_response)                          # a Backend like any other
    # an rpc method: gateway.migration.rpc.MigratedMethod(migrations, cfg, shadow_safe=...)

Per request: the state (cached, re-read when the store changed) decides the
primary: py2 in ``py2`` and ``shadow``, py3 in ``py3`` and ``retired``, and in
``canary N%`` the client's sticky bucket (a hash of the ``gw_canary`` cookie,
a header, or the address) below N. A trusted caller pins a runtime with
``X-Gateway-Runtime: py2|py3`` plus ``X-Gateway-Token: <admin token>``.

The client always gets the primary's answer, streamed as it comes; the
first ``capture_bytes`` are kept. When the body is done, and only if a shadow
slot is free (``shadow_concurrency``), a pool thread replays the request to
the candidate, each copy capped by ``shadow_timeout_ms`` and marked
``X-Shadow: 1``, compares, and hands the evidence to the recorder. When the
candidate's answer differs in a way not yet known to be noise, the primary
gets a second copy too: paths that differ between its two answers are noise
(see :meth:`Migrations.wants_noise_check`). Nothing of that is on the client's
critical path; a shadow that cannot run is recorded as ``uncompared``.
"""

from __future__ import annotations

import hmac
import io
import logging
import random
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from http.cookies import CookieError, SimpleCookie
from typing import Any

from gateway.arbiter.statefile import ServiceStates
from gateway.http.bodies import parse_length, request_body
from gateway.http.context import Call
from gateway.http.problems import Problem
from gateway.http.wsgitypes import Backend, StartResponse
from gateway.migration import compare, samples
from gateway.migration.background import Recorder, ShadowPool, ensure_token
from gateway.migration.brokersplits import ServiceMigrations
from gateway.migration.config import MigrationConfig, MigrationSettings
from gateway.migration.startup import first_states
from gateway.migration.store import Comparison, MigrationState, Observation, StoreError
from gateway.migration.stores import StoreUnavailable, open_store
from protocol import errors as perrors

log = logging.getLogger(__name__)

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
COOKIE = "gw_canary"
OTHER = {"py2": "py3", "py3": "py2"}
# Interpreters print the same double differently ("1e-05" vs "1e-5", "1.0" vs "1"), which
# parses back to (nearly) the same value; a few ulps absorb that. A looser tolerance would
# hide real changes: at 1e-9 two epoch timestamps a millisecond apart compare equal.
FLOAT_REL_TOL = 4 * sys.float_info.epsilon
NOISE_REFRESH = 0.05


def status_of(exc: BaseException) -> int:
    """The HTTP status a failed call answers with (500 for the unexpected, 499 client gone)."""
    if isinstance(exc, Problem | perrors.ProtocolError):
        return int(exc.status)
    if isinstance(exc, ConnectionAbortedError):
        return 499
    return 500


class Migrations:
    """Everything migration-related in one front process."""

    def __init__(self, settings: MigrationSettings, clock: Callable[[], float] = time.time,
                 broker: str = "", contracts_dir: str = "") -> None:
        self.settings = settings
        self.clock = clock
        self.store = open_store(settings, clock=clock)
        # Without an answer from the store, the configured states serve until it answers.
        self._states, created = first_states(self.store, settings.migrations, clock)
        self.token = ensure_token(settings.token_file)
        self.broker = ServiceMigrations(settings, self.store, broker, contracts_dir,
                                        None if created else self._states)
        self.broker.sync()
        self.recorder = Recorder(self.store, settings.migrations, self.broker.tend, created)
        self.pools = {m.name: ShadowPool(m.name, m.shadow_concurrency)
                      for m in settings.migrations}
        self._lock = threading.Lock()
        self.noisy: dict[str, set[str]] = {}     # per migration: noise paths seen here
        self.services = ServiceStates(settings.state_file) if settings.state_file else None

    def close(self) -> None:
        """Stop the pools and the recorder (after a last flush)."""
        for pool in self.pools.values():
            pool.close()
        self.recorder.close()
        self.store.close()

    def state(self, name: str) -> MigrationState:
        """The current state of ``name`` (re-read only when the store changed)."""
        if self.store.changed():
            try:
                states = self.store.all()
            except StoreUnavailable as exc:  # said once per outage, not once per thread
                self.store.outage.down(f"migration states not refreshed: {exc}")
            except StoreError as exc:
                # The last known states keep serving; the next change is picked up again.
                log.warning("migration states not refreshed: %s", exc)
            else:
                with self._lock:
                    # A state missing from the store (a Redis that restarted empty) keeps
                    # serving as last known until the recorder recreates it.
                    self._states = {**self._states, **states}
        return self._states[name]

    def fatal(self, service: str) -> bool:
        """True when the arbiter gave up on ``service`` (its state file says FATAL)."""
        return bool(service) and self.services is not None and self.services.fatal(service)

    def check_fatal(self, service: str) -> None:
        """Answer 503 at once when the chosen side's service is FATAL (as the front's gate does
        for routes that are not migrating)."""
        if self.fatal(service):
            raise Problem(503, f"service {service!r} is down (FATAL)", code="unavailable",
                          headers=[("Retry-After", "5")])

    def trusted(self, token: str | None) -> bool:
        """True when ``token`` is the admin token (constant-time)."""
        return bool(token) and hmac.compare_digest((token or "").encode(), self.token.encode())

    def choose(self, cfg: MigrationConfig, environ: dict[str, Any],
               state: MigrationState) -> tuple[str, str | None]:
        """(the primary runtime, a new canary cookie to set or None) for one request."""
        pin = environ.get("gateway.pin")
        if pin and pin[0] in OTHER and self.trusted(pin[1]):
            return pin[0], None
        if state.mode in ("py2", "shadow"):
            return "py2", None
        if state.mode in ("py3", "retired"):
            return "py3", None
        key, new_cookie = sticky_key(cfg.sticky, environ)
        bucket = zlib.crc32(f"{cfg.name}:{key}".encode()) % 100
        return ("py3" if bucket < state.percent else "py2"), new_cookie

    @staticmethod
    def shadowing(cfg: MigrationConfig, state: MigrationState) -> bool:
        """True when the state sends copies to the candidate (and the sample says so)."""
        if state.mode not in ("shadow", "canary", "py3"):
            return False
        return cfg.sample >= 1.0 or random.random() < cfg.sample

    def wants_noise_check(self, cfg: MigrationConfig, paths: set[str]) -> bool:
        """Whether to send the primary a second copy for this comparison.

        Only a difference needs explaining: when the candidate agrees, no copy
        is sent. A difference whose every path this process already saw as
        noise is re-checked only now and then (``NOISE_REFRESH``), which keeps
        the learned noise fresh without doubling the primary's load.
        """
        if not cfg.noise or not paths:
            return False
        known = self.noisy.setdefault(cfg.name, set())
        return not paths <= known or random.random() < NOISE_REFRESH

    def learn_noise(self, cfg: MigrationConfig, paths: set[str]) -> None:
        """Remember paths that differed between two answers of the primary."""
        self.noisy.setdefault(cfg.name, set()).update(paths)

    def observe(self, cfg: MigrationConfig, runtime: str, role: str, started: float,
                status: int, error: bool) -> None:
        """Queue one observation of a request served (or shadowed) by ``runtime``."""
        self.recorder.add(Observation(
            name=cfg.name, at=self.clock(), runtime=runtime, role=role,
            ms=(time.monotonic() - started) * 1000.0, status=status,
            error=error or status >= 500))

    def wrap_route(self, cfg: MigrationConfig, py2: Backend, py3: Backend,
                   py2_shadow: Backend, py3_shadow: Backend,
                   services: dict[str, str] | None = None) -> MigratedRoute:
        """The backend of a migrated route (see :class:`MigratedRoute`).

        ``services`` names each side's supervised service, if any, for the FATAL check.
        """
        return MigratedRoute(self, cfg, {"py2": py2, "py3": py3},
                             {"py2": py2_shadow, "py3": py3_shadow}, services or {})


def sticky_key(sticky: str, environ: dict[str, Any]) -> tuple[str, str | None]:
    """The client's canary key, and a fresh ``gw_canary`` value when one must be set."""
    kind, _, name = sticky.partition(":")
    if kind == "header":
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
        if value:
            return f"h:{value}", None
    elif kind == "cookie":
        cookie = _cookie(environ, name or COOKIE)
        if cookie:
            return f"c:{cookie}", None
        if not name:
            fresh = secrets.token_hex(8)
            return f"c:{fresh}", fresh
    return f"a:{environ.get('REMOTE_ADDR', '')}", None


def _cookie(environ: dict[str, Any], name: str) -> str:
    raw = environ.get("HTTP_COOKIE")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""


class MigratedRoute:
    """A route served by one of two backends, with a shadow copy to the other."""

    def __init__(self, owner: Migrations, cfg: MigrationConfig, backends: dict[str, Backend],
                 shadows: dict[str, Backend], services: dict[str, str]) -> None:
        self.owner = owner
        self.cfg = cfg
        self.services = services
        self.backends = backends
        self.shadows = shadows
        self.rules = compare.Rules(
            ignore_headers=compare.DEFAULT_IGNORED_HEADERS | frozenset(cfg.ignore_headers),
            ignore_pointers=cfg.ignore_pointers, float_rel_tol=FLOAT_REL_TOL)
        self.safe_only = not cfg.shadow_safe

    def close(self) -> None:
        """Release the four backends' pools and sockets."""
        for backend in (*self.backends.values(), *self.shadows.values()):
            closer = getattr(backend, "close", None)
            if closer is not None:
                closer()

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        owner, cfg, environ = self.owner, self.cfg, call.environ
        state = owner.state(cfg.name)      # read once: choice and shadowing agree
        primary, new_cookie = owner.choose(cfg, environ, state)
        # For the access log and the metrics (gateway.metrics): who answers, in which state.
        environ["gateway.runtime"] = primary
        environ["gateway.service"] = self.services.get(primary, "")
        environ["gateway.migration"] = state.mode if state.mode != "canary" else \
            f"canary{state.percent}"
        if primary == "py3" and cfg.py3.startswith(("http://", "https://")):
            environ["gateway.upstream"] = cfg.py3   # an http route's port
        owner.check_fatal(self.services.get(primary, ""))
        method = environ["REQUEST_METHOD"]
        body: bytes | None = None
        shadow = owner.shadowing(cfg, state) and (method in SAFE or not self.safe_only)
        if shadow:
            length = parse_length(environ.get("CONTENT_LENGTH"))
            if environ.get("HTTP_TRANSFER_ENCODING") or (length or 0) > cfg.capture_bytes:
                shadow = False
                self.uncompared(call, primary, "the request body is chunked or over "
                                f"capture_bytes ({cfg.capture_bytes})")
            else:
                reader = request_body(environ, cfg.capture_bytes)
                body = reader.read_all() if reader else b""
                environ["wsgi.input"] = io.BytesIO(body)
        captured: dict[str, Any] = {}

        def capturing_start_response(status: str, headers: list[tuple[str, str]],
                                     exc_info: Any = None) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = tuple(headers)
            if new_cookie is not None:
                headers = [*headers, ("Set-Cookie", f"{COOKIE}={new_cookie}; Path=/; "
                                      "HttpOnly; SameSite=Lax; Max-Age=31536000")]
            return start_response(status, headers, exc_info)

        started = time.monotonic()
        try:
            result = self.backends[primary](call, capturing_start_response)
        except BaseException as exc:
            owner.observe(cfg, primary, "serve", started, status_of(exc), True)
            raise
        return CapturedBody(result, cfg.capture_bytes, lambda data, truncated, failure:
                            self.done(call, primary, started, captured, data, truncated,
                                      failure, body if shadow else None))

    def uncompared(self, call: Call, primary: str, why: str) -> None:
        """Record that a request that should have been compared was not."""
        self.owner.recorder.add(Comparison(
            name=self.cfg.name, at=self.owner.clock(), rid=call.request_id, primary=primary,
            outcome="uncompared", paths=(), noise_paths=(), noise_checked=False, fields=[],
            sample={"reason": why}, method=call.environ["REQUEST_METHOD"],
            path=call.target.raw_path))

    def done(self, call: Call, primary: str, started: float, captured: dict[str, Any],
             data: bytes, truncated: bool, failure: BaseException | None,
             body: bytes | None) -> None:
        """The client's answer is complete: record it, then maybe shadow it."""
        status = captured.get("status", 500) if failure is None else status_of(failure)
        # A client that hangs up early is not the runtime's error (499, as nginx logs it).
        error = failure is not None and status != 499
        self.owner.observe(self.cfg, primary, "serve", started, status, error)
        if body is None:
            return
        if failure is not None or "status" not in captured:
            self.uncompared(call, primary, "the primary failed before answering")
            return
        if self.owner.fatal(self.services.get(OTHER[primary], "")):
            self.uncompared(call, primary, "the candidate's service is FATAL")
            return
        answer = compare.HttpAnswer(captured["status"], captured["headers"], data, truncated)
        environ = {k: v for k, v in call.environ.items() if k != "wsgi.input"}
        if not self.owner.pools[self.cfg.name].submit(
                lambda: self.shadow(call, environ, primary, answer, body)):
            self.uncompared(call, primary, "shadow_concurrency reached: copy skipped")

    def replay(self, runtime: str, role: str, call: Call, environ: dict[str, Any],
               body: bytes) -> compare.HttpAnswer:
        """Send one capped copy to ``runtime``; failures become answers with their status."""
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        env["gateway.shadow"] = True      # X-Shadow: 1, and the envelope's shadow flag
        if body or "CONTENT_LENGTH" in env:
            env["CONTENT_LENGTH"] = str(len(body))
        head: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            head["status"] = int(status.split(" ", 1)[0])
            head["headers"] = tuple(headers)
            return lambda _data: None

        cap = self.cfg.capture_bytes
        deadline = time.monotonic() + self.cfg.shadow_timeout_ms / 1000.0
        started = time.monotonic()
        chunks: list[bytes] = []
        size = 0
        truncated = False
        rid = f"{call.request_id}.{role}"
        result: Iterable[bytes] | None = None
        try:
            result = self.shadows[runtime](Call(env, rid, call.target, call.match),
                                           start_response)
            for chunk in result:
                if size < cap:
                    chunks.append(chunk[:cap - size])
                size += len(chunk)
                if size > cap:
                    truncated = True
                    break
                if time.monotonic() > deadline:
                    raise perrors.Timeout("the shadow copy passed shadow_timeout_ms")
        except Exception as exc:
            status = status_of(exc)
            self.owner.observe(self.cfg, runtime, role, started, status, True)
            code = getattr(exc, "code", type(exc).__name__)
            return compare.HttpAnswer(status, (("X-Gateway-Error", str(code)),), b"")
        finally:
            closer = getattr(result, "close", None)
            if closer is not None:
                closer()
        status = head.get("status", 502)
        self.owner.observe(self.cfg, runtime, role, started, status, status >= 500)
        return compare.HttpAnswer(status, head.get("headers", ()), b"".join(chunks), truncated)

    def shadow(self, call: Call, environ: dict[str, Any], primary: str,
               answer: compare.HttpAnswer, body: bytes) -> None:
        """The shadow job: candidate copy, noise copy, comparison, evidence."""
        cfg, owner = self.cfg, self.owner
        candidate = OTHER[primary]
        other = self.replay(candidate, "shadow", call, environ, body)
        diffs = compare.compare_http(answer, other, self.rules)
        paths = {compare.normalise_path(d.path) for d in diffs}
        noise = None
        noise_paths: set[str] = set()
        if owner.wants_noise_check(cfg, paths):
            noise = self.replay(primary, "noise", call, environ, body)
            noise_paths = {compare.normalise_path(d.path)
                           for d in compare.compare_http(answer, noise, self.rules)}
            owner.learn_noise(cfg, noise_paths)
        if other.status >= 500 > answer.status:
            outcome = "candidate_error"
        else:
            outcome = "diff" if diffs else "same"
        sample: dict[str, Any] = {}
        if outcome != "same":     # samples cost front CPU: only differences keep one
            request = {"method": environ["REQUEST_METHOD"], "path": call.target.raw_path,
                       "query": call.target.query_string,
                       "headers": [[k[5:].replace("_", "-").title(), str(v)]
                                   for k, v in environ.items() if k.startswith("HTTP_")],
                       "body": body[:512].decode("utf-8", "replace")}
            labelled = {primary: answer, candidate: other}
            sample = samples.sample(request, labelled["py2"], labelled["py3"],
                                    labels=("py2", "py3"))
        owner.recorder.add(Comparison(
            name=cfg.name, at=owner.clock(), rid=call.request_id, primary=primary,
            outcome=outcome, paths=tuple(sorted(paths)), noise_paths=tuple(sorted(noise_paths)),
            noise_checked=noise is not None, fields=[d.to_json() for d in diffs[:50]],
            sample=sample, method=environ["REQUEST_METHOD"], path=call.target.raw_path))


class CapturedBody:
    """The primary's body, passed through as it streams, with its first bytes kept.

    ``on_done(data, truncated, failure)`` runs once, when the body is
    exhausted, fails, or is closed early (then as a failure: the client left).
    """

    def __init__(self, result: Iterable[bytes], cap: int,
                 on_done: Callable[[bytes, bool, BaseException | None], None]) -> None:
        self._result = result
        self._cap = cap
        self._chunks: list[bytes] = []
        self._size = 0
        self._truncated = False
        self._on_done: Callable[[bytes, bool, BaseException | None], None] | None = on_done

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._result:
                if self._size < self._cap:
                    self._chunks.append(chunk[:self._cap - self._size])
                elif chunk:
                    self._truncated = True
                self._size += len(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    def _finish(self, failure: BaseException | None) -> None:
        on_done, self._on_done = self._on_done, None
        if on_done is not None:
            try:
                on_done(b"".join(self._chunks), self._truncated or self._size > self._cap,
                        failure)
            except Exception:
                log.exception("recording a migrated request failed")

    def close(self) -> None:
        """Close the wrapped body; a body never finished counts as a failure."""
        try:
            closer = getattr(self._result, "close", None)
            if closer is not None:
                closer()
        finally:
            if self._on_done is not None:
                self._finish(ConnectionAbortedError("the client went away"))
