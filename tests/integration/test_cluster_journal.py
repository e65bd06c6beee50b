"""A dead node's sessions lose nothing acknowledged (docs/cluster.md, "A
node that dies"): every QoS 1/2 message is kept in the JetStream journal
(`midge_cluster_journal`, on by default), and a session resumed or adopted
from a dead node's checkpoint is replayed from it, without duplicates.
Without the journal two things are lost, and this test fails on both:

- The window under load: a v5 subscriber "jsub" (session expiry 300 s,
  receive maximum 10, slower than the stream, so n0 holds a queue for it)
  on n0 receives a steady stream of QoS 1 messages published on n1; n0 is
  killed with -9 and jsub connects again on n2 0.5 s later (session
  present [MQTT-3.2.2-3]) while the stream goes on for 2 s more. Every
  message the publisher got a PUBACK for reaches jsub: those that reached
  n0's queue after its last checkpoint (250 ms) and those published while
  jsub had no node. Duplicates (QoS 1 allows them: what jsub acknowledged
  after the checkpoint) stay under 10 % of the stream.
- Published before the adoption: "jidle" (QoS 2 subscription, offline
  on n0 when it dies) is sent 20 QoS 1 and 20 QoS 2 messages from n1
  right after the kill, while nobody holds its session; once a survivor
  adopted it (n0's 10 s lease lapsed), jidle connects on the other
  survivor: session present, all 40 arrive in publish order per QoS, and
  none twice (exactly once for QoS 2 [MQTT-4.3.3-1]).
Three nodes and a real nats-server with JetStream."""

import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from clusterctl import Stream, counts, ranges  # noqa: E402
from persistctl import Client, kill9  # noqa: E402

r = brokerctl.Results("cluster-journal")
brokerctl.deadline(r, 60)
check = r.check


class Slow(Client):
    """A Client that takes delay s over each message (its PUBACK waits)."""
    delay = 0.0

    def _on_message(self, client, userdata, msg):
        if self.delay:
            time.sleep(self.delay)
        super()._on_message(client, userdata, msg)


nats = clusterctl.Nats()
nodes = []
clients = []
stream = None
t0 = time.time()
try:
    nodes = [clusterctl.start_node(nats, "n%d" % i, extra="midge_connect_timeout 2")
             for i in range(3)]
    A, B, C = nodes

    # ---- jidle: an offline session on n0 with a QoS 2 subscription
    idle = Client("jidle", 5, A.port, clean=True, expiry=300)
    check("jidle connects on n0", idle.connect())
    check("jidle subscribes ja/t at QoS 2", idle.subscribe("ja/t", 2))
    idle.close()

    # ---- jsub on n0, a stream of QoS 1 messages from n1
    sub = Slow("jsub", 5, A.port, clean=True, expiry=300, receive_max=10)
    sub.delay = 0.006  # a third of the stream's rate: n0 queues the rest
    sub.c.reconnect_delay_set(60, 60)  # no reconnect to the dead node meanwhile
    clients.append(sub)
    check("jsub connects on n0", sub.connect())
    check("jsub subscribes jr/# at QoS 1", sub.subscribe("jr/#", 1))
    time.sleep(0.5)  # n0's subscriptions reach NATS
    pub = Client("jpub", 5, B.port)
    clients.append(pub)
    check("the publisher connects on n1", pub.connect())
    stream = Stream(pub, "jr/", per_seq=True, interval=0.002, limit=3000)
    stream.start()
    time.sleep(1.0)
    before = len(stream.acked())
    got_before = len(counts(sub))
    check("messages flow n1 -> n0 before the kill (%d acked, %d received)"
          % (before, got_before), before > 100 and got_before > 50)
    check("n0 holds a queue for jsub when it dies (%d)" % (before - got_before),
          before - got_before > 30)

    kill9(A)
    t_kill = time.time()
    sub.delay = 0.0

    # ---- right after the kill: 20 QoS 1 and 20 QoS 2 messages for jidle
    items = []
    for i in range(20):
        items += [("ja/t", "1-%d" % i, 1), ("ja/t", "2-%d" % i, 2)]
    check("40 QoS 1/2 messages for jidle acknowledged on n1 after the kill",
          clusterctl.publish(B, "ja", items))
    t_idle_pub = time.time() - t_kill

    # ---- jsub back on n2 0.5 s after the kill
    time.sleep(max(0.0, t_kill + 0.5 - time.time()))
    sub2 = Client("jsub", 5, C.port, clean=False, expiry=300)
    clients.append(sub2)
    check("jsub connects again on n2", sub2.connect())
    t_back = time.time()
    check("jsub: session present [MQTT-3.2.2-3]", sub2.session_present == 1,
          "session present %r" % sub2.session_present)
    sub.close(disconnect=False)
    print("jidle's messages acknowledged %.2f s after the kill, jsub back on n2 %.2f s after it"
          % (t_idle_pub, t_back - t_kill))
    time.sleep(2.0)
    stream.stop()
    acked = stream.acked()
    check("the stream went on after jsub came back (%d published, %d acked)"
          % (stream.seq, len(acked)), len(acked) > before + 200)
    end = time.time() + 8
    while time.time() < end and not acked <= set(counts(sub, sub2)):
        time.sleep(0.2)
    got = counts(sub, sub2)
    missing = sorted(acked - set(got))
    after_kill = [s for s in missing if (stream.acked_at(s) or 0) >= t_kill]
    check("every message acknowledged to the publisher reached jsub (%d acked)" % len(acked),
          not missing,
          "missing %d: %d acknowledged before the kill (after n0's last checkpoint), "
          "%d after it (no node held the session): %s" % (
              len(missing), len(missing) - len(after_kill), len(after_kill), ranges(missing)))
    dups = sum(n - 1 for n in got.values() if n > 1)
    print("jsub: %d received, %d distinct, %d duplicates" % (sum(got.values()), len(got), dups))
    check("duplicates fewer than 10%% of the acknowledged messages (%d)" % dups,
          dups < len(acked) // 10, sorted(s for s, n in got.items() if n > 1)[:40])

    # ---- jidle, once a survivor adopted its session
    adopter = None
    end = t_kill + 20
    while adopter is None and time.time() < end:
        for n in (B, C):
            if "sessions of node n0 adopted here" in n.log_text():
                adopter = n
        time.sleep(0.2)
    check("a survivor adopts n0's sessions (lease 10 s)", adopter is not None,
          B.log_text()[-800:] + C.log_text()[-800:])
    print("adopted %.1f s after kill -9" % (time.time() - t_kill))
    time.sleep(0.5)
    idle2 = Client("jidle", 5, B.port if adopter is C else C.port, clean=False, expiry=300)
    clients.append(idle2)
    check("jidle connects on the survivor that did not adopt it", idle2.connect())
    check("jidle: session present [MQTT-3.2.2-3]", idle2.session_present == 1,
          "session present %r" % idle2.session_present)
    idle2.wait(40, 5)
    time.sleep(0.5)  # anything sent twice
    with idle2.cond:
        ps = [m.payload.decode() for m in idle2.msgs]
    q1 = [p for p in ps if p.startswith("1-")]
    q2 = [p for p in ps if p.startswith("2-")]
    want = {q: ["%d-%d" % (q, i) for i in range(20)] for q in (1, 2)}
    check("jidle gets the 40 messages published before the adoption (got %d)" % len(ps),
          set(ps) == set(want[1] + want[2]),
          "missing %d: %s" % (len(set(want[1] + want[2]) - set(ps)),
                              [p for p in want[1] + want[2] if p not in ps]))
    for q, got_q in ((1, q1), (2, q2)):
        check("jidle: the QoS %d messages that arrived came in publish order" % q,
              got_q == sorted(got_q, key=lambda p: int(p[2:])), str(got_q))
    dups = len(ps) - len(set(ps))
    check("jidle: no duplicates (QoS 2 exactly once [MQTT-4.3.3-1])", dups == 0,
          "%d duplicates: %s" % (dups, sorted(p for p, n in collections.Counter(ps).items()
                                               if n > 1)))
except Exception as e:  # noqa: BLE001
    check("no exception", False, repr(e))
finally:
    if stream is not None:
        stream.stop_flag.set()
    for cl in clients:
        cl.close(disconnect=False)
    clusterctl.stop(nodes, nats)
    print("runtime %.1f s" % (time.time() - t0))
r.finish()
