"""ZMTP framing (protocol.zmtp) against hand-made bytes, on 2.7 and 3.x: the greeting, short
and long frames, commands, a stream split anywhere, and every malformed input as a typed error."""
from __future__ import absolute_import, division, print_function

import struct

import pytest

from protocol import zmtp
from protocol.errors import ProtocolError, ZmtpError


def u64(n):
    return struct.pack("!Q", n)


def byte(data, i):
    return bytearray(data[i:i + 1])[0]

ROUTER_READY = zmtp.command(b"READY", zmtp.properties({b"Socket-Type": b"ROUTER"}))


def peer_greeting(major=3, minor=0, mechanism=b"NULL"):
    """A greeting as libzmq sends it (RFC 23 section 3.1)."""
    return (b"\xff" + b"\x00" * 7 + b"\x01\x7f" + struct.pack("BB", major, minor)
            + mechanism.ljust(20, b"\x00") + b"\x00" * 32)


def test_our_greeting_is_rfc_23_null_as_client_version_3_1():
    g = zmtp.GREETING
    assert len(g) == 64
    assert byte(g, 0) == 0xFF and byte(g, 9) == 0x7F
    assert (byte(g, 10), byte(g, 11)) == (3, 1)
    assert g[12:32] == b"NULL" + b"\x00" * 16
    assert byte(g, 32) == 0 and g[33:] == b"\x00" * 31


def test_ready_command_carries_socket_type_and_identity_properties():
    ready = zmtp.READY_DEALER
    assert ready == (b"\x04\x29\x05READY"
                     b"\x0bSocket-Type\x00\x00\x00\x06DEALER"
                     b"\x08Identity\x00\x00\x00\x00")
    item = zmtp.Decoder(100).feed(peer_greeting() + ready)[1]
    assert item == zmtp.Command(b"READY", ready[8:])
    assert zmtp.parse_properties(item.data) == {b"socket-type": b"DEALER", b"identity": b""}


def test_encode_sets_more_on_all_but_the_last_frame_and_long_sizes_past_255():
    big = b"x" * 300
    wire = zmtp.encode([b"", b"ab", big])
    assert wire == (b"\x01\x00" + b"\x01\x02ab" + b"\x02" + u64(300) + big)
    assert zmtp.encode([b"z" * 255])[:2] == b"\x00\xff"  # the largest short frame


def test_a_whole_stream_in_one_read_gives_greeting_command_and_messages_in_order():
    messages = [[b"", b"MDPC01", b"svc", b"h" * 1000], [b"one"], [b""]]
    stream = peer_greeting() + ROUTER_READY + b"".join(zmtp.encode(m) for m in messages)
    items = zmtp.Decoder(1 << 20).feed(stream)
    assert items[0] == zmtp.Greeting(3, 0, b"NULL")
    assert type(items[1]) is zmtp.Command and items[1].name == b"READY"
    assert items[2:] == messages


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 65, 100])
def test_a_stream_split_at_every_offset_gives_the_same_items(step):
    messages = [[b"", b"MDPC01", b"svc", b"h" * 700, b"p" * 3], [b"a"] * 5]
    stream = peer_greeting() + ROUTER_READY + zmtp.command(b"PING", b"\x00\x0actx") \
        + b"".join(zmtp.encode(m) for m in messages)
    decoder = zmtp.Decoder(1 << 20)
    items = []
    for i in range(0, len(stream), step):
        items.extend(decoder.feed(stream[i:i + step]))
    assert items[2] == zmtp.Command(b"PING", b"\x00\x0actx")
    assert items[3:] == messages
    assert decoder.chunks == [] and decoder.frames == []


def test_a_long_frame_read_in_many_pieces_is_joined_once_it_is_whole():
    decoder = zmtp.Decoder(1 << 24)
    decoder.feed(peer_greeting() + ROUTER_READY)
    body = bytes(bytearray(range(256))) * 4096  # 1 MiB
    wire = zmtp.encode([b"", body])
    got = []
    for i in range(0, len(wire), 4096):
        got.extend(decoder.feed(wire[i:i + 4096]))
        if i + 4096 < len(wire):
            assert got == [] and decoder.need == len(wire) - 2  # waits for the whole frame
    assert got == [[b"", body]]


@pytest.mark.parametrize(("data", "why"), [
    (b"HTTP/1.1 400 Bad Request\r\n", "not a ZMTP peer"),
    (b"\xff" + b"\x00" * 8 + b"\x00", "ZMTP 1.0"),
    (peer_greeting(major=2), "ZMTP 2.x"),
    (peer_greeting(mechanism=b"CURVE"), "CURVE"),
])
def test_a_peer_that_is_not_zmtp_3_null_is_refused_with_a_typed_error(data,
                                                                      why):
    with pytest.raises(ZmtpError, match=why) as info:
        zmtp.Decoder(100).feed(data)
    assert isinstance(info.value, ProtocolError)


def test_a_wrong_first_byte_is_refused_before_the_greeting_is_whole():
    with pytest.raises(ZmtpError, match="not a ZMTP peer"):
        zmtp.Decoder(100).feed(b"G")


@pytest.mark.parametrize(("frames", "why"), [
    (b"\x08\x00", "reserved flag bits"),
    (b"\x02" + u64(1 << 40), "cap of 1000 bytes"),
    ((b"\x01\xff" + b"a" * 255) * 3 + b"\x01\xff", "cap of 1000"),  # the message, whole
    (b"\x05\x05\x04PING", "command frame with the MORE flag"),
    (b"\x04\x03\x09ab", "command frame is truncated"),
    (b"\x04\x00", "command frame is truncated"),
])
def test_malformed_frames_are_typed_errors(frames, why):
    decoder = zmtp.Decoder(1000)
    decoder.feed(peer_greeting())
    with pytest.raises(ZmtpError, match=why):
        decoder.feed(frames)


def test_a_command_between_the_frames_of_a_message_is_taken_and_the_message_goes_on():
    # libzmq sends a heartbeat PING when its timer fires, even in the middle of a message.
    decoder = zmtp.Decoder(1000)
    decoder.feed(peer_greeting())
    items = decoder.feed(b"\x01\x01a" + zmtp.command(b"PING", b"\x00\x01") + b"\x00\x01b")
    assert items == [zmtp.Command(b"PING", b"\x00\x01"), [b"a", b"b"]]


def test_a_huge_size_is_refused_as_soon_as_the_size_is_read_not_after_the_body():
    decoder = zmtp.Decoder(1000)
    decoder.feed(peer_greeting())
    assert decoder.feed(b"\x02\x00\x00") == []   # the size is not whole yet
    with pytest.raises(ZmtpError, match="passes the link's cap"):
        decoder.feed(b"\x00\x00\x00\x00\x10\x00")


@pytest.mark.parametrize("data", [b"\x05Socket", b"\x02ab\x00\x00", b"\x02ab\x00\x00\x00\x09x",
                                  b"\x00\x00\x00\x00\x00"])
def test_truncated_ready_properties_are_typed_errors(data):
    with pytest.raises(ZmtpError, match="truncated"):
        zmtp.parse_properties(data)


def test_pong_answers_with_the_pings_context_and_error_gives_its_reason():
    ping = zmtp.Command(b"PING", b"\x00\x0a" + b"ctx")
    assert zmtp.pong(ping) == zmtp.command(b"PONG", b"ctx")
    error = zmtp.Command(b"ERROR", b"\x06denied")
    assert zmtp.error_reason(error) == u"denied"
    assert zmtp.error_reason(zmtp.Command(b"ERROR", b"")) == u""


def test_endpoints_parse_to_unix_paths_and_tcp_addresses():
    assert zmtp.parse_endpoint("ipc:///run/b.ipc") == ("unix", "/run/b.ipc", 0)
    assert zmtp.parse_endpoint("ipc://@abstract") == ("unix", "\0abstract", 0)
    assert zmtp.parse_endpoint("tcp://127.0.0.1:5555") == ("tcp", "127.0.0.1", 5555)
    assert zmtp.parse_endpoint("tcp://[::1]:5555") == ("tcp", "::1", 5555)
    with pytest.raises(ValueError, match="ipc://PATH or tcp://HOST:PORT"):
        zmtp.parse_endpoint("inproc://x")
