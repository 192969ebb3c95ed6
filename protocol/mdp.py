"""Majordomo framing (ZeroMQ RFC 7, MDP/0.1) and the helpers every side shares.

This module owns the exact frames on the broker socket, the broker-made
error envelope, the heartbeat agreement, the millisecond clock and the
multipart send/receive every side uses. It runs on Python 2.7 and 3.x::

    from protocol import mdp
    frames = mdp.client_request(b"echo", body)          # what a client DEALER sends
    command, rest = mdp.split_worker(frames_from_worker)  # what the broker reads

Frames (``body`` is the envelope: header, payload, byte frames)::

    client -> broker   [b"", b"MDPC01", service, *body]
    broker -> client   [b"", b"MDPC01", service, *body]
    worker -> broker   [b"", b"MDPW01", READY, service, (metadata JSON)]
                       [b"", b"MDPW01", REPLY, client, b"", *body]
                       [b"", b"MDPW01", HEARTBEAT] / [b"", b"MDPW01", DISCONNECT]
    broker -> worker   [b"", b"MDPW01", REQUEST, client, b"", *body]
                       [b"", b"MDPW01", HEARTBEAT, (interval ms, ASCII)]

Right after READY the broker sends a HEARTBEAT carrying its interval; the
worker adopts it, so both sides agree on one interval and on a liveness of
:data:`LIVENESS` missed intervals without configuring each side.
"""
from __future__ import absolute_import, division, print_function

import json
import time

import zmq

from protocol import codec
from protocol._compat import integer_types, text_type
from protocol.errors import EnvelopeError, ProtocolError  # noqa: F401 (type comments)

CLIENT = b"MDPC01"
WORKER = b"MDPW01"

READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"

COMMANDS = {READY: "READY", REQUEST: "REQUEST", REPLY: "REPLY",
            HEARTBEAT: "HEARTBEAT", DISCONNECT: "DISCONNECT"}

LIVENESS = 3
DEFAULT_INTERVAL_MS = 1000

MMI_SERVICE = b"mmi.service"
MMI_STATS = b"mmi.stats"


def now_ms():
    # type: () -> int
    """Wall-clock milliseconds since the Unix epoch (the unit of header deadlines)."""
    return int(time.time() * 1000)


def deadline_in(seconds):
    # type: (float) -> int
    """The absolute deadline, in ms since the epoch, ``seconds`` from now."""
    return int((time.time() + seconds) * 1000)


# ---------------------------------------------------------------- sockets --

# Plain ints: pyzmq's own multipart helpers combine enum flags per frame, which
# costs more than the send itself on a message of eight small frames.
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
NOBLOCK = int(zmq.NOBLOCK)


def send_frames(sock, frames, flags=0):
    # type: (zmq.Socket, list, int) -> None
    """``sock.send_multipart(frames, flags)`` without the per-frame flag arithmetic."""
    send = sock.send
    more = _SNDMORE | flags
    for frame in frames[:-1]:
        send(frame, more)
    send(frames[-1], flags)


_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


def readable(sock):
    # type: (zmq.Socket) -> bool
    """True when a message is queued on ``sock`` (ZMQ_EVENTS; cheaper than a failed read)."""
    return bool(sock.get(_EVENTS) & _POLLIN)  # type: ignore[operator]


def recv_frames(sock, flags=0):
    # type: (zmq.Socket, int) -> list
    """``sock.recv_multipart(flags)`` without the per-frame option lookups."""
    recv, get = sock.recv, sock.get
    frames = [recv(flags)]
    while get(_RCVMORE):
        frames.append(recv(flags))
    return frames


# ------------------------------------------------------------------ frames --

def client_request(service, body):
    # type: (bytes, list) -> list
    """The frames a client DEALER sends to ask ``service`` (RFC 7 section 2.1)."""
    return [b"", CLIENT, service] + list(body)


def worker_ready(service, metadata=None):
    # type: (bytes, dict) -> list
    """READY, optionally with the JSON metadata frame (runtime, pid, credit, methods)."""
    frames = [b"", WORKER, READY, service]
    if metadata is not None:
        frames.append(codec.dumps(metadata))
    return frames


def worker_reply(client, body):
    # type: (bytes, list) -> list
    """A REPLY from a worker for the request that came from ``client``."""
    return [b"", WORKER, REPLY, client, b""] + list(body)


def heartbeat(interval_ms=None):
    # type: (int) -> list
    """A HEARTBEAT; the broker's first one carries its interval as ASCII digits."""
    frames = [b"", WORKER, HEARTBEAT]
    if interval_ms is not None:
        frames.append(str(int(interval_ms)).encode("ascii"))
    return frames


def disconnect():
    # type: () -> list
    """A DISCONNECT (either direction)."""
    return [b"", WORKER, DISCONNECT]


def split_worker(frames):
    # type: (list) -> tuple
    """Check the ``[b"", b"MDPW01", command, ...]`` prefix; return (command, rest)."""
    if len(frames) < 3 or frames[0] != b"" or frames[1] != WORKER:
        raise EnvelopeError(u"frames: not an MDP/0.1 worker message")
    command = frames[2]
    if command not in COMMANDS:
        raise EnvelopeError(u"frames: unknown MDP worker command %r" % (command,))
    return command, frames[3:]


def split_address(rest):
    # type: (list) -> tuple
    """Split ``[client, b"", *body]`` into (client, body)."""
    if len(rest) < 2 or rest[1] != b"":
        raise EnvelopeError(u"frames: REQUEST/REPLY needs [client, empty, body...]")
    return rest[0], rest[2:]


def parse_interval(rest):
    # type: (list) -> int
    """The interval in ms carried by a broker HEARTBEAT, or None when absent or bad."""
    if not rest:
        return None
    try:
        value = int(rest[0].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return value if value > 0 else None


def parse_metadata(rest):
    # type: (list) -> dict
    """The READY metadata object after the service frame; {} when absent or invalid."""
    if len(rest) < 2:
        return {}
    try:
        value = codec.loads(rest[1], (), u"metadata")
    except EnvelopeError:
        return {}
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------- header peeking --

def peek_header(frame):
    # type: (bytes) -> dict
    """Parse only a header frame; None when it is not one of ours (raw MDP bodies)."""
    if not frame or frame[:1] != b"{":
        return None
    try:
        return codec.decode_header(frame)
    except EnvelopeError:
        return None


def routing_fields(frame):
    # type: (bytes) -> tuple
    """(id, deadline, idem) from a request header, or None for a raw MDP body.

    The broker's hot path: one ``json.loads`` and type checks on the three
    fields it routes by, without the full header validation.
    """
    if not frame or frame[:1] != b"{":
        return None
    try:
        header = json.loads(frame.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):  # RuntimeError: nested too deeply
        return None
    if not isinstance(header, dict):
        return None
    rid = header.get(u"id")
    deadline = header.get(u"deadline")
    if not isinstance(rid, text_type) or not rid:
        return None
    if not isinstance(deadline, integer_types) or isinstance(deadline, bool):
        deadline = None
    return rid, deadline, header.get(u"idem") is True


def reply_fields(frame):
    # type: (bytes) -> tuple
    """(id, more) from a reply header with one parse; (None, False) for a raw MDP body."""
    if not frame or frame[:1] != b"{":
        return None, False
    try:
        header = json.loads(frame.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RuntimeError):  # RuntimeError: nested too deeply
        return None, False
    if not isinstance(header, dict):
        return None, False
    rid = header.get(u"id")
    if not isinstance(rid, text_type) or not rid:
        rid = None
    return rid, header.get(u"more") is True


def error_body(request_id, exc):
    # type: (str, ProtocolError) -> list
    """The body of a broker-made error envelope for ``exc`` (same id as the request)."""
    env = codec.Envelope(u"error", id=request_id or codec.new_id(), error=exc.to_wire())
    return codec.encode(env)
