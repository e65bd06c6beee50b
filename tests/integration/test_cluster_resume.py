"""A dead node's sessions resume elsewhere (docs/cluster.md, "A node that
dies"): every persistent session on node r0 is checkpointed into
JetStream; r0 is killed with -9.

- Claimed: clients whose sessions were offline on r0 (v5 with session
  expiry, 3.1.1 persistent) connect to r1 right after the kill: session
  present [MQTT-3.2.2-3], the QoS 1/2 messages queued on r0 arrive, their
  subscriptions route on r1. A 3.1.1 client that had five QoS 1 messages in
  flight without PUBACK on r0 gets them again on r1 [MQTT-4.4.0-1].
- Adopted: once r0's lease lapses, one survivor adopts the sessions nobody
  claimed as offline sessions: a message published after that is queued
  for an idle client, which finds it when it connects (session present).
  A client connected on r0 with a 4 s will delay gets its will published
  about 4 s after the adoption, once; one with a 60 s delay that connects
  again within it keeps its session and its will is never published
  [MQTT-3.1.3-9].
Three nodes and a real nats-server with JetStream; the messages come from
a publisher on r2."""

import os
import sys
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
from persistctl import Client, ack, kill9, parse_publish, raw_connect  # noqa: E402

r = brokerctl.Results("cluster-resume")
brokerctl.deadline(r, 80)
check = r.check


def raw_publishes(sock, n, timeout=5.0):
    """Reads n PUBLISH packets (without acknowledging them)."""
    got = []
    end = time.time() + timeout
    while len(got) < n and time.time() < end:
        pk = brokerctl.read_packet(sock, max(0.1, end - time.time()))
        if pk and pk[0] & 0xF0 == 0x30:
            got.append(parse_publish(pk[0], pk[1]))
    return got


def will_client(cid, port, delay):
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = delay
    c = Client(cid, 5, port, clean=True, expiry=300,
               will=("rw/" + cid, "gone-" + cid, 1, False), will_props=wp)
    c.c.reconnect_delay_set(60, 60)  # no reconnect to the dead node meanwhile
    return c


nats = clusterctl.Nats()
nodes = []
clients = []
raw = None
try:
    nodes = [clusterctl.start_node(nats, "r%d" % i, extra="midge_connect_timeout 2")
             for i in range(3)]
    A, B, C = nodes
    watcher = Client("will-watcher", 5, C.port)
    clients.append(watcher)
    check("the will watcher connects on r2", watcher.connect())
    watcher.subscribe("rw/#", 1)

    # ---- offline sessions on r0, with QoS 1/2 messages queued
    for v in (5, 4):
        first = Client("off-%d" % v, v, A.port, clean=(v == 5), expiry=300 if v == 5 else None)
        check("v%d off-%d connects on r0" % (v, v), first.connect())
        first.subscribe("rs%d/+/a" % v, 1)
        first.subscribe("rs%d/x" % v, 2)
        first.close()
    idle = Client("idle", 5, A.port, clean=True, expiry=300)
    check("idle connects on r0", idle.connect())
    idle.subscribe("ad/t", 1)
    idle.close()
    # a 3.1.1 client with QoS 1 messages in flight, never acknowledged
    raw, present = raw_connect(A.port, "inflight", clean=False)
    raw.sendall(brokerctl.subscribe_packet(1, "fl/t", 1))
    suback = brokerctl.read_packet(raw)
    check("inflight subscribes on r0", suback and suback[0] == 0x90, repr(suback))
    # clients with wills, connected on r0 when it dies
    willy = will_client("willy", A.port, 4)
    back = will_client("back", A.port, 60)
    clients += [willy, back]
    check("willy (will delay 4 s, session expiry 300 s) connects on r0", willy.connect())
    check("back (will delay 60 s) connects on r0", back.connect())
    time.sleep(0.5)  # r0's subscriptions reach NATS

    items = {v: [("rs%d/%d/a" % (v, i), "q1-%d" % i, 1) for i in range(5)] +
             [("rs%d/x" % v, "q2-%d" % i, 2) for i in range(3)] for v in (5, 4)}
    check("16 QoS 1/2 messages for the offline sessions acknowledged on r2",
          clusterctl.publish(C, "a", items[5] + items[4]))
    check("5 QoS 1 messages for inflight acknowledged on r2",
          clusterctl.publish(C, "f", [("fl/t", "f-%d" % i, 1) for i in range(5)]))
    first_round = raw_publishes(raw, 5)
    check("inflight gets them on r0 and acknowledges none",
          sorted(p[2] for p in first_round) == [b"f-%d" % i for i in range(5)],
          repr(first_round))
    time.sleep(1.0)  # the copies (every 250 ms) reach JetStream

    kill9(A)
    t_kill = time.time()
    raw.close()
    raw = None
    willy.close(disconnect=False)
    back.close(disconnect=False)

    # ---- claimed on r1 right away: resumed from r0's checkpoints
    for v in (5, 4):
        again = Client("off-%d" % v, v, B.port, clean=False, expiry=300 if v == 5 else None)
        clients.append(again)
        check("v%d: off-%d connects on r1 after the kill" % (v, v), again.connect())
        check("v%d: session present [MQTT-3.2.2-3]" % v, again.session_present == 1,
              "session present %r" % again.session_present)
        got = sorted(m.payload.decode() for m in again.wait(8, 5))
        want = sorted(x for _, x, _ in items[v])
        check("v%d: the messages queued on r0 arrive on r1, each once" % v, got == want,
              "got %s" % got)
        time.sleep(0.5)
        check("v%d: a new message on r2 acknowledged" % v,
              clusterctl.publish(C, "b%d" % v, [("rs%d/7/a" % v, "after", 1)]))
        got = [m.payload.decode() for m in again.wait(9, 5)]
        check("v%d: the resumed subscriptions route on r1" % v, "after" in got, str(got))
    raw, present = raw_connect(B.port, "inflight", clean=False)
    check("inflight: session present on r1", present)
    again_round = raw_publishes(raw, 5)
    check("inflight: the 5 unacknowledged messages are sent again [MQTT-4.4.0-1]",
          sorted(p[2] for p in again_round) == [b"f-%d" % i for i in range(5)],
          repr(again_round))
    for p in again_round:
        raw.sendall(ack(0x40, p[1]))
    check("r1 says it resumed a session from r0's checkpoint",
          "resumes here from its checkpoint" in B.log_text())

    # ---- adopted by a survivor once r0's lease lapses
    adopter = None
    end = time.time() + 25
    while adopter is None and time.time() < end:
        for n in (B, C):
            if "sessions of node r0 adopted here" in n.log_text():
                adopter = n
        time.sleep(0.2)
    t_adopt = time.time()
    check("a survivor adopts r0's sessions (lease 10 s)", adopter is not None,
          B.log_text()[-800:] + C.log_text()[-800:])
    print("adopted %.1f s after kill -9 (loaded machine)" % (t_adopt - t_kill))
    lines = [x for x in (B.log_text() + C.log_text()).splitlines() if "adopted here" in x]
    check("it adopts idle, willy and back; the 3 resumed already are not there",
          any("3 sessions of node r0 adopted here" in x for x in lines), str(lines))
    check("no will yet (willy's delay runs from the adoption)",
          [m.topic for m in watcher.msgs] == [], str([m.topic for m in watcher.msgs]))
    time.sleep(0.5)  # the adopter subscribes in NATS for idle's filter
    check("2 QoS 1 messages for idle acknowledged on r2 after the adoption",
          clusterctl.publish(C, "c", [("ad/t", "late-%d" % i, 1) for i in range(2)]))
    back2 = Client("back", 5, C.port, clean=False, expiry=300)
    clients.append(back2)
    check("back connects again on r2 within its 60 s will delay", back2.connect())
    check("back: session present", back2.session_present == 1, repr(back2.session_present))
    time.sleep(0.5)
    idle2 = Client("idle", 5, B.port if adopter is C else C.port, clean=False, expiry=300)
    clients.append(idle2)
    check("idle connects on the node that did not adopt it", idle2.connect())
    check("idle: session present", idle2.session_present == 1, repr(idle2.session_present))
    got = sorted(m.payload.decode() for m in idle2.wait(2, 5))
    check("idle gets the messages published while it was the adopter's",
          got == ["late-0", "late-1"], str(got))
    ws = watcher.wait(1, 8)
    t_will = time.time()
    check("willy's will arrives [MQTT-3.1.2-8]",
          [m.topic for m in ws] == ["rw/willy"], str([m.topic for m in ws]))
    check("about 4 s after the adoption", 3.0 <= t_will - t_adopt <= 7.0,
          "%.1f s" % (t_will - t_adopt))
    time.sleep(1.5)
    check("once, and never back's will [MQTT-3.1.3-9]",
          [m.topic for m in watcher.msgs] == ["rw/willy"], str([m.topic for m in watcher.msgs]))
except Exception as e:  # noqa: BLE001
    check("no exception", False, repr(e))
finally:
    if raw is not None:
        try:
            raw.close()
        except OSError:
            pass
    for cl in clients:
        cl.close(disconnect=False)
    clusterctl.stop(nodes, nats)
r.finish()
