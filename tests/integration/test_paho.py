"""paho-mqtt (MQTT 3.1.1 and 5.0) against the real broker: QoS 0/1/2 round
trips, retained messages, a will published when a client is killed, a
persistent session receiving messages queued while it was away, shared
subscriptions, and MQTT 5 properties arriving intact."""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

r = brokerctl.Results("paho")
brokerctl.deadline(r, 150)
b = brokerctl.start()
PORT = b.port


class Client:
    """A paho client in its own network thread that records messages."""

    def __init__(self, cid, proto, clean=True, will=None, session_expiry=None):
        self.proto = proto
        self.msgs = []
        self.cond = threading.Condition()
        self.connected = threading.Event()
        self.rc = None
        self.session_present = None
        if proto == mqtt.MQTTv5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=proto)
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        if will:
            self.c.will_set(*will)
        self.clean = clean
        self.session_expiry = session_expiry

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.rc = rc
        self.session_present = flags.get("session present")
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append(msg)
            self.cond.notify_all()

    def connect(self):
        if self.proto == mqtt.MQTTv5:
            props = None
            if self.session_expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
            self.c.connect("127.0.0.1", PORT, keepalive=30, clean_start=self.clean, properties=props)
        else:
            self.c.connect("127.0.0.1", PORT, keepalive=30)
        self.c.loop_start()
        ok = self.connected.wait(5)
        return ok and (self.rc == 0 or getattr(self.rc, "value", 1) == 0)

    def subscribe(self, topic, qos):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos)
        return done.wait(5)

    def wait(self, n, timeout=5.0):
        end = time.time() + timeout
        with self.cond:
            while len(self.msgs) < n and time.time() < end:
                self.cond.wait(end - time.time())
            return list(self.msgs)

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos > 0:
            info.wait_for_publish(5)
        return info

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


for proto, name in ((mqtt.MQTTv311, "3.1.1"), (mqtt.MQTTv5, "5.0")):
    sub = Client("sub-" + name, proto)
    pub = Client("pub-" + name, proto)
    r.check("%s connect" % name, sub.connect() and pub.connect())
    for qos in (0, 1, 2):
        topic = "paho/%s/%d" % (name, qos)
        sub.subscribe(topic, qos)
        pub.publish(topic, b"payload-%d" % qos, qos)
    got = sub.wait(3)
    r.check("%s QoS 0/1/2 round trips" % name,
            [(m.topic, m.payload, m.qos) for m in got] ==
            [("paho/%s/%d" % (name, q), b"payload-%d" % q, q) for q in (0, 1, 2)],
            repr([(m.topic, m.payload, m.qos) for m in got]))
    # QoS is the minimum of publish and subscription.
    sub.subscribe("paho/%s/down" % name, 1)
    pub.publish("paho/%s/down" % name, b"d", 2)
    got = sub.wait(4)
    r.check("%s QoS downgraded to the subscription's" % name, len(got) == 4 and got[3].qos == 1,
            repr([(m.topic, m.qos) for m in got]))

    pub.publish("paho/%s/ret" % name, b"kept", 1, retain=True)
    late = Client("late-" + name, proto)
    late.connect()
    late.subscribe("paho/%s/ret" % name, 1)
    got = late.wait(1)
    r.check("%s retained message with retain flag" % name,
            len(got) == 1 and got[0].payload == b"kept" and got[0].retain, repr(got))
    pub.publish("paho/%s/ret" % name, b"", 1, retain=True)
    late.close()
    sub.close()
    pub.close()

# A will is published when its client dies without DISCONNECT.
watcher = Client("will-watcher", mqtt.MQTTv311)
watcher.connect()
watcher.subscribe("paho/will", 1)
script = """
import sys, time
import paho.mqtt.client as mqtt
c = mqtt.Client(client_id="doomed", protocol=mqtt.MQTTv311)
c.will_set("paho/will", b"gone", 1, False)
c.connect("127.0.0.1", %d, keepalive=30)
c.loop_start()
time.sleep(0.5)
print("up", flush=True)
time.sleep(60)
""" % PORT
doomed = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
line = doomed.stdout.readline()
doomed.kill()
doomed.wait(5)
got = watcher.wait(1, 5)
r.check("will published when the client is killed", line.strip() == "up" and len(got) == 1 and
        got[0].payload == b"gone", repr(got))
watcher.close()

# A clean DISCONNECT does not publish the will.
w2 = Client("will-watcher2", mqtt.MQTTv311)
w2.connect()
w2.subscribe("paho/will2", 1)
polite = Client("polite", mqtt.MQTTv311, will=("paho/will2", b"never", 1, False))
polite.connect()
polite.close()
# An empty list would also come from a watcher that never subscribed: a
# marker published after the DISCONNECT must be the first and only
# message, so a will (sent at the DISCONNECT, before the marker) shows.
time.sleep(0.5)
marker = Client("will-marker", mqtt.MQTTv311)
marker.connect()
marker.publish("paho/will2", b"marker", 1)
marker.close()
got = w2.wait(2, 1.5)
r.check("no will after a clean DISCONNECT", [m.payload for m in got] == [b"marker"],
        repr([m.payload for m in got]))
w2.close()

# Persistent sessions: messages queued while away arrive after reconnect.
for proto, name in ((mqtt.MQTTv311, "3.1.1"), (mqtt.MQTTv5, "5.0")):
    cid = "persistent-" + name
    p = Client(cid, proto, clean=False, session_expiry=300)
    p.connect()
    p.subscribe("paho/queued/" + name, 1)
    p.close()
    time.sleep(0.3)
    pub = Client("queuer-" + name, proto)
    pub.connect()
    for i in range(5):
        pub.publish("paho/queued/" + name, b"q%d" % i, 1)
    pub.close()
    p2 = Client(cid, proto, clean=False, session_expiry=300)
    p2.connect()
    got = p2.wait(5)
    r.check("%s persistent session gets queued messages after reconnect" % name,
            p2.session_present and [m.payload for m in got] == [b"q%d" % i for i in range(5)],
            "present=%r %r" % (p2.session_present, [m.payload for m in got]))
    p2.close()
    # Clean start discards it.
    p3 = Client(cid, proto, clean=True)
    p3.connect()
    r.check("%s clean start has no session" % name, not p3.session_present)
    p3.close()

# Shared subscriptions: each message goes to one member of the group.
members = [Client("share-%d" % i, mqtt.MQTTv5) for i in range(2)]
for m in members:
    m.connect()
    m.subscribe("$share/g/paho/shared", 1)
pub = Client("share-pub", mqtt.MQTTv5)
pub.connect()
for i in range(20):
    pub.publish("paho/shared", b"s%d" % i, 1)
time.sleep(1.0)
counts = [len(m.msgs) for m in members]
allp = sorted(x.payload for m in members for x in m.msgs)
r.check("shared subscription delivers each message once", sum(counts) == 20 and
        allp == sorted(b"s%d" % i for i in range(20)), repr(counts))
r.check("shared subscription spreads messages over members", all(c > 0 for c in counts), repr(counts))
for m in members:
    m.close()

# MQTT 5 properties arrive intact.
rx = Client("props-rx", mqtt.MQTTv5)
rx.connect()
rx.subscribe("paho/props", 1)
props = brokerctl.publish_properties(
    [("k1", "v1"), ("k2", "v2"), ("k1", "again")], ContentType="text/plain",
    ResponseTopic="paho/reply", CorrelationData=b"\x00\x01corr",
    PayloadFormatIndicator=1, MessageExpiryInterval=120)
pub.publish("paho/props", b"with props", 1, props=props)
got = rx.wait(1)
ok = False
if got:
    gp = got[0].properties
    ok = (getattr(gp, "UserProperty", None) == [("k1", "v1"), ("k2", "v2"), ("k1", "again")] and
          gp.ContentType == "text/plain" and gp.ResponseTopic == "paho/reply" and
          gp.CorrelationData == b"\x00\x01corr" and gp.PayloadFormatIndicator == 1 and
          0 < gp.MessageExpiryInterval <= 120)
r.check("v5 properties arrive intact", ok, repr(got[0].properties if got else None))
rx.close()
pub.close()

r.check("broker still running", b.alive())
rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
r.finish()
