"""Events across interpreters through the broker's XSUB/XPUB proxy (at most once)."""

import json
import subprocess

import pytest

from protocol.codec import Bytes
from protocol.events import Publisher, Subscriber
from tests.support.procs import python2, wait_until

pytestmark = pytest.mark.slow

# At most once: it publishes again every 20 ms until the test closes its stdin (or 15 s).
PY2_PUBLISHER = """
import select, sys, time
from protocol.codec import Bytes
from protocol.events import Publisher
pub = Publisher(sys.argv[1])
stop = time.time() + 15
while time.time() < stop:
    pub.publish(u"py2.tick", {u"text": u"\\u00e9\\U0001F600", u"raw": Bytes(b"\\x00\\xff")})
    if select.select([sys.stdin], [], [], 0.02)[0]:
        break
"""

PY2_SUBSCRIBER = """
import json, sys
from protocol import codec
from protocol.events import Subscriber
sub = Subscriber(sys.argv[1], [u"py3."])
print("subscribed"); sys.stdout.flush()
event = sub.recv(timeout=15.0)
if event is None:
    sys.exit("no event within 15 s")
print(json.dumps({u"topic": event.topic, u"payload": codec.to_json(event.payload)}))
"""


@pytest.fixture
def bus(rpc, workdir):
    pub_ep, sub_ep = f"ipc://{workdir}/events-in", f"ipc://{workdir}/events-out"
    rpc.broker(extra=("--events-pub", pub_ep, "--events-sub", sub_ep))
    return pub_ep, sub_ep


def test_py2_publisher_py3_subscriber(rpc, bus) -> None:
    pub_ep, sub_ep = bus
    sub = Subscriber(sub_ep, ["py2."])
    try:
        publisher = rpc.procs.spawn([python2(), "-c", PY2_PUBLISHER, pub_ep],
                                    stdin=subprocess.PIPE)
        event = wait_until(lambda: sub.recv(timeout=0.1), timeout=15, what="py2 event")
        assert publisher.stdin is not None
        publisher.stdin.close()  # enough: the publisher stops
        assert publisher.wait(timeout=5) == 0
        assert event.topic == "py2.tick"
        assert event.payload == {"text": "\u00e9\U0001F600", "raw": b"\x00\xff"}
        assert event.envelope.kind == "event"
    finally:
        sub.close()


def test_py3_publisher_py2_subscriber(rpc, bus) -> None:
    pub_ep, sub_ep = bus
    proc = rpc.procs.spawn([python2(), "-c", PY2_SUBSCRIBER, sub_ep], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"subscribed"
    pub = Publisher(pub_ep)
    try:
        def seen() -> bool:  # at most once: publish again until the subscriber has one
            pub.publish("py3.tick", {"n": 2 ** 70, "b": Bytes(b"\x01")})
            try:
                proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                return False
            return True
        wait_until(seen, timeout=15, interval=0, what="the py2 subscriber's event")
        out, _ = proc.communicate(timeout=10)
    finally:
        pub.close()
    assert json.loads(out.decode().strip()) == {
        "topic": "py3.tick", "payload": {"n": 2 ** 70, "b": {"$bytes": "AQ=="}}}
