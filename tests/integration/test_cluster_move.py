"""Sessions across nodes (docs/cluster.md, "Sessions across nodes"): a
client id connected on node A that connects on node B takes its session
over through the owners bucket. Offline (v5 with session expiry, 3.1.1
persistent): B's CONNACK says session present, the QoS 1/2 messages
queued on A arrive on B, the subscriptions route on B. Live: A's
connection gets DISCONNECT 0x8E (v5; 3.1.1 is closed) [MQTT-3.1.4-3], the
session continues on B. A clean start on B starts empty. Three nodes and
a real nats-server with JetStream; publishers on the third node."""

import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster-move")
brokerctl.deadline(r, 55)
check = r.check


class Kicked:
    """A paho client that records how its connection ended and does not
    reconnect within the test (a reconnect would claim the id back)."""

    def __init__(self, cid, version, port):
        self.version = version
        self.gone = threading.Event()
        self.reason = None
        self.msgs = []
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        if version == 5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=False, protocol=proto)
        self.c.reconnect_delay_set(60, 60)
        self.up = threading.Event()
        self.c.on_connect = lambda *a: self.up.set()
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda cl, u, m: self.msgs.append(m.payload.decode())
        if version == 5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            self.c.connect("127.0.0.1", port, keepalive=30, clean_start=True, properties=props)
        else:
            self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()

    def _on_disconnect(self, client, userdata, rc, props=None):
        self.reason = rc
        self.gone.set()

    def stop(self):
        self.c.loop_stop()
        try:
            self.c.socket() and self.c.socket().close()
        except Exception:
            pass


nats = clusterctl.Nats()
nodes = []
clients = []
try:
    # a short connect_timeout: a CONNECT held for the claim, once
    # accepted, must not count as one never sent
    nodes = [clusterctl.start_node(nats, "m%d" % i, extra="midge_connect_timeout 1")
             for i in range(3)]
    stay = []  # connections that must stay up
    A, B, C = nodes

    # ---- an offline session moves: v5 with session expiry, 3.1.1 persistent
    for v in (5, 4):
        cid = "mover-%d" % v
        first = Client(cid, v, A.port, clean=(v == 5), expiry=300 if v == 5 else None)
        check("v%d %s connects on m0" % (v, cid), first.connect())
        first.subscribe("mv%d/+/a" % v, 1)
        first.subscribe("mv%d/x" % v, 2)
        first.close()  # a DISCONNECT: the session stays on m0 (expiry 300 / persistent)
        time.sleep(0.3)
        items = [("mv%d/%d/a" % (v, i), "q1-%d" % i, 1) for i in range(5)]
        items += [("mv%d/x" % v, "q2-%d" % i, 2) for i in range(3)]
        check("v%d: 8 QoS 1/2 messages for the offline session acknowledged on m2" % v,
              clusterctl.publish(C, "a%d" % v, items))
        time.sleep(1.0)  # they cross to m0, into the offline queue
        again = Client(cid, v, B.port, clean=False, expiry=300 if v == 5 else None)
        clients.append(again)
        stay.append(again)
        check("v%d: the same id connects on m1" % v, again.connect())
        check("v%d: m1's CONNACK says session present [MQTT-3.2.2-3]" % v,
              again.session_present == 1, "session present %r" % again.session_present)
        got = sorted(m.payload.decode() for m in again.wait(8, 5))
        want = sorted(x for _, x, _ in items)
        check("v%d: the messages queued on m0 arrive on m1, each once" % v, got == want,
              "got %s" % got)
        time.sleep(0.5)  # m1 subscribes in NATS on the cluster thread
        check("v%d: a new message on m2 acknowledged" % v,
              clusterctl.publish(C, "b%d" % v, [("mv%d/7/a" % v, "after", 1)]))
        got = [m.payload.decode() for m in again.wait(9, 5)]
        check("v%d: the moved subscriptions route on m1" % v, "after" in got, str(got))
        time.sleep(0.3)
        check("v%d: nothing twice" % v, len(again.msgs) == 9, "%d messages" % len(again.msgs))

    # ---- a live connection is taken over
    for v in (5, 4):
        cid = "live-%d" % v
        k = Kicked(cid, v, A.port)
        clients.append(k)
        check("v%d %s connects on m0" % (v, cid), k.up.wait(5))
        k.c.subscribe("lv%d/t" % v, 1)
        time.sleep(0.5)
        t0 = time.time()
        taker = Client(cid, v, B.port, clean=False, expiry=300 if v == 5 else None)
        clients.append(taker)
        stay.append(taker)
        check("v%d: the same id connects on m1" % v, taker.connect())
        took = time.time() - t0
        check("v%d: m0's connection is closed" % v, k.gone.wait(5))
        if v == 5:
            rc = getattr(k.reason, "value", k.reason)
            check("v5: m0's connection got DISCONNECT 0x8E Session taken over [MQTT-3.1.4-3]",
                  rc == 0x8E, "reason %r" % (k.reason,))
        check("v%d: m1's CONNACK says session present" % v, taker.session_present == 1,
              "session present %r" % taker.session_present)
        time.sleep(0.5)
        check("v%d: a message on m2 acknowledged" % v,
              clusterctl.publish(C, "l%d" % v, [("lv%d/t" % v, "to-b", 1)]))
        got = [m.payload.decode() for m in taker.wait(1, 5)]
        check("v%d: the subscription made on m0 delivers on m1" % v, got == ["to-b"], str(got))
        check("v%d: m0's old connection got nothing more" % v, k.msgs == [], str(k.msgs))
        print("v%d live takeover: CONNACK on m1 after %.0f ms (loaded machine)" % (v, took * 1000))

    # ---- a clean start elsewhere: the old session goes, nothing moves
    old = Client("clean-1", 5, A.port, clean=True, expiry=300)
    check("clean-1 connects on m0", old.connect())
    old.subscribe("cl/t", 1)
    old.close()
    time.sleep(0.3)
    check("a message for clean-1's offline session acknowledged", clusterctl.publish(C, "c", [("cl/t", "x", 1)]))
    time.sleep(0.5)
    fresh = Client("clean-1", 5, B.port, clean=True, expiry=300)
    clients.append(fresh)
    check("clean-1 connects with a clean start on m1", fresh.connect())
    check("clean start: session present 0 [MQTT-3.2.2-2]", fresh.session_present == 0,
          "session present %r" % fresh.session_present)
    time.sleep(0.5)
    check("clean start: nothing of the old queue", fresh.msgs == [], str(len(fresh.msgs)))
    back = Client("clean-1", 5, A.port, clean=False, expiry=300)
    clients.append(back)
    fresh.close()
    time.sleep(0.3)
    check("clean-1 back on m0", back.connect())
    check("back on m0: the session from m1 (empty, present)", back.session_present == 1,
          "session present %r" % back.session_present)
    # ---- a session that ends gives its id back: the owners bucket keeps
    # the ids of live sessions only, and a later claim of it elsewhere is
    # a plain create
    check("clean-1's id is m0's in t_owners", clusterctl.kv_get(nats, "t_owners", "clean-1") == b"m0")
    gb = Client("giveback", 5, A.port)  # session expiry 0: it ends with its connection
    check("giveback connects on m0", gb.connect())
    check("giveback's id is m0's in t_owners",
          clusterctl.kv_get(nats, "t_owners", "giveback") == b"m0")
    gb.close()
    end = time.time() + 5
    while clusterctl.kv_get(nats, "t_owners", "giveback") is not None and time.time() < end:
        time.sleep(0.2)
    check("its session ended: the id is gone from t_owners within a sweep",
          clusterctl.kv_get(nats, "t_owners", "giveback") is None)
    gb2 = Client("giveback", 5, B.port)
    clients.append(gb2)
    check("giveback connects on m1", gb2.connect())
    check("its id is m1's now", clusterctl.kv_get(nats, "t_owners", "giveback") == b"m1")
    check("no node asked: m1 did not find it held",
          "claimed by other nodes at the same time" not in B.log_text() + A.log_text())
    check("clean-1, still connected on m0, keeps its id",
          clusterctl.kv_get(nats, "t_owners", "clean-1") == b"m0")
    idle = Client("idle", 5, B.port)  # sends nothing after its CONNECT
    clients.append(idle)
    stay.append(idle)
    check("an idle client connects on m1", idle.connect())
    time.sleep(2.5)  # past midge_connect_timeout, twice
    check("connections accepted after a claim stay up (not timed out as without CONNECT)",
          all(c.connects == 1 for c in stay), str([c.connects for c in stay]))
finally:
    for c in clients:
        try:
            if isinstance(c, Kicked):
                c.stop()
            else:
                c.close()
        except Exception:
            pass
    clusterctl.stop(nodes, nats)
r.finish()
