"""Wills of a node that died (docs/cluster.md, "Wills of a node that
died"): clients with wills are connected on node m0, which is killed with
-9 (it publishes nothing). Once its lease lapses, one surviving node
publishes their wills for the cluster: a subscriber on m2 gets each will
exactly once (v5 and 3.1.1) [MQTT-3.1.2-8]; not the will of a client that
sent DISCONNECT [MQTT-3.1.2-10], nor that of a client whose session went
on on m1 before the kill [MQTT-3.1.3-9]. Three nodes and a real
nats-server with JetStream."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client, kill9  # noqa: E402

r = brokerctl.Results("cluster-will")
brokerctl.deadline(r, 55)
check = r.check

nats = clusterctl.Nats()
nodes = []
clients = []
try:
    nodes = [clusterctl.start_node(nats, "d%d" % i) for i in range(3)]
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
    want = ["gone-w4", "gone-w5"]
    end = time.time() + 25
    while time.time() < end and len(sub.msgs) < 2:
        time.sleep(0.1)
    took = time.time() - t0
    time.sleep(4.0)  # another survivor's heartbeat: a duplicate would come now
    got = sorted(m.payload.decode() for m in sub.msgs)
    check("the wills of d0's clients arrive on d2, each once [MQTT-3.1.2-8]", got == want,
          "got %s" % got)
    topics = sorted(m.topic for m in sub.msgs)
    check("on their will topics", topics == ["will/w4", "will/w5"], str(topics))
    # the lease (10 s) was renewed at most lease/3 before the kill; the
    # survivors look at every heartbeat (lease/3)
    check("once the lease lapsed, within a heartbeat or two",
          6.0 <= took <= 20.0 if len(got) >= 2 else False, "%.1f s" % took)
    print("wills published %.1f s after kill -9 (lease 10 s, loaded machine)" % took)
    logs = B.log_text() + C.log_text()
    check("a survivor says it published d0's wills", "node d0 is gone" in logs
          and "2 of its clients' wills published" in logs)
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
