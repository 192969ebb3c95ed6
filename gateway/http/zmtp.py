"""ZMTP 3.x framing for a DEALER that connects: the greeting, commands and frames, as bytes.

ZeroMQ's wire protocol is ZMTP 3.0 (RFC 23) and 3.1 (RFC 37); this module
holds what a connecting DEALER with the NULL mechanism needs of it, with no
I/O, so that :mod:`gateway.http.zmtplink` can speak it from an event loop::

    out = GREETING + command(b"READY", properties({b"Socket-Type": b"DEALER"}))
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

Anything else from the peer raises :class:`gateway.errors.ZmtpError`; the
caller closes the connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from gateway.errors import ZmtpError

GREETING_SIZE = 64
# libzmq puts the identity length + 1 (ZMTP 1.0's identity frame) in the padding; RFC 23
# says the padding is ignored, and mimicking libzmq keeps very old peers happy too.
SIGNATURE = b"\xff" + b"\x00" * 7 + b"\x01\x7f"
GREETING = (SIGNATURE + bytes((3, 1)) + b"NULL".ljust(20, b"\x00") + b"\x00"
            + b"\x00" * 31)
assert len(GREETING) == GREETING_SIZE

MORE, LONG, COMMAND = 0x01, 0x02, 0x04
_RESERVED = 0xF8
# Sockets a DEALER may talk to (RFC 28 and libzmq's mechanism_t::check_socket_type).
PEERS_OF_DEALER = frozenset({b"ROUTER", b"DEALER", b"REP"})

# The two header bytes of every short frame, built once: encoding a frame is then a list
# lookup instead of a bytes() call.
_SHORT_LAST = [bytes((0, n)) for n in range(256)]
_SHORT_MORE = [bytes((MORE, n)) for n in range(256)]


class Command(NamedTuple):
    """A command frame from the peer: its name and the data after the name."""

    name: bytes
    data: bytes


class Greeting(NamedTuple):
    """The peer's greeting: its version and security mechanism."""

    major: int
    minor: int
    mechanism: bytes


def encode(frames: list[bytes]) -> bytes:
    """One multipart message as a single bytes object (MORE on all but the last frame)."""
    out: list[bytes] = []
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        n = len(frame)
        if n < 256:
            out.append(_SHORT_MORE[n] if i < last else _SHORT_LAST[n])
        else:
            out.append(bytes((LONG | MORE if i < last else LONG,)) + n.to_bytes(8, "big"))
        out.append(frame)
    return b"".join(out)


def command(name: bytes, data: bytes = b"") -> bytes:
    """One command frame (RFC 23 section 3.2)."""
    body = bytes((len(name),)) + name + data
    n = len(body)
    if n < 256:
        return bytes((COMMAND, n)) + body
    return bytes((COMMAND | LONG,)) + n.to_bytes(8, "big") + body


def properties(props: Mapping[bytes, bytes]) -> bytes:
    """READY's metadata: name length (1 byte), name, value length (4 bytes), value."""
    return b"".join(bytes((len(k),)) + k + len(v).to_bytes(4, "big") + v
                    for k, v in props.items())


def parse_properties(data: bytes) -> dict[bytes, bytes]:
    """The inverse of :func:`properties`; names are case-insensitive (RFC 23), so lowered."""
    props: dict[bytes, bytes] = {}
    pos, n = 0, len(data)
    while pos < n:
        size = data[pos]
        name = data[pos + 1:pos + 1 + size]
        pos += 1 + size
        if len(name) != size or not size or pos + 4 > n:
            raise ZmtpError("a READY property is truncated")
        vsize = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        if pos + vsize > n:
            raise ZmtpError(f"the READY property {name!r} is truncated")
        props[name.lower()] = data[pos:pos + vsize]
        pos += vsize
    return props


def check_greeting(data: bytes) -> None:
    """Refuse a peer as early as its first bytes allow (any prefix of a greeting)."""
    if data[:1] and data[0] != 0xFF:
        raise ZmtpError(f"the peer is not a ZMTP peer: it sent {bytes(data[:16])!r}")
    if len(data) > 9 and not data[9] & 0x01:
        raise ZmtpError("the peer speaks ZMTP 1.0; ZMTP 3.x is needed")
    if len(data) > 10 and data[10] < 3:
        raise ZmtpError(f"the peer speaks ZMTP {data[10]}.x; ZMTP 3.x is needed")


def parse_greeting(data: bytes) -> Greeting:
    """The peer's whole 64-byte greeting; ZmtpError unless 3.x with the NULL mechanism."""
    check_greeting(data)
    mechanism = bytes(data[12:32]).rstrip(b"\x00")
    if mechanism != b"NULL":
        raise ZmtpError(f"the peer wants the {mechanism!r} mechanism; this link speaks NULL")
    return Greeting(data[10], data[11], mechanism)


class Decoder:
    """Incremental ZMTP decoder: feed it the stream in any slices, get whole items back.

    ``feed`` returns the greeting (once), commands and whole multipart
    messages (lists of frames) completed by that slice. A slice that ends
    mid-frame is kept, as a list of chunks joined once the frame is whole,
    so a large frame read in many small pieces is copied once, not once per
    piece. A frame or message larger than ``max_message`` bytes is refused
    as soon as its size is read, before its body arrives.
    """

    __slots__ = ("chunks", "frames", "greeted", "have", "max_message", "need", "size")

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.greeted = False
        self.chunks: list[bytes] = []   # an incomplete tail of the stream
        self.have = 0                   # bytes in chunks
        self.need = 0                   # bytes chunks must hold before parsing can go on
        self.frames: list[bytes] = []   # the message being assembled
        self.size = 0                   # its bytes so far

    def feed(self, data: bytes) -> list[Any]:
        """Items completed by ``data``; ZmtpError when the peer broke the protocol."""
        if self.chunks:
            self.chunks.append(data)
            self.have += len(data)
            if self.have < self.need:
                return []
            data = b"".join(self.chunks)
            self.chunks = []
        out: list[Any] = []
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
        while pos < n:
            flags = data[pos]
            if flags & _RESERVED:
                raise ZmtpError(f"a frame has reserved flag bits set ({flags:#04x})")
            if flags & LONG:
                if n - pos < 9:
                    break
                size = int.from_bytes(data[pos + 1:pos + 9], "big")
                start = pos + 9
            else:
                if n - pos < 2:
                    break
                size = data[pos + 1]
                start = pos + 2
            if size > self.max_message - self.size:
                raise ZmtpError(f"a frame of {size} bytes passes the link's cap of "
                                f"{self.max_message} bytes per message")
            end = start + size
            if end > n:
                break
            if flags & COMMAND:
                # A command may come between the frames of a message: libzmq's engine sends
                # a heartbeat PING when its timer fires, wherever the message stands.
                if flags & MORE:
                    raise ZmtpError("a command frame with the MORE flag")
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

    def _keep(self, rest: bytes, need: int) -> None:
        self.chunks = [rest]
        self.have = len(rest)
        self.need = need


def _needed(rest: bytes) -> int:
    """How many bytes the incomplete frame at the start of ``rest`` needs in all."""
    if rest[0] & LONG:
        if len(rest) < 9:
            return 9
        return 9 + int.from_bytes(rest[1:9], "big")
    if len(rest) < 2:
        return 2
    return 2 + rest[1]


def _command(body: bytes) -> Command:
    if not body or len(body) < 1 + body[0]:
        raise ZmtpError("a command frame is truncated")
    size = body[0]
    return Command(bytes(body[1:1 + size]), body[1 + size:])
