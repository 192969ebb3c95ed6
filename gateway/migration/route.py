"""A migrated HTTP route: the shadow engine's adapter for ``http`` and ``wsgi`` backends.

::

    backend = migrations.wrap_route(cfg, py2, py3, py2_shadow, py3_shadow, services)
    backend(call, start_response)                          # a Backend like any other

The engine (:class:`~gateway.migration.engine.Experiment`) picks the control
and decides about the copy; this adapter speaks WSGI. The client always gets
the control's answer, streamed as it comes; the first ``capture_bytes`` are
kept. When the body is done, and only if a shadow slot is free
(``shadow_concurrency``), a pool thread replays the request (its body read
up front, at most ``capture_bytes``) to the candidate, each copy capped by
``shadow_timeout_ms`` and marked ``X-Shadow: 1``. Only safe methods are copied
unless the migration says ``shadow_safe``. Nothing of that is on the client's
critical path.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway.http.bodies import parse_length, request_body
from gateway.http.context import Call
from gateway.http.problems import Problem
from gateway.http.wsgitypes import Backend, StartResponse
from gateway.migration import compare, samples
from gateway.migration.config import MigrationConfig
from gateway.migration.engine import Experiment, Lab, Trial
from gateway.migration.split import COOKIE
from protocol import errors as perrors

log = logging.getLogger(__name__)

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def status_of(exc: BaseException) -> int:
    """The HTTP status a failed call answers with (500 for the unexpected, 499 client gone)."""
    if isinstance(exc, Problem | perrors.ProtocolError):
        return int(exc.status)
    if isinstance(exc, ConnectionAbortedError):
        return 499
    return 500


@dataclass(frozen=True)
class Copy:
    """What a copy of one request needs: the call, its environ without input, its body."""

    call: Call
    environ: dict[str, Any]
    body: bytes


class HttpSubject:
    """The engine's view of HTTP: replay through the shadow backends, compare answers."""

    def __init__(self, cfg: MigrationConfig, shadows: dict[str, Backend]) -> None:
        self.cfg = cfg
        self.shadows = shadows
        self.rules = compare.Rules(
            ignore_headers=compare.DEFAULT_IGNORED_HEADERS | frozenset(cfg.ignore_headers),
            ignore_pointers=cfg.ignore_pointers, float_rel_tol=compare.FLOAT_REL_TOL)

    def replay(self, runtime: str, role: str,
               request: Copy) -> tuple[compare.HttpAnswer, int, bool]:
        """Send one capped copy to ``runtime``; failures become answers with their status."""
        call, body = request.call, request.body
        env = dict(request.environ)
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
            code = getattr(exc, "code", type(exc).__name__)
            return compare.HttpAnswer(status, (("X-Gateway-Error", str(code)),), b""), status, True
        finally:
            closer = getattr(result, "close", None)
            if closer is not None:
                closer()
        status = head.get("status", 502)
        answer = compare.HttpAnswer(status, head.get("headers", ()), b"".join(chunks), truncated)
        return answer, status, status >= 500

    def differences(self, control: compare.HttpAnswer,
                    other: compare.HttpAnswer) -> list[compare.Difference]:
        """Status, headers and body differences, under the migration's ignore rules."""
        return compare.compare_http(control, other, self.rules)

    def failed(self, answer: compare.HttpAnswer) -> bool:
        """A 5xx (a copy that could not run answers with its failure's status)."""
        return answer.status >= 500

    def sample(self, request: Copy, py2: compare.HttpAnswer,
               py3: compare.HttpAnswer) -> dict[str, Any]:
        """The request and both answers, credentials redacted (gateway.migration.samples)."""
        environ, call = request.environ, request.call
        shown = {"method": environ["REQUEST_METHOD"], "path": call.target.raw_path,
                 "query": call.target.query_string,
                 "headers": [[k[5:].replace("_", "-").title(), str(v)]
                             for k, v in environ.items() if k.startswith("HTTP_")],
                 "body": request.body[:512].decode("utf-8", "replace")}
        return samples.sample(shown, py2, py3, labels=("py2", "py3"))

    def where(self, request: Copy) -> tuple[str, str]:
        """The HTTP method and the raw path."""
        return request.environ["REQUEST_METHOD"], request.call.target.raw_path


class MigratedRoute:
    """A route served by one of two backends, with a shadow copy to the other."""

    def __init__(self, lab: Lab, cfg: MigrationConfig, backends: dict[str, Backend],
                 shadows: dict[str, Backend], services: dict[str, str]) -> None:
        self.cfg = cfg
        self.services = services
        self.backends = backends
        self.shadows = shadows
        self.engine = Experiment(cfg, lab, HttpSubject(cfg, shadows), services)
        self.safe_only = not cfg.shadow_safe

    def close(self) -> None:
        """Release the four backends' pools and sockets."""
        for backend in (*self.backends.values(), *self.shadows.values()):
            closer = getattr(backend, "close", None)
            if closer is not None:
                closer()

    def __call__(self, call: Call, start_response: StartResponse) -> Iterable[bytes]:
        cfg, environ, engine = self.cfg, call.environ, self.engine
        trial = engine.begin(environ)
        control, state = trial.control, trial.state
        # For the access log and the metrics (gateway.metrics): who answers, in which state.
        environ["gateway.runtime"] = control
        environ["gateway.service"] = self.services.get(control, "")
        environ["gateway.migration"] = state.mode if state.mode != "canary" else \
            f"canary{state.percent}"
        if control == "py3" and cfg.py3.startswith(("http://", "https://")):
            environ["gateway.upstream"] = cfg.py3   # an http route's port
        engine.check_control(trial)
        method = environ["REQUEST_METHOD"]
        body: bytes | None = None
        shadow = trial.shadow and (method in SAFE or not self.safe_only)
        if shadow:
            length = parse_length(environ.get("CONTENT_LENGTH"))
            if environ.get("HTTP_TRANSFER_ENCODING") or (length or 0) > cfg.capture_bytes:
                shadow = False
                engine.uncompared(trial, call.request_id, Copy(call, environ, b""),
                                  "the request body is chunked or over "
                                  f"capture_bytes ({cfg.capture_bytes})")
            else:
                reader = request_body(environ, cfg.capture_bytes)
                body = reader.read_all() if reader else b""
                environ["wsgi.input"] = io.BytesIO(body)
        captured: dict[str, Any] = {}
        new_cookie = trial.cookie

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
            result = self.backends[control](call, capturing_start_response)
        except BaseException as exc:
            engine.served(trial, started, status_of(exc), True)
            raise
        return CapturedBody(result, cfg.capture_bytes, lambda data, truncated, failure:
                            self.done(call, trial, started, captured, data, truncated,
                                      failure, body if shadow else None))

    def done(self, call: Call, trial: Trial, started: float, captured: dict[str, Any],
             data: bytes, truncated: bool, failure: BaseException | None,
             body: bytes | None) -> None:
        """The client's answer is complete: record it, then maybe shadow it."""
        engine = self.engine
        status = captured.get("status", 500) if failure is None else status_of(failure)
        # A client that hangs up early is not the runtime's error (499, as nginx logs it).
        error = failure is not None and status != 499
        engine.served(trial, started, status, error)
        if body is None:
            return
        environ = {k: v for k, v in call.environ.items() if k != "wsgi.input"}
        copy = Copy(call, environ, body)
        if failure is not None or "status" not in captured:
            engine.uncompared(trial, call.request_id, copy, "the primary failed before answering")
            return
        if engine.candidate_down(trial):
            engine.uncompared(trial, call.request_id, copy, "the candidate's service is FATAL")
            return
        answer = compare.HttpAnswer(captured["status"], captured["headers"], data, truncated)
        engine.run(trial, call.request_id, copy, answer)


class CapturedBody:
    """The control's body, passed through as it streams, with its first bytes kept.

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
