"""Host any WSGI app behind the broker: HTTP over ZeroMQ, worker side (SPEC "HTTP over ZeroMQ").

The gateway ships each request as an envelope of kind ``http`` whose header
``http`` object carries the WSGI environ contract; this module rebuilds the
environ, runs the app and answers ``http-response`` (+ ``http-body`` chunks
when the body streams). Runs unchanged on Python 2.7 and 3.x::

    python -m protocol.wsgi --broker ipc:///tmp/gw/broker.ipc --service legacy myapp:app

    host = WsgiHost(app)
    for reply in host.handle(request_envelope):   # what the worker sends back
        ...

Each chunk goes out as soon as the app yields it (the worker runs the rest of
a streamed body in a thread of its own and joins chunks that are ready
together); a cancel closes the app's iterable before its next chunk.

The app cannot tell it is not behind an ordinary WSGI server: SCRIPT_NAME
is the mount, PATH_INFO the rest (bytes-as-latin-1 on 3.x, bytes on 2.7, as
PEP 3333 says), headers become HTTP_* keys, the body is ``wsgi.input``.
"""
from __future__ import absolute_import, division, print_function

import argparse
import importlib
import io
import logging
import sys
import traceback

from protocol import codec
from protocol._compat import PY2, binary_type, text_type
from protocol.errors import EnvelopeError, RemoteError, Timeout

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Dict, Iterator, List, Optional  # noqa: F401

log = logging.getLogger(__name__)

_SPECIAL = {u"CONTENT-TYPE": "CONTENT_TYPE", u"CONTENT-LENGTH": None}


def _native(value):
    # type: (str) -> str
    """A WSGI "native string" from latin-1-able wire text."""
    if PY2:
        return value.encode("latin-1")  # type: ignore[return-value]
    return value


def _native_path(value):
    # type: (str) -> str
    """A decoded path (UTF-8 text on the wire) as PEP 3333 wants it."""
    raw = value.encode("utf-8")
    if PY2:
        return raw  # type: ignore[return-value]
    return raw.decode("latin-1")


def _wire_text(value):
    # type: (object) -> str
    """A header name or value the app gave, as wire text (latin-1, as WSGI does)."""
    if isinstance(value, text_type):
        return value
    if isinstance(value, binary_type):
        return value.decode("latin-1")
    return text_type(value)


_KEYS = {}  # type: Dict[str, Optional[str]]
_UNSEEN = object()  # type: Any


def _environ_key(name):
    # type: (str) -> Optional[str]
    """The environ key of a header name (None: not carried), remembered for the next request."""
    upper = name.upper()
    if u"_" in upper:
        key = None  # HTTP_X_A would be ambiguous between X-A and X_A
    else:
        key = _SPECIAL.get(upper, "HTTP_" + str(upper.replace(u"-", u"_")))
    if len(_KEYS) < 1024:  # bounded: names are the client's choice
        _KEYS[name] = key
    return key


def build_environ(http, body, errors=None):
    # type: (Dict[str, Any], bytes, Any) -> Dict[str, Any]
    """The WSGI environ of one shipped request (``http`` is the header's http object)."""
    try:
        method = http[u"method"]
        query = http.get(u"query_string", u"")
        raw_path = http.get(u"raw_path", u"")
        environ = {
            "REQUEST_METHOD": _native(method),
            "SCRIPT_NAME": _native_path(http.get(u"script_name", u"")),
            "PATH_INFO": _native_path(http[u"path_info"]),
            "QUERY_STRING": _native(query),
            "SERVER_NAME": _native(http.get(u"server_name", u"localhost")),
            "SERVER_PORT": _native(http.get(u"server_port", u"80")),
            "SERVER_PROTOCOL": _native(http.get(u"protocol", u"HTTP/1.1")),
            "REMOTE_ADDR": _native(http.get(u"remote_addr", u"")),
            "REMOTE_PORT": _native(http.get(u"remote_port", u"")),
            "RAW_URI": _native(raw_path + (u"?" + query if query else u"")),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": _native(http.get(u"scheme", u"http")),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": errors or sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }  # type: Dict[str, Any]
        environ["REQUEST_URI"] = environ["RAW_URI"]
        keys = _KEYS
        for pair in http.get(u"headers", ()):
            name, value = pair
            found = keys.get(name, _UNSEEN) if type(name) is text_type else _UNSEEN
            key = _environ_key(name) if found is _UNSEEN else found  # type: Optional[str]
            if key is None:
                continue
            value = _native(value)
            if key in environ:
                environ[key] = environ[key] + _native(u",") + value
            else:
                environ[key] = value
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EnvelopeError(u"header.http: not a valid request (%s)" % (exc,))
    if body or method not in (u"GET", u"HEAD", u"DELETE", u"OPTIONS", u"TRACE"):
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


class WsgiHost(object):
    """Runs one WSGI app for envelopes of kind ``http``."""

    def __init__(self, app, now_ms=None):
        # type: (Any, Any) -> None
        self.app = app
        self._now_ms = now_ms

    def handle(self, env):
        # type: (codec.Envelope) -> Iterator[codec.Envelope]
        """Yield the reply envelopes of one request: http-response, then http-body chunks."""
        for part in self.parts(env):
            if isinstance(part, binary_type):
                part = codec.Envelope(u"http-body", id=env.id, rid=env.rid, more=True,
                                      payload=codec.Bytes(part))
            yield part

    # Every part says itself whether more follow, so the worker sends each chunk the
    # moment the app yields it (SPEC 6.3) instead of waiting to see whether it was the last.
    handle.marks_more = True  # type: ignore[attr-defined]

    def parts(self, env):
        # type: (codec.Envelope) -> Iterator[Any]
        """:meth:`handle` for the worker: a middle body chunk is yielded as plain bytes.

        A chunk stands for an ``http-body`` part with ``more``; the worker
        builds the envelopes when it sends, joining chunks that are ready
        together, so an app yielding many tiny chunks does not pay for an
        envelope per chunk.
        """
        if env.kind != u"http" or not isinstance(env.http, dict):
            yield _error(env, EnvelopeError(u"kind: expected an http envelope"))
            return
        if env.deadline is not None and self._now_ms is not None \
                and self._now_ms() > env.deadline:
            yield _error(env, Timeout(u"the deadline passed before the app ran"))
            return
        body = env.payload if isinstance(env.payload, binary_type) else b""
        try:
            environ = build_environ(env.http, body)
        except EnvelopeError as exc:
            yield _error(env, exc)
            return
        head = env.http.get(u"method") == u"HEAD"
        state = {}  # type: Dict[str, Any]
        written = []  # type: List[bytes]

        def start_response(status, headers, exc_info=None):
            # type: (str, List[Any], Any) -> Any
            if exc_info and state.get("sent"):
                raise exc_info[1]
            state["status"] = status
            state["headers"] = headers
            return written.append

        try:
            result = self.app(environ, start_response)
        except Exception as exc:  # the app's failure becomes an error envelope
            yield _remote(env, exc)
            return
        try:
            for reply in self._replies(env, result, state, written, head):
                yield reply
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    parts.marks_more = True  # type: ignore[attr-defined]

    def _replies(self, env, result, state, written, head):
        # type: (codec.Envelope, Any, Dict[str, Any], List[bytes], bool) -> Iterator[Any]
        chunks = iter(result)
        first = b"".join(written)
        del written[:]
        try:
            while not first:
                first = next(chunks)
                if "status" not in state:
                    raise RuntimeError("the app yielded before calling start_response")
        except StopIteration:
            pass
        except Exception as exc:
            yield _remote(env, exc)
            return
        if "status" not in state:
            yield _remote(env, RuntimeError("the app never called start_response"))
            return
        if type(result) in (list, tuple) and not written:
            # The whole body is already in hand: one reply, not a stream ending in an
            # empty http-body message (an extra hop through the broker).
            try:
                rest = list(chunks)
                if rest:
                    first = b"".join([first] + rest)
            except Exception as exc:  # a non-bytes chunk: the app's fault, as in a stream
                yield _remote(env, exc)
                return
            response = _response(env, state, first if not head else b"")
            state["sent"] = True
            yield response
            return
        response = _response(env, state, first if not head else b"")
        length = [v for k, v in state["headers"] if _wire_text(k).lower() == u"content-length"]
        if not first or (length and str(length[0]).strip() == str(len(first))):
            state["sent"] = True
            yield response
            return
        response.more = True
        state["sent"] = True
        yield response
        try:
            for chunk in chunks:
                if written:
                    chunk = b"".join(written) + chunk
                    del written[:]
                if not isinstance(chunk, binary_type):
                    if not isinstance(chunk, bytearray):
                        raise TypeError("the app yielded %s, not bytes" % (type(chunk).__name__,))
                    chunk = binary_type(chunk)
                if chunk and not head:
                    yield chunk
        except Exception as exc:
            yield _remote(env, exc)
            return
        yield codec.Envelope(u"http-body", id=env.id, rid=env.rid,
                             payload=codec.Bytes(b"".join(written)))


def _response(env, state, chunk):
    # type: (codec.Envelope, Dict[str, Any], bytes) -> codec.Envelope
    code, _, reason = _wire_text(state["status"]).partition(u" ")
    try:
        status = int(code)
        if not 100 <= status <= 999:
            raise ValueError(code)
    except ValueError:
        # The app's fault, not the request's: a RemoteError (500), never an envelope error (400).
        raise RemoteError(u"the app gave a bad status %r" % (state["status"],),
                          type=u"ValueError")
    headers = [[_wire_text(k), _wire_text(v)] for k, v in state["headers"]]
    return codec.Envelope(u"http-response", id=env.id, rid=env.rid,
                          http={u"status": status, u"reason": reason, u"headers": headers},
                          payload=codec.Bytes(chunk))


def _error(env, exc):
    # type: (codec.Envelope, Any) -> codec.Envelope
    return codec.Envelope(u"error", id=env.id, rid=env.rid, error=exc.to_wire())


def _remote(env, exc):
    # type: (codec.Envelope, BaseException) -> codec.Envelope
    log.error("WSGI app failed on %s", env.id, exc_info=True)
    err = RemoteError(u"%s" % (exc,), type=text_type(type(exc).__name__),
                      traceback=text_type(traceback.format_exc()))
    return _error(env, err)


def load_app(spec):
    # type: (str) -> Any
    """Import ``module:attribute`` and return the attribute (the WSGI app)."""
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)  # type: Any
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


def main(argv=None):
    # type: (Optional[List[str]]) -> int
    """``python -m protocol.wsgi --broker ENDPOINT --service NAME module:app``."""
    from protocol import logcontext
    from protocol.mdp import now_ms
    from protocol.multiworker import add_broker_arguments, serve_from_args

    parser = argparse.ArgumentParser(prog="python -m protocol.wsgi")
    add_broker_arguments(parser)
    parser.add_argument("--service", required=True, help="the service name to serve")
    parser.add_argument("app", help="module:attribute of the WSGI app")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logcontext.install()  # each line about a request names its rid and trace id
    host = WsgiHost(load_app(args.app), now_ms=now_ms)
    # SIGTERM drains: finish in-flight work, then DISCONNECT (on every broker)
    return serve_from_args(parser, args, envelope_handler=host.parts)


if __name__ == "__main__":
    sys.exit(main())
