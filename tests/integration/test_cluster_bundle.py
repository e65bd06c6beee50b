"""Messages that follow one another to one NATS subject cross as one NATS
message, a bundle (docs/cluster.md, "Bundles"): a burst of 2000 QoS 0
and then 500 QoS 1 publishes from one client on n0, in runs on two
topics, reaches a subscriber on n1 whole, once each and in publish
order, in far fewer NATS messages than MQTT ones (nats-server's own
count, /varz in_msgs). A damaged bundle that another NATS client
publishes gives the messages before the damage, is counted as dropped
($SYS), and the node goes on."""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster_bundle")
brokerctl.deadline(r, 60)
check = r.check

QOS0, QOS1, RUN = 2000, 500, 50


def topic_of(i):
    """Runs of RUN messages on each topic in turn."""
    return "burst/%s" % "ab"[(i // RUN) % 2]


def sys_value(node, topic):
    c = Client("sys-%d" % time.time_ns(), 4, node.port)
    c.connect()
    c.subscribe(topic, 0)
    ms = c.wait(1, 3)
    c.close()
    return int(ms[-1].payload) if ms else -1


def wire_v1(topic, payload):
    """One message as a node encodes it (cluster/wire.h, version 1)."""
    t = topic.encode()
    return b"M\x01\x00\x00" + struct.pack(">HHIQ", len(t), 0, 0, 0) + t + payload


nats = clusterctl.Nats(monitor=True)
nodes = []
try:
    nodes = [clusterctl.start_node(nats, "n%d" % i) for i in range(2)]
    A, B = nodes
    sub = Client("bundle-sub", 5, B.port)
    check("subscriber on n1 connects", sub.connect())
    sub.subscribe("burst/#", 1)
    time.sleep(1.0)  # n1's NATS subscription is in place

    before = nats.varz()["in_msgs"]
    s = socket.create_connection(("127.0.0.1", A.port), timeout=10)
    s.sendall(brokerctl.connect_packet("bundle-pub"))
    check("publisher on n0 connects", brokerctl.read_packet(s)[0] == 0x20)
    burst = b"".join(brokerctl.publish_packet(topic_of(i), b"%d" % i) for i in range(QOS0))
    burst += b"".join(brokerctl.publish_packet(topic_of(i), b"%d" % i, qos=1, packet_id=i - QOS0 + 1)
                      for i in range(QOS0, QOS0 + QOS1))
    s.sendall(burst)  # one write: the node reads them in a few reads
    acks = set()
    end = time.time() + 20
    while len(acks) < QOS1 and time.time() < end:
        p = brokerctl.read_packet(s, timeout=max(0.1, end - time.time()))
        if p and p[0] == 0x40:
            acks.add(struct.unpack(">H", p[1][:2])[0])
    check("every QoS 1 publish acknowledged", len(acks) == QOS1, "%d of %d" % (len(acks), QOS1))
    got = [int(m.payload) for m in sub.wait(QOS0 + QOS1, 20)]
    check("n1's subscriber got all %d, each once, in publish order" % (QOS0 + QOS1),
          got == list(range(QOS0 + QOS1)), "%d messages, first wrong at %s" % (
              len(got), next((k for k, v in enumerate(got) if v != k), None)))
    check("... each on its topic",
          all(m.topic == topic_of(int(m.payload)) for m in sub.msgs[:QOS0 + QOS1]))
    crossed = nats.varz()["in_msgs"] - before
    print("note %d NATS messages for %d MQTT messages" % (crossed, QOS0 + QOS1))
    # without bundles: one NATS message per MQTT message, and journal records
    check("they crossed in far fewer NATS messages than MQTT messages",
          crossed < (QOS0 + QOS1) // 4, "%d NATS messages for %d" % (crossed, QOS0 + QOS1))
    s.close()

    # ---- a damaged bundle from another NATS client --------------------------------
    time.sleep(1.2)
    dropped = sys_value(B, "$SYS/broker/midge/cluster/messages/dropped")
    good = wire_v1("burst/hand", b"hand-made")
    nats.publish_raw("t.m.burst.hand", b"B\x01" + struct.pack(">I", len(good)) + good +
                     b"\x00\x00\x00\x09")
    ms = sub.wait(QOS0 + QOS1 + 1, 5)
    check("the message before the damage is delivered",
          len(ms) > QOS0 + QOS1 and ms[QOS0 + QOS1].payload == b"hand-made",
          "%d messages" % len(ms))
    time.sleep(1.2)
    after = sys_value(B, "$SYS/broker/midge/cluster/messages/dropped")
    check("the damaged rest is counted as dropped", after == dropped + 1,
          "%d -> %d" % (dropped, after))
    p = Client("after-pub", 4, A.port)
    p.connect()
    check("n1 still delivers what n0 forwards",
          p.wait_acked([p.publish("burst/after", "ok", 1).mid]) and
          len(sub.wait(QOS0 + QOS1 + 2, 5)) == QOS0 + QOS1 + 2)
    check("both nodes still run", all(n.alive() for n in nodes))
    p.close()
    sub.close()
finally:
    clusterctl.stop(nodes, nats)
r.finish()
