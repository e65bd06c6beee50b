"""persistctl - what the persistence tests share: a broker whose database
lives in a directory that outlives it (so it can be killed and started
again on the same file), a paho client that records what it receives, and
raw MQTT 3.1.1 helpers for the exchanges paho hides (DUP flags, packet
ids, a PUBREL withheld).

    d = tempfile.mkdtemp()
    b = persistctl.start(d)                  # persistence true, file in d
    c = persistctl.Client("sub", 4, b.port, clean=False)
    ...
    b.signal(signal.SIGKILL); b.proc.wait()
    b = persistctl.start(d)                  # the same database
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402


def config(directory, extra=""):
    return ("listener {port} 127.0.0.1\npersistence true\npersistence_location %s/\n%s"
            % (directory, extra))


def start(directory, extra="", **kw):
    """midge with persistence on, its database in directory."""
    return brokerctl.start(config(directory, extra), **kw)


def kill9(b):
    """The broker dies at once: no shutdown, no final commit."""
    b.signal(9)
    b.proc.wait(5)
    b.stop()


class Client:
    """A paho client (3.1.1 or 5) in its own network thread that records the
    messages it receives and which of its own publishes were acknowledged."""

    def __init__(self, cid, version, port, clean=True, expiry=None, will=None, will_props=None,
                 auth=None, receive_max=None):
        self.version = version
        self.port = port
        self.msgs = []
        self.acked = set()
        self.acked_at = {}  # mid: when its acknowledgement came
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.rc = None
        self.session_present = None
        self.connects = 0
        self.clean = clean
        self.expiry = expiry
        self.receive_max = receive_max  # v5: at most this many QoS 1/2 in flight to us
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        if version == 5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=proto)
        self.c.max_inflight_messages_set(1000)
        self.c.max_queued_messages_set(0)
        # after a broker restart on the same port: back within half a second
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        if will:
            self.c.will_set(*will, properties=will_props)
        if auth:  # (user name, password)
            self.c.username_pw_set(*auth)

    def _on_connect(self, client, userdata, flags, rc, props=None):
        with self.cond:
            self.rc = rc
            self.session_present = flags.get("session present")
            self.connects += 1
            self.connected.set()
            self.cond.notify_all()

    def wait_connects(self, n, timeout=10.0):
        """Waits for the n-th successful connection (paho reconnects by
        itself, keeping its session state: QoS 2 messages awaiting PUBREL)."""
        end = time.time() + timeout
        with self.cond:
            while self.connects < n and time.time() < end:
                self.cond.wait(max(0.0, end - time.time()))
            return self.connects >= n

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def _on_publish(self, client, userdata, mid):
        with self.cond:
            self.acked.add(mid)
            self.acked_at[mid] = time.time()
            self.cond.notify_all()

    def connect(self, timeout=5):
        if self.version == 5:
            props = None
            if self.expiry is not None or self.receive_max is not None:
                props = Properties(PacketTypes.CONNECT)
            if self.expiry is not None:
                props.SessionExpiryInterval = self.expiry
            if self.receive_max is not None:
                props.ReceiveMaximum = self.receive_max
            self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=self.clean,
                           properties=props)
        else:
            self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        ok = self.connected.wait(timeout)
        return ok and (self.rc == 0 or getattr(self.rc, "value", 1) == 0)

    def subscribe(self, topic, qos, sub_id=None):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        props = None
        if sub_id:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = sub_id
        if self.version == 5:
            self.c.subscribe(topic, qos, properties=props)
        else:
            self.c.subscribe(topic, qos)
        return done.wait(5)

    def publish(self, topic, payload, qos, retain=False, props=None):
        return self.c.publish(topic, payload, qos, retain, properties=props)

    def wait(self, n, timeout=5.0):
        end = time.time() + timeout
        with self.cond:
            while len(self.msgs) < n and time.time() < end:
                self.cond.wait(max(0.0, end - time.time()))
            return list(self.msgs)

    def wait_acked(self, mids, timeout=5.0):
        end = time.time() + timeout
        with self.cond:
            while not set(mids) <= self.acked and time.time() < end:
                self.cond.wait(max(0.0, end - time.time()))
            return set(mids) <= self.acked

    def close(self, disconnect=True):
        if disconnect:
            self.c.disconnect()
        self.c.loop_stop()
        try:
            self.c.socket() and self.c.socket().close()
        except Exception:
            pass


# ---- raw MQTT 3.1.1 -------------------------------------------------------------

def raw_connect(port, cid, clean=False):
    """A socket with CONNECT sent and CONNACK read: (socket, session_present)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(brokerctl.connect_packet(cid, clean=clean))
    pk = brokerctl.read_packet(s)
    if not pk or pk[0] != 0x20 or pk[1][1] != 0:
        raise RuntimeError("CONNACK expected, got %r" % (pk,))
    return s, bool(pk[1][0] & 1)


def ack(packet_type, pid):
    """PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70 for pid."""
    return bytes([packet_type, 2]) + pid.to_bytes(2, "big")


def parse_publish(first, body):
    """(topic, packet id or None, payload, qos, dup, retain) of a PUBLISH."""
    tl = int.from_bytes(body[0:2], "big")
    topic = body[2:2 + tl].decode()
    qos = (first >> 1) & 3
    i = 2 + tl
    pid = None
    if qos:
        pid = int.from_bytes(body[i:i + 2], "big")
        i += 2
    return topic, pid, body[i:], qos, bool(first & 8), bool(first & 1)
