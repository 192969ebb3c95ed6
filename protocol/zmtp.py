"""ZMTP 3.x framing for a connecting DEALER: greeting, commands and frames (2.7 and 3.x).

ZeroMQ's wire protocol is ZMTP 3.0 (RFC 23) and 3.1 (RFC 37); this module
holds what a connecting DEALER with the NULL mechanism needs of it, with no
I/O, so that the gateway's front (from its event loop) and a worker (on its
one thread, :mod:`protocol.zmtplink`) can speak it without a libzmq socket::

    out = GREETING + READY_DEALER
    decoder = Decoder(max_message=1 << 20)
    for item in decoder.feed(data):          # any slice of the stream, split anywhere
        if type(item) is list: ...           # one whole multipart message
        elif type(item) is Command: ...      # READY, PING, ERROR, ...
    wire = encode([b"", b"MDPC01", b"echo", body])   # one bytes object, one write

On the wire (RFC 23 section 3): a 64-byte greeting (signature ``FF`` 8 pad
``7F``, version major and minor, a 20-byte mechanism name, as-server, 31
zero bytes), then frames. A frame is a flags byte (bit 0 MORE, bit 1 LONG,
bit 2 COMMAND; the other bits are reserved and zero), a size (one byte, or
eight in network order when LONG) and the body. A command's body is a
one-byte name length, the name and its data; READY's data is properties
(a one-byte name length, the name, a four-byte value length, the value).

Anything else from the peer raises :class:`protocol.errors.ZmtpError`; the
caller closes the connection.
"""
from __future__ import absolute_import, division, print_function

import collections
import struct

from protocol.errors import ZmtpError

MYPY = False
if MYPY:  # pragma: no cover - type names for the type comments only
    from typing import Any, Dict, List, Tuple  # noqa: F401

GREETING_SIZE = 64
# libzmq puts the identity length + 1 (ZMTP 1.0's identity frame) in the padding; RFC 23
# says the padding is ignored, and mimicking libzmq keeps very old peers happy too.
SIGNATURE = b"\xff" + b"\x00" * 7 + b"\x01\x7f"
GREETING = (SIGNATURE + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
assert len(GREETING) == GREETING_SIZE

MORE, LONG, COMMAND = 0x01, 0x02, 0x04
_RESERVED = 0xF8
# Sockets a DEALER may talk to (RFC 28 and libzmq's mechanism_t::check_socket_type).
PEERS_OF_DEALER = frozenset([b"ROUTER", b"DEALER", b"REP"])

_BYTE = struct.Struct("!B")
_HEAD = struct.Struct("!BB")        # flags, short size
_LONG_SIZE = struct.Struct("!Q")
_LONG_HEAD = struct.Struct("!BQ")
_U32 = struct.Struct("!I")

# The two header bytes of every short frame, built once: encoding a frame is then a list
# lookup instead of a pack() call.
_SHORT_LAST = [_HEAD.pack(0, n) for n in range(256)]
_SHORT_MORE = [_HEAD.pack(MORE, n) for n in range(256)]



class Command(collections.namedtuple("Command", "name data")):
    """A command frame from the peer: its name and the data after the name."""

    __slots__ = ()


class Greeting(collections.namedtuple("Greeting", "major minor mechanism")):
    """The peer's greeting: its version and security mechanism."""

    __slots__ = ()



def encode(frames):
    # type: (List[bytes]) -> bytes
    """One multipart message as a single bytes object (MORE on all but the last frame)."""
    out = []  # type: List[bytes]
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        n = len(frame)
        if n < 256:
            out.append(_SHORT_MORE[n] if i < last else _SHORT_LAST[n])
        else:
            out.append(_LONG_HEAD.pack(LONG | MORE if i < last else LONG, n))
        out.append(frame)
    return b"".join(out)


def command(name, data=b""):
    # type: (bytes, bytes) -> bytes
    """One command frame (RFC 23 section 3.2)."""
    body = _BYTE.pack(len(name)) + name + data
    n = len(body)
    if n < 256:
        return _HEAD.pack(COMMAND, n) + body
    return _LONG_HEAD.pack(COMMAND | LONG, n) + body


def properties(props):
    # type: (Any) -> bytes
    """READY's metadata: name length (1 byte), name, value length (4 bytes), value.

    ``props`` is a mapping or a list of (name, value) pairs, sent in that order.
    """
    pairs = props.items() if hasattr(props, "items") else props
    return b"".join(_BYTE.pack(len(k)) + k + _U32.pack(len(v)) + v for k, v in pairs)


# What a connecting DEALER sends right behind its greeting (RFC 23 section 3.3).
READY_DEALER = command(b"READY", properties([(b"Socket-Type", b"DEALER"), (b"Identity", b"")]))


def parse_properties(data):
    # type: (bytes) -> Dict[bytes, bytes]
    """The inverse of :func:`properties`; names are case-insensitive (RFC 23), so lowered."""
    props = {}  # type: Dict[bytes, bytes]
    pos, n = 0, len(data)
    while pos < n:
        size = _BYTE.unpack_from(data, pos)[0]
        name = data[pos + 1:pos + 1 + size]
        pos += 1 + size
        if len(name) != size or not size or pos + 4 > n:
            raise ZmtpError(u"a READY property is truncated")
        vsize = _U32.unpack_from(data, pos)[0]
        pos += 4
        if pos + vsize > n:
            raise ZmtpError(u"the READY property %r is truncated" % (name,))
        props[name.lower()] = data[pos:pos + vsize]
        pos += vsize
    return props


def check_greeting(data):
    # type: (bytes) -> None
    """Refuse a peer as early as its first bytes allow (any prefix of a greeting)."""
    if data[:1] and data[:1] != b"\xff":
        raise ZmtpError(u"the peer is not a ZMTP peer: it sent %r" % (bytes(data[:16]),))
    if len(data) > 9 and not _BYTE.unpack_from(data, 9)[0] & 0x01:
        raise ZmtpError(u"the peer speaks ZMTP 1.0; ZMTP 3.x is needed")
    if len(data) > 10 and _BYTE.unpack_from(data, 10)[0] < 3:
        raise ZmtpError(u"the peer speaks ZMTP %d.x; ZMTP 3.x is needed"
                        % (_BYTE.unpack_from(data, 10)[0],))


def parse_greeting(data):
    # type: (bytes) -> Greeting
    """The peer's whole 64-byte greeting; ZmtpError unless 3.x with the NULL mechanism."""
    check_greeting(data)
    mechanism = bytes(data[12:32]).rstrip(b"\x00")
    if mechanism != b"NULL":
        raise ZmtpError(u"the peer wants the %r mechanism; this link speaks NULL" % (mechanism,))
    major, minor = _HEAD.unpack_from(data, 10)
    return Greeting(major, minor, mechanism)


class Decoder(object):
    """Incremental ZMTP decoder: feed it the stream in any slices, get whole items back.

    ``feed`` returns the greeting (once), commands and whole multipart
    messages (lists of frames) completed by that slice. A slice that ends
    mid-frame is kept, as a list of chunks joined once the frame is whole,
    so a large frame read in many small pieces is copied once, not once per
    piece. A frame or message larger than ``max_message`` bytes is refused
    as soon as its size is read, before its body arrives.
    """

    __slots__ = ("chunks", "frames", "greeted", "have", "max_message", "need", "size")

    def __init__(self, max_message):
        # type: (int) -> None
        self.max_message = max_message
        self.greeted = False
        self.chunks = []  # type: List[bytes]  # an incomplete tail of the stream
        self.have = 0     # bytes in chunks
        self.need = 0     # bytes chunks must hold before parsing can go on
        self.frames = []  # type: List[bytes]  # the message being assembled
        self.size = 0     # its bytes so far

    def feed(self, data):
        # type: (bytes) -> List[Any]
        """Items completed by ``data``; ZmtpError when the peer broke the protocol."""
        if self.chunks:
            self.chunks.append(data)
            self.have += len(data)
            if self.have < self.need:
                return []
            data = b"".join(self.chunks)
            self.chunks = []
        out = []  # type: List[Any]
        pos, n = 0, len(data)
        if not self.greeted:
            if n < GREETING_SIZE:
                check_greeting(data)
                self._keep(data, GREETING_SIZE)
                return out
            out.append(parse_greeting(data[:GREETING_SIZE]))
            self.greeted = True
            pos = GREETING_SIZE
        frames = self.frames
        head = _HEAD.unpack_from
        while pos < n:
            if n - pos < 2:
                break
            flags, size = head(data, pos)
            if flags & _RESERVED:
                raise ZmtpError(u"a frame has reserved flag bits set (%#04x)" % (flags,))
            if flags & LONG:
                if n - pos < 9:
                    break
                size = _LONG_SIZE.unpack_from(data, pos + 1)[0]
                start = pos + 9
            else:
                start = pos + 2
            if size > self.max_message - self.size:
                raise ZmtpError(u"a frame of %d bytes passes the link's cap of %d bytes per "
                                u"message" % (size, self.max_message))
            end = start + size
            if end > n:
                break
            if flags & COMMAND:
                # A command may come between the frames of a message: libzmq's engine sends
                # a heartbeat PING when its timer fires, wherever the message stands.
                if flags & MORE:
                    raise ZmtpError(u"a command frame with the MORE flag")
                out.append(_command(data[start:end]))
            else:
                frames.append(data[start:end])
                if flags & MORE:
                    self.size += size
                else:
                    out.append(frames)
                    frames = self.frames = []
                    self.size = 0
            pos = end
        if pos < n:
            rest = data[pos:]
            self._keep(rest, _needed(rest))
        return out

    def _keep(self, rest, need):
        # type: (bytes, int) -> None
        self.chunks = [rest]
        self.have = len(rest)
        self.need = need


def _needed(rest):
    # type: (bytes) -> int
    """How many bytes the incomplete frame at the start of ``rest`` needs in all."""
    flags = _BYTE.unpack_from(rest, 0)[0]
    if flags & LONG:
        if len(rest) < 9:
            return 9
        return 9 + _LONG_SIZE.unpack_from(rest, 1)[0]
    if len(rest) < 2:
        return 2
    return 2 + _BYTE.unpack_from(rest, 1)[0]


def _command(body):
    # type: (bytes) -> Command
    if not body or len(body) < 1 + _BYTE.unpack_from(body, 0)[0]:
        raise ZmtpError(u"a command frame is truncated")
    size = _BYTE.unpack_from(body, 0)[0]
    return Command(bytes(body[1:1 + size]), body[1 + size:])


def pong(ping):
    # type: (Command) -> bytes
    """The PONG that answers ``ping``: its context after the 2-byte TTL (RFC 37)."""
    return command(b"PONG", ping.data[2:18])


def error_reason(cmd):
    # type: (Command) -> str
    """The reason an ERROR command gives (a one-byte length, then the text)."""
    data = cmd.data
    if not data:
        return u""
    return data[1:1 + _BYTE.unpack_from(data, 0)[0]].decode("utf-8", "replace")


def parse_endpoint(endpoint):
    # type: (str) -> Tuple[str, str, int]
    """``("unix", path, 0)`` or ``("tcp", host, port)``; ValueError for anything else."""
    scheme, _, rest = endpoint.partition("://")
    if scheme == "ipc" and rest:
        # libzmq's abstract-namespace form, ipc://@name, is "\0name" to the kernel.
        return "unix", ("\0" + rest[1:] if rest.startswith("@") else rest), 0
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit():
            return "tcp", host.strip("[]"), int(port)
    raise ValueError("a ZMTP link needs ipc://PATH or tcp://HOST:PORT, got %r" % (endpoint,))
