"""Shared subscriptions across nodes: a $share/G/F group with a member on
each of two midge nodes gets each message once in the whole cluster (a
NATS queue group), not once per node. N messages published on a third
node, and N more on a member's own node: every one arrives exactly once
across the members, both members receive some; a non-shared subscriber
of F on each node still gets every message; a second group on the same
filter gets its own copy of each; a group's filter with wildcards. A
member that is offline (a persistent session) is not picked: its node
leaves the group's queue while nobody of the group is connected there, so
a connected member on another node gets every message."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster-share")
brokerctl.deadline(r, 50)
check = r.check
N = 200

nats = clusterctl.Nats()
nodes = []
try:
    nodes = [clusterctl.start_node(nats, "h%d" % i) for i in range(3)]
    A, B, C = nodes
    members, others, plain = [], [], []
    for i, (node, v) in enumerate(((A, 5), (B, 4))):
        m = Client("member-%d" % i, v, node.port)
        check("v%d group member on %s connects" % (v, node.name), m.connect())
        m.subscribe("$share/g/sh/+/x", 1)
        members.append(m)
        o = Client("other-%d" % i, 5, node.port)  # another group, same filter
        o.connect()
        o.subscribe("$share/k/sh/+/x", 1)
        others.append(o)
        p = Client("plain-%d" % i, 5, node.port)  # not shared
        p.connect()
        p.subscribe("sh/+/x", 1)
        plain.append(p)
    time.sleep(0.5)  # the NATS queue subscriptions are made on the cluster thread

    def publish_all(node, tag, n=N, topic="sh/%d/x"):
        """n QoS 1 publishes on node, on topic with i % 7 in it: acknowledged?"""
        p = Client("pub-" + tag, 5, node.port)
        p.connect()
        mids = [p.publish(topic % (i % 7), "%s-%d" % (tag, i), 1).mid for i in range(n)]
        ok = p.wait_acked(mids, 10)
        p.close()
        return ok

    check("%d QoS 1 publishes on h2 (no member there) acknowledged" % N, publish_all(C, "c"))
    check("%d QoS 1 publishes on h0 (a member there) acknowledged" % N, publish_all(A, "a"))
    want = ["%s-%d" % (t, i) for t in ("c", "a") for i in range(N)]

    def collect(group, n):
        end = time.time() + 10
        while time.time() < end and sum(len(c.msgs) for c in group) < n:
            time.sleep(0.05)
        time.sleep(0.5)  # a duplicate would come now
        return [[m.payload.decode() for m in c.msgs] for c in group]

    for name, group in (("g", members), ("k", others)):
        got = collect(group, 2 * N)
        total = sum(len(g) for g in got)
        check("group %s: %d messages in total across the cluster (each once)" % (name, 2 * N),
              total == 2 * N, "got %d (%s)" % (total, [len(g) for g in got]))
        every = sorted(x for g in got for x in g)
        check("group %s: every message, no duplicate" % name, every == sorted(want),
              "missing %d, duplicated %d" % (len(set(want) - set(every)), len(every) - len(set(every))))
        check("group %s: both members (on h0 and h1) received some" % name,
              all(len(g) > 0 for g in got), str([len(g) for g in got]))
        for c, node in zip(group, (A, B)):
            shares = {x.split("-")[0] for x in (m.payload.decode() for m in c.msgs)}
            check("group %s member on %s: messages of both publishers' nodes" % (name, node.name),
                  shares == {"a", "c"}, str(shares))
    got = collect(plain, 4 * N)
    for c, node in zip(plain, (A, B)):
        mine = sorted(m.payload.decode() for m in c.msgs)
        check("non-shared subscriber on %s got every message once" % node.name, mine == sorted(want),
              "got %d" % len(mine))
    for c in members + others + plain:
        c.close()

    # A member offline (a persistent session) is no member NATS may pick:
    # its node leaves the queue group while nobody of the group is
    # connected there, so the connected member elsewhere gets everything
    away = Client("away-a", 5, A.port, clean=False, expiry=300)
    check("a persistent v5 member on h0 connects", away.connect())
    away.subscribe("$share/o/off/#", 1)
    here = Client("here-b", 4, B.port)
    here.connect()
    here.subscribe("$share/o/off/#", 1)
    time.sleep(0.5)
    away.close()  # DISCONNECT: the session stays on h0, offline
    time.sleep(0.5)

    check("100 QoS 1 publishes on h2 while h0's member is offline", publish_all(C, "o1", 100, "off/%d"))
    got = [x for x in collect([here], 100)[0] if x.startswith("o1-")]
    check("the connected member on h1 gets all 100 (none picked for the offline one)",
          sorted(got) == sorted("o1-%d" % i for i in range(100)), "got %d" % len(got))
    back = Client("away-a", 5, A.port, clean=False, expiry=300)
    check("the offline member comes back (session present)",
          back.connect() and back.session_present, back.session_present)
    time.sleep(0.5)  # its node joins the queue group again
    check("100 more with both members connected", publish_all(C, "o2", 100, "off/%d"))
    got = collect([here, back], 100 + 100)
    o2 = [[x for x in g if x.startswith("o2-")] for g in got]
    check("then each of them once across the two members, both served",
          sorted(o2[0] + o2[1]) == sorted("o2-%d" % i for i in range(100)) and
          all(o2), str([len(g) for g in o2]))
    check("nothing of the first 100 was kept for the member that was away",
          not [x for x in got[1] if x.startswith("o1-")], got[1][:5])
    for c in (here, back):
        c.close()
finally:
    clusterctl.stop(nodes, nats)
r.finish()
