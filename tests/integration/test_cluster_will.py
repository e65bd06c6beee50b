"""Wills of a node that died (docs/cluster.md, "Wills of a node that
died"): clients with wills are connected on node m0, which is killed with
-9 (it publishes nothing). Once its lease lapses, one surviving node
publishes their wills for the cluster: a subscriber on m2 gets each will
exactly once (v5 and 3.1.1) [MQTT-3.1.2-8]; not the will of a client that
sent DISCONNECT [MQTT-3.1.2-10], nor that of a client whose session went
on on m1 before the kill [MQTT-3.1.3-9]. Will delays: a will with a 4 s
delay is published about 4 s after the others; one with a 60 s delay whose
client connects again on another node within it is never published
[MQTT-3.1.3-9]; one with a 60 s delay and a 2 s session expiry comes when
the session ends, 2 s after the others. Three nodes and a real nats-server with
JetStream. m0 keeps no session checkpoints (midge_cluster_checkpoint_ms 0),
so the survivor holds the delayed wills itself; test_cluster_resume.py
covers wills that go with adopted sessions."""

import os
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client, kill9  # noqa: E402

r = brokerctl.Results("cluster-will")
brokerctl.deadline(r, 90)
check = r.check

nats = clusterctl.Nats()
nodes = []
clients = []
try:
    nodes = [clusterctl.start_node(nats, "d%d" % i,
                                   extra="midge_cluster_checkpoint_ms 0" if i == 0 else "")
             for i in range(3)]
    A, B, C = nodes
    sub = Client("will-watcher", 5, C.port)
    clients.append(sub)
    check("a subscriber on d2", sub.connect())
    sub.subscribe("will/#", 1)
    withwill = []
    for cid, v in (("w5", 5), ("w4", 4), ("bye", 5), ("mover", 5)):
        cl = Client(cid, v, A.port, clean=True, expiry=300 if cid == "mover" else None,
                    will=("will/" + cid, "gone-" + cid, 1, False))
        clients.append(cl)
        cl.c.reconnect_delay_set(60, 60)  # a reconnect to d0 would claim the id back
        check("v%d %s with a will connects on d0" % (v, cid), cl.connect())
        withwill.append(cl)
    delayed = {}
    for cid, delay, expiry in (("late", 4, 300), ("back", 60, 300), ("short", 60, 2)):
        wp = mqtt.Properties(PacketTypes.WILLMESSAGE)
        wp.WillDelayInterval = delay
        cl = Client(cid, 5, A.port, clean=True, expiry=expiry,
                    will=("will/" + cid, "gone-" + cid, 1, False), will_props=wp)
        clients.append(cl)
        cl.c.reconnect_delay_set(60, 60)
        check("v5 %s (will delay %d s, session expiry %d s) connects on d0" % (cid, delay, expiry),
              cl.connect())
        delayed[cid] = cl
    withwill[2].close()  # "bye": DISCONNECT, its will is discarded
    moved = Client("mover", 5, B.port, clean=False, expiry=300,
                   will=("will/mover-d1", "gone-mover-d1", 1, False))
    clients.append(moved)
    check("mover connects again on d1 (its session goes on there)", moved.connect())
    # every survivor's heartbeat (every lease/3) saw d0 alive
    time.sleep(4.0)
    check("no will yet", sub.msgs == [], str([m.payload for m in sub.msgs]))
    t0 = time.time()
    kill9(A)
    # "back" connects again on d1 within its 60 s will delay
    back = Client("back", 5, B.port, clean=False, expiry=300)
    clients.append(back)
    check("back connects again on d1 after the kill", back.connect())
    stamp = {}
    end = time.time() + 35
    while time.time() < end and len(stamp) < 4:
        for m in list(sub.msgs):
            stamp.setdefault(m.payload.decode(), time.time() - t0)
        time.sleep(0.05)
    time.sleep(4.0)  # another survivor's heartbeat: a duplicate would come now
    order = [m.payload.decode() for m in sub.msgs]
    got = sorted(x for x in order if x in ("gone-w4", "gone-w5"))
    check("the wills of d0's clients arrive on d2, each once [MQTT-3.1.2-8]",
          sorted(order) == ["gone-late", "gone-short", "gone-w4", "gone-w5"], "got %s" % order)
    topics = sorted(m.topic for m in sub.msgs)
    check("on their will topics", topics == ["will/late", "will/short", "will/w4", "will/w5"],
          str(topics))
    took = min(stamp.get("gone-w4", 99), stamp.get("gone-w5", 99))
    # the lease (10 s) was renewed at most lease/3 before the kill; the
    # survivors look at every heartbeat (lease/3)
    check("once the lease lapsed, within a heartbeat or two", 6.0 <= took <= 20.0,
          "%.1f s" % took)
    print("wills published %.1f s after kill -9 (lease 10 s, loaded machine)" % took)
    late = stamp.get("gone-late", 99) - took
    short = stamp.get("gone-short", 99) - took
    check("the will with a 4 s delay comes 4 s after the others", 3.0 <= late <= 6.5,
          "%.1f s after" % late)
    check("the will with a 60 s delay and a 2 s session expiry comes when its session ends, "
          "2 s after the others", 1.0 <= short <= 4.5, "%.1f s after" % short)
    check("the will of a client that connected again within its delay is never published "
          "[MQTT-3.1.3-9]", "gone-back" not in order, order)
    logs = B.log_text() + C.log_text()
    check("a survivor says it published d0's wills and held the delayed ones",
          "node d0 is gone" in logs and "2 of its clients' wills published here, "
          "2 held here for their will delay" in logs,
          [x for x in logs.splitlines() if "is gone" in x])
    check("mover still connected on d1 (its will not published)",
          "gone-mover-d1" not in got and moved.connects == 1, "%d connections" % moved.connects)
finally:
    for c in clients:
        try:
            c.close(disconnect=False)
        except Exception:
            pass
    clusterctl.stop(nodes, nats)
r.finish()
