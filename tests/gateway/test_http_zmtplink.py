"""The ZMTP broker link (gateway.http.zmtplink) against a scripted peer on a real unix socket:
its handshake bytes, PING, ERROR, malformed peers, a silent peer, the queue before the
handshake and its bound, and requests whose caller gave up."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

import pytest

from gateway.commands.frontcfg import http_config
from gateway.config import parse
from gateway.errors import ConfigError
from gateway.http.brokerlink import Parts, link_kind
from gateway.http.fastpath import open_link
from gateway.http.zmqlink import AsyncBroker
from gateway.http.zmtplink import READY, ZmtpBroker, parse_endpoint
from protocol import codec, mdp, zmtp
from protocol import errors as perrors

ROUTER_READY = zmtp.command(b"READY", zmtp.properties({b"Socket-Type": b"ROUTER"}))
PEER_GREETING = b"\xff" + b"\x00" * 7 + b"\x01\x7f\x03\x01NULL" + b"\x00" * 48
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Peer:
    """A scripted broker: a unix-socket server running ``handler`` per connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.server: asyncio.AbstractServer | None = None
        self.path = os.path.join(tempfile.mkdtemp(prefix="gw-zmtp-"), "b.ipc")
        self.endpoint = "ipc://" + self.path

    async def start(self) -> Peer:
        self.server = await asyncio.start_unix_server(self._serve, self.path)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the link hung up first: that is what several tests make it do
        finally:
            writer.transport.abort()

    async def close(self) -> None:
        """Stop listening, cut every connection and wait for every handler to end."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if os.path.exists(self.path):
            os.unlink(self.path)
        os.rmdir(os.path.dirname(self.path))


async def settle(link: ZmtpBroker) -> None:
    """Close ``link`` and let its transport's callbacks run before the loop ends."""
    link.close()
    for _ in range(3):
        await asyncio.sleep(0)


async def read_handshake(reader: asyncio.StreamReader) -> bytes:
    """What the link sends first: its greeting and its READY."""
    return await asyncio.wait_for(reader.readexactly(64 + len(READY)), 5)


async def read_message(reader: asyncio.StreamReader) -> list[bytes]:
    """One multipart message from the link (short or long frames)."""
    frames = []
    while True:
        flags = (await asyncio.wait_for(reader.readexactly(1), 5))[0]
        if flags & zmtp.LONG:
            size = int.from_bytes(await reader.readexactly(8), "big")
        else:
            size = (await reader.readexactly(1))[0]
        frames.append(await reader.readexactly(size))
        if not flags & zmtp.MORE:
            return frames


def reply_to(request: list[bytes], kind: str = "result") -> bytes:
    """The broker's reply to an MDP client request, as ZMTP bytes."""
    header = codec.decode_header(request[3])
    env = codec.Envelope(kind, id=header["id"], payload="ok")
    return zmtp.encode([b"", mdp.CLIENT, request[2], *codec.encode(env)])


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``check`` on the loop until it holds; AssertionError past ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def call(deadline_s: float = 5.0, idem: bool = False) -> codec.Envelope:
    """A request envelope whose deadline is ``deadline_s`` from now."""
    return codec.Envelope("call", method="m", idem=idem,
                          deadline=int((time.time() + deadline_s) * 1000))


def test_handshake_bytes_then_a_request_and_its_reply_and_ping_answered_with_pong() -> None:
    async def main() -> None:
        seen: list[bytes] = []

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await read_handshake(reader))
            writer.write(PEER_GREETING + ROUTER_READY + zmtp.command(b"PING", b"\x00\x0aabc"))
            request = await read_message(reader)  # queued, so sent as soon as READY came
            seen.append(await reader.readexactly(2 + 5 + 3))  # then the PONG
            writer.write(reply_to(request))
            await reader.read()  # until the link closes
            writer.close()

        server = await Peer(peer).start()
        link = ZmtpBroker(server.endpoint)
        try:
            env = call()
            parts = link.send(b"svc", env)
            header, frames = await parts.get(5.0)
            assert header["id"] == env.id and codec.decode(frames).payload == "ok"
            assert seen[0] == zmtp.GREETING + READY
            assert seen[1] == b"\x04\x08\x04PONGabc"
            assert link.linked and link.connects == 1 and link.dropped == 0
        finally:
            await settle(link)
            await server.close()
    asyncio.run(main())


@pytest.mark.parametrize(("sent", "why"), [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not a ZMTP peer"),
    (PEER_GREETING + zmtp.encode([b"early"]), "message before its READY"),
    (PEER_GREETING + zmtp.command(b"READY", zmtp.properties({b"Socket-Type": b"PUB"})),
     "a DEALER needs a ROUTER"),
    (PEER_GREETING + ROUTER_READY + ROUTER_READY, "READY twice"),
    (PEER_GREETING + ROUTER_READY + zmtp.command(b"ERROR", b"\x06denied"), "denied"),
    (PEER_GREETING + ROUTER_READY + b"\x02" + (1 << 62).to_bytes(8, "big"), "cap"),
])
def test_a_peer_that_breaks_zmtp_is_logged_cut_and_the_link_reconnects(
        sent: bytes, why: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        connections = []

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(writer)
            await read_handshake(reader)
            writer.write(sent)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the link hung up
            writer.close()

        server = await Peer(peer).start()
        link = ZmtpBroker(server.endpoint, backoff=(0.01, 0.05))
        try:
            link.send(b"svc", call())
            await until(lambda: link.protocol_errors >= 2 and len(connections) >= 2)
        finally:
            await settle(link)
            await server.close()
    with caplog.at_level("WARNING", logger="gateway.http.zmtplink"):
        asyncio.run(main())
    assert any(why in r.getMessage() for r in caplog.records)


def test_a_peer_silent_after_accepting_is_cut_at_the_handshake_deadline() -> None:
    async def main() -> None:
        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # never greets

        server = await Peer(peer).start()
        link = ZmtpBroker(server.endpoint, handshake_timeout=0.1, backoff=(0.01, 0.02))
        try:
            parts = link.send(b"svc", call(deadline_s=0.3))
            await until(lambda: link.protocol_errors >= 1)
            with pytest.raises(TimeoutError):  # the caller's own deadline, never a hang
                await parts.get(0.3)
            assert not link.linked
        finally:
            await settle(link)
            await server.close()
    asyncio.run(main())


def test_requests_queue_while_no_broker_listens_and_only_live_ones_go_out_on_link() -> None:
    async def main() -> None:
        got: list[list[bytes]] = []

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_handshake(reader)
            writer.write(PEER_GREETING + ROUTER_READY)
            for _ in range(3):
                request = await read_message(reader)
                got.append(request)
                writer.write(reply_to(request))
            await reader.read()

        server = Peer(peer)  # not listening yet
        link = ZmtpBroker(server.endpoint, backoff=(0.01, 0.05))
        try:
            gave_up = link.send(b"svc", call())
            kept = [link.send(b"svc", call()) for _ in range(3)]
            link.cancel(b"svc", _id(gave_up))
            assert len(link.queue) == 4 and not link.linked
            await until(lambda: link.attempts >= 3)  # refused, and refused again: it keeps trying
            assert link.connects == 0
            await server.start()
            for parts in kept:
                header, _ = await parts.get(5.0)
                assert header["id"] in link.pending
                link.forget(header["id"])
            assert len(got) == 3 and _id(gave_up) not in {codec.decode_header(m[3])["id"]
                                                         for m in got}
            assert link.queue == type(link.queue)() and link.pending == {}
        finally:
            await settle(link)
            await server.close()
    asyncio.run(main())


def _id(parts: Parts) -> str:
    """The request id inside a queued request's wire bytes."""
    data = parts.frames
    decoder = zmtp.Decoder(1 << 20)
    decoder.greeted = True
    message = decoder.feed(data)[0]
    return str(codec.decode_header(message[3])["id"])


def test_the_queue_before_the_handshake_is_bounded_and_says_full() -> None:
    async def main() -> None:
        link = ZmtpBroker("ipc:///nonexistent/gw-none.ipc", max_queued=2)
        try:
            link.send(b"svc", call())
            link.send(b"svc", call())
            with pytest.raises(perrors.Unavailable, match="full"):
                link.send(b"svc", call())
            assert len(link.pending) == 2
            link.forget(next(iter(link.pending)))  # a caller gave up: its place frees
            link.send(b"svc", call())
        finally:
            await settle(link)
        with pytest.raises(perrors.Unavailable, match="closed"):
            link.send(b"svc", call())
    asyncio.run(main())


def test_endpoints_and_the_kind_auto_picks() -> None:
    assert parse_endpoint("ipc:///run/b.ipc") == ("unix", "/run/b.ipc", 0)
    assert parse_endpoint("ipc://@abstract") == ("unix", "\0abstract", 0)
    assert parse_endpoint("tcp://127.0.0.1:5555") == ("tcp", "127.0.0.1", 5555)
    assert parse_endpoint("tcp://[::1]:5555") == ("tcp", "::1", 5555)
    with pytest.raises(ValueError, match="ipc://PATH or tcp://HOST:PORT"):
        parse_endpoint("inproc://x")
    assert link_kind("ipc:///run/b.ipc") == "zmtp"
    assert link_kind("tcp://127.0.0.1:5555") == "zmtp"
    assert link_kind("tcp://[::1]:5555") == "zmtp"
    assert link_kind("tcp://10.1.2.3:5555") == "libzmq"          # CURVE territory
    assert link_kind("tcp://127.0.0.1:1,tcp://127.0.0.1:2") == "libzmq"  # failover list
    assert link_kind("ipc:///run/b.ipc", "libzmq") == "libzmq"
    with pytest.raises(ValueError, match="one of"):
        link_kind("ipc:///x", "nanomsg")
    assert type(open_link("ipc:///run/b.ipc")) is ZmtpBroker
    assert type(open_link("ipc:///run/b.ipc", "libzmq")) is AsyncBroker


def test_a_broker_that_stays_away_is_logged_once_per_outage_not_per_attempt(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> int:
        link = ZmtpBroker("ipc:///nonexistent/gw-away.ipc", backoff=(0.005, 0.01))
        try:
            link.send(b"svc", call())
            await until(lambda: link.attempts >= 8)
            return link.attempts
        finally:
            await settle(link)
    with caplog.at_level("DEBUG", logger="gateway.http.zmtplink"):
        attempts = asyncio.run(main())
    tries = [r for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(tries) >= attempts - 1
    assert [r.levelname for r in tries].count("WARNING") == 1


def test_broker_link_is_an_http_key_of_gateway_toml_checked_by_the_front() -> None:
    toml = '[http]\nbroker_link = "{}"\n[[routes]]\nprefix = "/"\nbackend = "wsgi"\n' \
        'service = "web"\n'
    assert http_config(parse(toml.format("libzmq"))).broker_link == "libzmq"
    assert http_config(parse("")).broker_link == "auto"
    with pytest.raises(ConfigError, match=r"http\.broker_link: one of"):
        http_config(parse(toml.format("nanomsg")))
