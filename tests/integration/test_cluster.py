"""Three midge nodes over a real nats-server with JetStream act as one
broker: publish/subscribe across nodes at QoS 0, 1 and 2 with MQTT 3.1.1
and 5 and wildcards (a/# also matching a, escaped '.', '*', '>', empty
levels, $ topics apart); each message arrives once (no echo through NATS);
a node subscribes in NATS only for its clients' filters (the
$SYS/broker/midge/cluster/subjects count follows SUBSCRIBE and
UNSUBSCRIBE); retained messages set on one node are seen on the others
and cleared the same way; a second node with a name in use is refused."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster")
brokerctl.deadline(r, 50)
check = r.check

nats = clusterctl.Nats()
try:
    nodes = [clusterctl.start_node(nats, "n%d" % i) for i in range(3)]
    A, B, C = nodes

    # ---- a duplicate node name stops start-up ----------------------------------
    try:
        dup = clusterctl.start_node(nats, "n1")
        check("a second n1 is refused", False, "it started")
        dup.stop()
    except RuntimeError as e:
        check("a second n1 is refused at start-up", "is in use in cluster t" in str(e), str(e)[-300:])

    # ---- cross-node publish/subscribe -----------------------------------------
    filters = ["w/#", "w/+/x", "dot.ted/*/>", "e//+", "$app/#"]
    subs = {}
    for v in (4, 5):
        for qos in (0, 1, 2):
            s = Client("sub-%d-%d" % (v, qos), v, B.port)
            check("v%d subscriber on n1 connects" % v, s.connect())
            for f in filters:
                s.subscribe(f, qos)
            s.subscribe("#", qos)  # never matches $app/...
            subs[(v, qos)] = s
    time.sleep(0.3)  # the NATS subscriptions are made on the cluster thread
    topics = ["w", "w/a", "w/q/x", "dot.ted/*/>", "e//z", "$app/1"]
    expected = {  # messages per subscriber: one per matching filter
        "w": 2, "w/a": 2, "w/q/x": 3, "dot.ted/*/>": 2, "e//z": 2, "$app/1": 1}
    for v in (4, 5):
        for qos in (0, 1, 2):
            p = Client("pub-%d-%d" % (v, qos), v, (A if qos != 1 else C).port)
            p.connect()
            mids = [p.publish(t, "%s|%d|%d" % (t, v, qos), qos).mid for t in topics]
            if qos:
                check("v%d QoS %d: every publish acknowledged" % (v, qos), p.wait_acked(mids))
            p.close()
    time.sleep(0.5)
    for (v, qos), s in subs.items():
        want = sum(expected.values()) * 2  # two publishers per subscriber version... per QoS
        msgs = s.wait(want, 5)
        by = {}
        for m in msgs:
            by.setdefault(m.payload.decode(), []).append(m)
        for pv in (4, 5):
            for t in topics:
                key = "%s|%d|%d" % (t, pv, qos)
                got = by.get(key, [])
                check("v%d QoS %d subscriber on n1 got %s from v%d on another node %d times" %
                      (v, qos, t, pv, expected[t]), len(got) == expected[t],
                      "got %d" % len(got))
                if got:
                    check("... at QoS %d with topic %s" % (qos, t),
                          all(m.qos == qos and m.topic == t for m in got))
    for s in subs.values():
        s.close()

    # ---- once: a subscriber on the publisher's node, and one on each node -------
    local = Client("local", 5, A.port)
    local.connect()
    local.subscribe("once/#", 1)
    others = [Client("o%d" % i, 4, n.port) for i, n in enumerate(nodes)]
    for o in others:
        o.connect()
        o.subscribe("once/+", 1)
    time.sleep(0.3)
    p = Client("once-pub", 5, A.port)
    p.connect()
    mids = [p.publish("once/%d" % i, str(i), 1).mid for i in range(50)]
    check("50 QoS 1 publishes acknowledged", p.wait_acked(mids))
    time.sleep(0.5)
    check("the subscriber on the publisher's node got each exactly once",
          sorted(int(m.payload) for m in local.wait(50)) == list(range(50)))
    for i, o in enumerate(others):
        got = [int(m.payload) for m in o.wait(50)]
        check("the subscriber on n%d got each exactly once, in order" % i, got == list(range(50)),
              "%d messages" % len(got))
    for c in others + [local, p]:
        c.close()

    # ---- interest: NATS subscriptions follow the filters --------------------------
    def subjects(node):
        c = Client("sys-%d" % time.time_ns(), 4, node.port)
        c.connect()
        c.subscribe("$SYS/broker/midge/cluster/subjects", 0)
        ms = c.wait(1, 3)
        c.close()
        return int(ms[-1].payload) if ms else -1

    time.sleep(1.2)
    base = subjects(C)
    c1 = Client("interest", 4, C.port)
    c1.connect()
    c1.subscribe("int/#", 0)  # two NATS subjects: int.> and int
    c1.subscribe("int/#", 1)  # the same filter: nothing new
    c2 = Client("interest2", 4, C.port)
    c2.connect()
    c2.subscribe("int/#", 0)  # refcounted
    time.sleep(1.2)
    check("a/# costs two NATS subscriptions, counted once per filter", subjects(C) == base + 2,
          "%d -> %d" % (base, subjects(C)))
    c1.c.unsubscribe("int/#")
    time.sleep(1.2)
    check("still two while another client has the filter", subjects(C) == base + 2)
    c2.close()
    time.sleep(1.2)
    check("none once the last one is gone", subjects(C) == base, "%d" % subjects(C))
    c1.close()

    # ---- retained messages cluster-wide ----------------------------------------
    p = Client("ret-pub", 5, A.port)
    p.connect()
    info = p.publish("ret/one", "kept", 1, retain=True)
    check("retained publish acknowledged", p.wait_acked([info.mid]))
    time.sleep(0.5)
    for n in (B, C):
        s = Client("ret-%s" % n.name, 4, n.port)
        s.connect()
        s.subscribe("ret/#", 1)
        ms = s.wait(1, 3)
        check("a subscribe on %s sees the retained message set on n0" % n.name,
              len(ms) == 1 and ms[0].payload == b"kept" and ms[0].retain)
        s.close()
    q = Client("ret-clear", 4, C.port)
    q.connect()
    info = q.publish("ret/one", "", 1, retain=True)
    q.wait_acked([info.mid])
    q.close()
    time.sleep(0.5)
    for n in nodes:
        s = Client("ret2-%s" % n.name, 5, n.port)
        s.connect()
        s.subscribe("ret/#", 1)
        ms = s.wait(1, 1)
        check("cleared on n2: %s has no retained message" % n.name, ms == [])
        s.close()
    # a node started later loads what the bucket holds
    p.publish("ret/late", "for the fourth", 1, retain=True)
    time.sleep(0.5)
    p.close()
    D = clusterctl.start_node(nats, "n3")
    s = Client("ret-late", 4, D.port)
    s.connect()
    s.subscribe("ret/late", 0)
    ms = s.wait(1, 3)
    check("a node started later has the cluster's retained messages",
          len(ms) == 1 and ms[0].payload == b"for the fourth")
    s.close()
    D.stop()
    check("every node still runs", all(n.alive() for n in nodes))
finally:
    brokerctl.stop_all()
    nats.stop()
r.finish()
