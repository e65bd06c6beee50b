"""Deliveries asked of auth workers (docs/auth.md, "Receive"): a client
whose connect answer says "acl": "ask" and "receive": "ask" gets a
message only once a worker allowed it (action "receive", the topic, the
delivery's QoS, the retain flag it would get), end to end with a real
pyzmq worker (zauth_worker.py, then the JSON example) and paho-mqtt 3.1.1
and 5.0 subscribers:
- a denied delivery is not sent, the others are, in order, QoS 0 and 1
  alike, to 3.1.1 and 5.0 receivers;
- while an answer is awaited only that receiver waits: the publisher is
  acknowledged and a subscriber served by rules gets its copy at once;
- one request per (client, topic, QoS, retain): the cache;
- a retained message sent on SUBSCRIBE is asked with retain true;
- a persistent session offline is not asked for: its queue is asked
  about when the client is back, and a denied message is not delivered;
- a receiver that goes while its answer is awaited leaves the broker
  serving;
- what waits is bounded by max_queued_messages;
- without "receive": "ask" nothing is asked per delivery (the
  SUBSCRIBE decides, test_zauth_acl.py counts the requests).
midge only (Mosquitto has no auth workers)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import kill  # noqa: E402
from test_zauth_lib import PY, WORKER, JSON_WORKER, Raw, Sub, json_lines, worker_broker  # noqa: E402
import test_zauth_lib  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

r = brokerctl.Results("auth workers: receive requests")
brokerctl.deadline(r, 90)
d = brokerctl.scratch_dir("zauth_receive")
workers = []
ASK = {"acl": "ask", "receive": "ask"}
# "watch" is served by rules, checked by midge itself: never waits
BY_USER = {"watch": {"result": "allow",
                     "acl": [{"permission": "allow", "action": "all", "topic": "#"}]}}


def receives(path, cid=None):
    """(client id, topic, qos, retain) of the worker's receive requests."""
    return [(x["client_id"], x["topic"], x["qos"], x["retain"]) for x in json_lines(path)
            if x.get("type") == "acl" and x.get("action") == "receive" and
            (cid is None or x["client_id"] == cid)]


def payloads(sub, n, timeout=10, settle=0.4):
    sub.wait_for(n, timeout)
    time.sleep(settle)
    with sub.lock:
        return [m[1] for m in sub.msgs]


def first_time(sub, payload):
    with sub.lock:
        return next((t for m, t in zip(sub.msgs, sub.times) if m[1] == payload), None)


# ---- denied and allowed deliveries, order, nobody else waits ------------
log = os.path.join(d, "receive.log")
b = worker_broker("midge_auth_acl_cache_ttl 60\n", 5000)
test_zauth_lib.start_worker(workers, [PY, WORKER, b.endpoint, "--answer", json.dumps(ASK),
                                      "--by-user", json.dumps(BY_USER),
                                      "--acl-deny-receive", "r/secret",
                                      "--acl-receive-delay", "400", "--log", log])
watch = Sub(b.port, "watch", True, "watch", "x")
r.check("a subscriber served by rules subscribes", watch.subscribe([("r/#", 1)]) == [1],
        watch.granted)
s5 = Sub(b.port, "rs5", True)
r.check("5.0 \"receive\": \"ask\" subscriber: SUBSCRIBE allowed", s5.subscribe([("r/#", 1)]) == [1],
        s5.granted)
s3 = Sub(b.port, "rs3", False)
r.check("3.1.1 one too", s3.subscribe([("r/#", 1)]) == [1], s3.granted)
p = Raw(b.port, "rp", True)
t0 = time.time()
rc1 = p.publish("r/a", "m1", qos=1)
dt = time.time() - t0
p.send_publish("r/secret", "m2", 1)
p.send_publish("r/b", "m3", 0)
p.send_publish("r/a", "m4", 1)
rc5 = p.publish("r/b", "m5", qos=1)
want = ["m1", "m3", "m4", "m5"]
got5, got3 = payloads(s5, 4), payloads(s3, 4)
r.check("5.0: the denied delivery is not sent, the others in order [%s]" % got5, got5 == want,
        got5)
r.check("3.1.1: the same [%s]" % got3, got3 == want, got3)
r.check("the publisher is acknowledged before any receive answer (%.0f ms < 400)" % (dt * 1000),
        rc1 == 0 and rc5 == 0 and dt < 0.35, (rc1, rc5, dt))
t_watch, t_s5 = first_time(watch, "m1"), first_time(s5, "m1")
r.check("a subscriber served by rules gets its copy at once (%s ms), all five" %
        (None if t_watch is None else int((t_watch - t0) * 1000)),
        t_watch is not None and t_watch - t0 < 0.35 and
        [m[1] for m in watch.msgs] == ["m1", "m2", "m3", "m4", "m5"], watch.msgs)
r.check("the asking receiver waited for the worker (%s ms >= 400)" %
        (None if t_s5 is None else int((t_s5 - t0) * 1000)),
        t_s5 is not None and t_s5 - t0 >= 0.38, t_s5)
asked = sorted(receives(log))
r.check("one receive request per (client, topic, QoS, retain); none for the rules client",
        asked == sorted([(c, "r/a", 1, False) for c in ("rs5", "rs3")] +
                        [(c, "r/secret", 1, False) for c in ("rs5", "rs3")] +
                        [(c, "r/b", q, False) for c in ("rs5", "rs3") for q in (0, 1)]),
        asked)
req = next(x for x in json_lines(log) if x.get("action") == "receive")
r.check("the request: version 1, type acl, action receive, the receiver's client id",
        req["version"] == 1 and req["type"] == "acl" and req["client_id"] in ("rs5", "rs3") and
        req["topic"] in ("r/a", "r/secret", "r/b"), req)

# a retained message: live, retain false; on SUBSCRIBE, retain true
p.publish("r/ret", "kept", qos=1, retain=True)
payloads(s5, 5)
late = Sub(b.port, "rlate", True)
late.subscribe([("r/ret", 1)])
got = payloads(late, 1)
r.check("a retained message sent on SUBSCRIBE is asked with retain true, then delivered",
        got == ["kept"] and ("rlate", "r/ret", 1, True) in receives(log, "rlate") and
        ("rs5", "r/ret", 1, False) in receives(log, "rs5"), (got, receives(log, "rlate")))
late.stop()

# a persistent session offline: asked about when its client is back
props = Properties(PacketTypes.CONNECT)
props.SessionExpiryInterval = 300
per = mqtt.Client(client_id="rper", protocol=mqtt.MQTTv5)
per.connect("127.0.0.1", b.port, keepalive=60, clean_start=False, properties=props)
per.loop_start()
time.sleep(0.3)
per.subscribe([("r/off/#", 1), ("r/secret/#", 1)])
time.sleep(0.5)
per.disconnect()
per.loop_stop()
time.sleep(0.3)
p.publish("r/off/c", "off1", qos=1)
p.publish("r/secret/x", "off2", qos=1)
p.publish("r/off/d", "off3", qos=1)
time.sleep(0.3)
offline_asked = receives(log, "rper")
per_msgs = []
per2 = mqtt.Client(client_id="rper", protocol=mqtt.MQTTv5)
per2.on_message = lambda c, u, m: per_msgs.append(m.payload.decode())
per2.connect("127.0.0.1", b.port, keepalive=60, clean_start=False, properties=props)
per2.loop_start()
end = time.time() + 10
while len(per_msgs) < 2 and time.time() < end:
    time.sleep(0.05)
time.sleep(0.5)
r.check("offline: nothing asked while the session had no connection", offline_asked == [],
        offline_asked)
r.check("back: its queue asked about, the denied one dropped, the others in order [%s]"
        % per_msgs, per_msgs == ["off1", "off3"] and
        sorted(t for _, t, _, _ in receives(log, "rper")) == ["r/off/c", "r/off/d", "r/secret/x"],
        (per_msgs, receives(log, "rper")))
per2.disconnect()
per2.loop_stop()

# a receiver that goes while its answer is awaited
gone = Sub(b.port, "rgone", True)
gone.subscribe([("g/#", 1)])
p.send_publish("g/new", "g1", 1)
time.sleep(0.1)
gone.stop()
time.sleep(0.6)
r.check("a receiver gone while asked about: the broker serves on",
        b.alive() and p.publish("r/a", "m6", qos=1) == 0 and "m6" in payloads(s5, 5))
for c in (watch, s5, s3):
    c.stop()
p.close()
b.stop()

# ---- bounded: what waits for an answer is max_queued_messages ------------
log2 = os.path.join(d, "bound.log")
b = worker_broker("max_queued_messages 5\n", 5000)
test_zauth_lib.start_worker(workers, [PY, WORKER, b.endpoint, "--answer", json.dumps(ASK),
                                      "--acl-receive-delay", "800", "--log", log2])
s = Sub(b.port, "bq", True)
s.subscribe([("q/#", 0)])
p = Raw(b.port, "bp", True)
for i in range(20):
    p.send_publish("q/x", "q%d" % i, 0)
# asked after the question above (the worker answers in turn): routed
# once the queue drained
p.publish("q/y", "sync", qos=1)
got = payloads(s, 6, timeout=10, settle=0.5)
r.check("20 QoS 0 messages behind one question: the first 5 (max_queued_messages) [%s]" % got,
        got == ["q%d" % i for i in range(5)] + ["sync"], got)
s.stop()
p.close()
b.stop()

# ---- the JSON example: "ask_receive" decided by its subscribe rules ------
db = os.path.join(d, "users.json")
with open(db, "w") as f:
    json.dump({"users": {}, "anonymous": {
        "ask": True, "ask_receive": True,
        "acl": [{"permission": "deny", "action": "subscribe", "topic": "j/hidden"},
                {"permission": "allow", "action": "all", "topic": "j/#"}]}}, f)
b = worker_broker("", 5000)
test_zauth_lib.start_worker(workers, [PY, JSON_WORKER, b.endpoint, db])
s = Sub(b.port, "jr", True)
r.check("auth_worker_json.py: the subscriber subscribes to j/#", s.subscribe([("j/#", 1)]) == [1],
        s.granted)
p = Raw(b.port, "jp", True)
rcs = [p.publish("j/open", "o1"), p.publish("j/hidden", "h1"), p.publish("j/open", "o2")]
got = payloads(s, 2)
r.check("auth_worker_json.py \"ask_receive\": j/hidden published but not delivered [%s]" % got,
        rcs == [0, 0, 0] and got == ["o1", "o2"], (rcs, got))
s.stop()
p.close()
b.stop()

for w in workers:
    kill(w)
r.finish()
