"""The worker's own ZMTP link (protocol.zmtplink) against a real libzmq ROUTER and against
scripted peers on real sockets, on 2.7 and 3.x: the handshake, messages both ways, the
ROUTER's heartbeats answered, and every way a connection ends as a typed outcome."""
from __future__ import absolute_import, division, print_function

import os
import shutil
import socket
import tempfile
import threading
import time

import pytest
import zmq

from protocol import mdp, zmtp
from protocol.brokers import choose_link
from protocol.errors import ZmtpError
from protocol.workerlink import WorkerLink, open_link
from protocol.zmtpclient import ZmtpClientLink
from protocol.zmtplink import ZmtpWorkerLink
from tests.support.procs import wait_until

ROUTER_READY = zmtp.command(b"READY", zmtp.properties([(b"Socket-Type", b"ROUTER")]))


@pytest.fixture
def router():
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.linger = 0
    # libzmq then sends a ZMTP PING every 50 ms, which the link must answer.
    sock.setsockopt(zmq.HEARTBEAT_IVL, 50)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 2000)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, "tcp://127.0.0.1:%d" % port
    sock.close(linger=0)


@pytest.fixture
def tmp():
    path = tempfile.mkdtemp(prefix="zl-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Peer(object):
    """A scripted peer on a unix socket: ``script(conn)`` runs on the accepted connection."""

    def __init__(self, directory, script):
        self.path = os.path.join(directory, "peer.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(5.0)
        self.endpoint = "ipc://" + self.path
        self.done = threading.Event()
        self.conn = None
        self.thread = threading.Thread(target=self._serve, args=(script,))
        self.thread.daemon = True
        self.thread.start()

    def _serve(self, script):
        try:
            self.conn, _ = self.server.accept()
            self.conn.settimeout(5.0)
            script(self.conn)
        finally:
            self.done.set()

    def close(self):
        self.done.wait(5.0)
        if self.conn is not None:
            self.conn.close()
        self.server.close()


def recv_frames(sock, timeout=5.0):
    """The next message a ROUTER gets that is not an MDP heartbeat."""
    deadline = time.time() + timeout
    while sock.poll(max(1, int((deadline - time.time()) * 1000))):
        frames = sock.recv_multipart()
        if frames[3] != mdp.HEARTBEAT:
            return frames
    raise AssertionError("nothing from the link in %.1f s" % timeout)


def recv_until(link, timeout=5.0):
    """Poll the link until it yields a message (or fail at the deadline)."""
    poller = link.poller()
    deadline = time.time() + timeout
    while time.time() < deadline:
        poller.poll(50)
        frames = link.recv()
        if frames is not None:
            return frames
    raise AssertionError("nothing from the ROUTER in %.1f s" % timeout)


def test_the_link_registers_and_carries_messages_both_ways_with_a_libzmq_router(router):
    sock, endpoint = router
    link = ZmtpWorkerLink(endpoint)
    link.open(b"calc", {u"credit": 1}, 2.5)
    try:
        assert link.linked and not link.gone()
        ident, empty, proto, command, service = recv_frames(sock)[:5]
        assert (empty, proto, command, service) == (b"", mdp.WORKER, mdp.READY, b"calc")
        big = b"x" * 300000  # a long frame, read by the link in many pieces
        sock.send_multipart([ident, b"", mdp.WORKER, mdp.REQUEST, b"client", b"", big])
        assert recv_until(link) == [b"", mdp.WORKER, mdp.REQUEST, b"client", b"", big]
        link.send(mdp.worker_reply(b"client", [b"{}", b"done"]))
        assert recv_frames(sock)[1:] == mdp.worker_reply(b"client", [b"{}", b"done"])
        # Larger than the socket's buffers: written in pieces as the ROUTER reads.
        huge = b"z" * (8 << 20)
        link.send(mdp.worker_reply(b"client", [b"{}", huge]))
        assert recv_frames(sock)[-1] == huge and not link.gone()
        # libzmq's ZMTP heartbeats are answered, and the connection stays up past them.
        poller = link.poller()

        def answered_three():
            poller.poll(20)
            assert link.recv() is None  # PINGs are commands, never messages
            return link.pings >= 3

        wait_until(answered_three, timeout=5, what="three PINGs answered")
        sock.send_multipart([ident, b"", mdp.WORKER, mdp.HEARTBEAT])
        assert recv_until(link) == [b"", mdp.WORKER, mdp.HEARTBEAT]
    finally:
        link.close()


def test_a_closed_connection_is_gone_and_a_missing_broker_refuses_at_once(tmp):
    def greet_then_close(conn):
        conn.sendall(zmtp.GREETING + ROUTER_READY)
        conn.recv(4096)

    peer = Peer(tmp, greet_then_close)
    link = ZmtpWorkerLink(peer.endpoint)
    link.open(b"svc", {}, 1.0)
    peer.close()
    try:
        assert recv_until_gone(link)
        # A close with our bytes unread reaches us as a reset: either way the link is over.
        assert link.broken in (u"the broker closed the connection",
                               u"the connection failed: [Errno 104] Connection reset by peer")
    finally:
        link.close()
    with pytest.raises(socket.error):
        ZmtpWorkerLink("ipc://" + os.path.join(tmp, "nobody.sock")).open(b"svc", {}, 1.0)


def recv_until_gone(link, timeout=5.0):
    poller = link.poller()
    deadline = time.time() + timeout
    while time.time() < deadline and not link.gone():
        poller.poll(50)
        assert link.recv() is None
    return link.gone()


@pytest.mark.parametrize(("script", "why"), [
    (lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"), "not a ZMTP peer"),
    (lambda conn: conn.sendall(zmtp.GREETING + zmtp.command(b"ERROR", b"\x06denied")),
     "refused the link: denied"),
    (lambda conn: conn.sendall(zmtp.GREETING + zmtp.command(
        b"READY", zmtp.properties([(b"Socket-Type", b"PUB")]))), "needs a ROUTER"),
    (lambda conn: conn.recv(4096), "no ZMTP handshake"),  # silent: the deadline ends it
])
def test_a_peer_that_does_not_complete_the_handshake_is_a_typed_error(tmp, script, why):
    peer = Peer(tmp, script)
    link = ZmtpWorkerLink(peer.endpoint, connect_timeout=0.5)
    try:
        with pytest.raises(ZmtpError, match=why):
            link.open(b"svc", {}, 1.0)
        assert not link.is_open
    finally:
        peer.close()


def test_a_broker_that_stops_reading_breaks_the_link_at_the_send_deadline(tmp):
    stop = threading.Event()

    def greet_then_stall(conn):
        conn.sendall(zmtp.GREETING + ROUTER_READY)
        stop.wait(10.0)

    peer = Peer(tmp, greet_then_stall)
    link = ZmtpWorkerLink(peer.endpoint)
    link.open(b"svc", {}, 0.1)  # a send may wait max(1 s, 3 x 0.1 s)
    try:
        started = time.time()
        for _ in range(200):  # bounded: the socket buffers fill long before this
            link.send([b"", b"y" * (1 << 20)])
            if link.gone():
                break
        assert link.gone() and "read nothing" in link.broken
        assert time.time() - started < 5.0
        link.send([b"more"])  # never raises: the worker's heartbeat thread sends too
    finally:
        stop.set()
        link.close()
        peer.close()


def test_auto_takes_zmtp_for_a_local_broker_without_curve_and_libzmq_otherwise():
    keys = (b"k" * 40, b"p" * 40, b"s" * 40)
    assert choose_link("ipc:///run/b.ipc", None) == "zmtp"
    assert choose_link("tcp://127.0.0.1:5555", None) == "zmtp"
    assert choose_link("tcp://[::1]:5555", None) == "zmtp"
    assert choose_link("tcp://10.0.0.1:5555", keys) == "libzmq"
    assert choose_link("tcp://127.0.0.1:5555", keys) == "libzmq"
    assert choose_link("inproc://b", None) == "libzmq"
    assert choose_link("tcp://127.0.0.1:5555", None, "libzmq") == "libzmq"
    with pytest.raises(ValueError, match="no CURVE"):
        choose_link("tcp://10.0.0.1:5555", keys, "zmtp")
    with pytest.raises(ValueError, match="one of auto, zmtp, libzmq"):
        choose_link("ipc:///x", None, "carrier-pigeon")
    assert type(open_link("ipc:///run/b.ipc")) is ZmtpWorkerLink
    assert type(open_link("ipc:///run/b.ipc", link="libzmq")) is WorkerLink


def test_a_client_link_keeps_what_never_left_when_a_handshake_fails(tmp):
    peer = Peer(tmp, lambda conn: conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    try:
        link = ZmtpClientLink(peer.endpoint, 1.0, zmq.Poller())
        assert not link.linked and link.link_up is None and "not a ZMTP peer" in link._why
        link.send(mdp.client_request(b"svc", [b"{}"]))
        link.send(mdp.client_request(b"svc", [b"{}"]))
        # Nothing was sent to a broker, so nothing is lost: it waits for one that speaks ZMTP.
        assert len(link._out) == 2 and not link.connection_lost()
        link.shut()
    finally:
        peer.close()
