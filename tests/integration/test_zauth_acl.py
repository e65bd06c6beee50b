"""Per-message `acl` requests to auth workers (docs/auth.md, "Per-message
acl requests"), end to end with real pyzmq workers (the JSON example,
examples/auth_worker_json.py, and zauth_worker.py) and paho-mqtt 3.1.1
and 5.0 clients (raw sockets where paho 1.6 hides a reason code):
- a connect answer "acl": "ask": publish allowed and denied (v5 PUBACK
  and PUBREC 0x87, 3.1.1 acknowledged; never delivered), subscribe
  allowed and denied per filter (SUBACK 0x87 / 0x80), receive decided by
  the subscription;
- the cache: one request per topic, counted by the worker; without a
  cache every PUBLISH asks, and a SUBSCRIBE asks in turns;
- order while a request is pending: the messages behind the held one
  arrive after it, none lost; other clients are not stalled meanwhile;
- a worker that never answers: midge_auth_on_timeout deny / allow;
- a client that goes while its packet is held: taken over (the packet
  is never handled), and closed after a DISCONNECT (what it sent before
  is still handled);
- a will of an "ask" client is refused (nothing could be asked when it
  is published);
- QoS and retain: `acl` requests carry them; a worker that refuses QoS 2
  or retained publishes on a topic while it allows QoS 0 ones there is
  obeyed (v5 PUBREC/PUBACK 0x87, 3.1.1 acknowledged and dropped, nothing
  retained), each (topic, QoS, retain) asked once, or once per topic
  when the answer says "any_qos_retain"; rules with EMQX's "qos" and
  "retain" conditions (a worker's list, the JSON example's "ask").
midge only (Mosquitto has no auth workers)."""

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import _s, kill, read_packet, varint  # noqa: E402
from test_zauth_lib import PY, WORKER, JSON_WORKER, Raw, Sub, json_lines, worker_broker  # noqa: E402
import test_zauth_lib  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

r = brokerctl.Results("auth workers: acl requests")
brokerctl.deadline(r, 100)
d = brokerctl.scratch_dir("zauth_acl")
workers = []


def start_worker(cmd):
    return test_zauth_lib.start_worker(workers, cmd)


def broker(extra="", timeout_ms=5000):
    return worker_broker(extra, timeout_ms)


def acl_lines(path):
    return [x for x in json_lines(path) if x.get("type") == "acl"]


# ---- the JSON example: allowed and denied, per version ------------------
users = {
    "users": {
        "eve": {"password": brokerctl.run([PY, JSON_WORKER, "--hash", "good"], timeout=30)[1].strip(),
                "ask": True,
                "acl": [{"permission": "deny", "action": "publish", "topic": "eve/secret"},
                        {"permission": "allow", "action": "all", "topic": "eve/#"},
                        {"permission": "allow", "action": "subscribe", "topic": "news/+"}]},
    },
    "anonymous": {"acl": [{"permission": "allow", "action": "all", "topic": "#"}]},
}
db = os.path.join(d, "users.json")
with open(db, "w") as f:
    json.dump(users, f)
b = broker()
start_worker([PY, JSON_WORKER, b.endpoint, db])


def eve(cid, v5, will=None):
    """eve's raw client (user name eve, password good)."""
    c = Raw.__new__(Raw)
    c.v5, c.pid = v5, 0
    c.s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    flags = 0xC2 | (0x04 if will else 0)
    vh = _s(b"MQTT") + bytes([5 if v5 else 4, flags, 0, 60]) + (b"\x00" if v5 else b"")
    pl = _s(cid.encode())
    if will:
        pl += (b"\x00" if v5 else b"") + _s(will.encode()) + _s(b"bye")
    pl += _s(b"eve") + _s(b"good")
    c.s.sendall(b"\x10" + varint(len(vh + pl)) + vh + pl)
    p = read_packet(c.s, 10)
    c.rc = p[1][1] if p and p[0] == 0x20 else None
    return c


watch = Sub(b.port, "watch", True)
r.check("anonymous watcher (rules) subscribes to #", watch.subscribe([("#", 1)]) == [1],
        watch.granted)
e5 = eve("eve5", True)
r.check("eve (\"acl\": \"ask\") connects, 5.0", e5.rc == 0, e5.rc)
r.check("5.0 QoS 1 publish allowed by an acl answer: PUBACK 0", e5.publish("eve/a", "T:1") == 0)
r.check("5.0 QoS 1 publish denied: PUBACK 0x87 [MQTT-3.4.2-1]",
        e5.publish("eve/secret", "T:2") == 0x87)
r.check("5.0 QoS 2 publish denied: PUBREC 0x87", e5.publish("eve/secret", "T:3", qos=2) == 0x87)
r.check("5.0 QoS 1 outside the rules: PUBACK 0x87", e5.publish("other", "T:4") == 0x87)
e3 = eve("eve3", False)
r.check("eve connects, 3.1.1", e3.rc == 0, e3.rc)
r.check("3.1.1 QoS 1 publish denied: acknowledged (no code in 3.1.1)",
        e3.publish("eve/secret", "T:5") == 0)
e3.send_publish("eve/secret", "T:6", 0)
r.check("3.1.1 QoS 1 publish allowed", e3.publish("eve/b", "T:7") == 0)
got = [m for m in watch.wait_for(2, 5) if m[1].startswith("T:")]
time.sleep(0.3)
got = [m for m in watch.msgs if m[1].startswith("T:")]
r.check("only the allowed messages were delivered", got == [("eve/a", "T:1"), ("eve/b", "T:7")],
        got)

s5 = None
for v5, cid, denied in ((True, "eve-s5", 0x87), (False, "eve-s3", 0x80)):
    s = Sub(b.port, cid, v5, "eve", "good")
    g = s.subscribe([("news/+", 0), ("other/#", 0), ("news/#", 1), ("eve/#", 1)])
    r.check("%s SUBSCRIBE decided per filter by acl requests: %s [MQTT-3.9.3-1]"
            % ("5.0" if v5 else "3.1.1", [0, denied, denied, 1]), g == [0, denied, denied, 1], g)
    if v5:
        s5 = s
    else:
        s.stop()
pub = Raw(b.port, "anon-pub", True)
pub.send_publish("news/x", "T:n", 0)
pub.send_publish("other/y", "T:o", 0)
got = s5.wait_for(1, 5)
time.sleep(0.3)
r.check("receive: what the granted subscription matches is delivered, nothing else",
        s5.msgs == [("news/x", "T:n")], s5.msgs)
w = eve("eve-will", True, will="eve/will")
r.check("a will of an \"ask\" client is refused: CONNACK 0x87", w.rc == 0x87, w.rc)
for c in (e5, e3, pub):
    c.close()
s5.stop()
watch.stop()
r.check("broker alive", b.alive())
b.stop()

# ---- the cache, order behind a held packet, other clients ---------------
log = os.path.join(d, "acl.log")
# connect answers cached too: a takeover below needs no worker
b = broker("midge_auth_acl_cache_ttl 60\nmidge_auth_cache_ttl 60\n")
start_worker([PY, WORKER, b.endpoint, "--answer", '{"acl": "ask"}', "--acl-deny", "no/",
              "--acl-delay", "600", "--log", log])
watch = Sub(b.port, "watch", True)
watch.subscribe([("t/#", 1), ("o/#", 1), ("x/#", 1)])
p = Raw(b.port, "p", True)
for i in range(5):
    p.publish("t/a", "a%d" % i)
p.publish("t/b", "b")
asked = [(x["action"], x["topic"]) for x in acl_lines(log)]
r.check("cache: one request per (client, action, topic) [%s]" % asked,
        sorted(asked) == [("publish", "t/a"), ("publish", "t/b"), ("subscribe", "o/#"),
                          ("subscribe", "t/#"), ("subscribe", "x/#")], asked)
req = [x for x in acl_lines(log) if x["topic"] == "t/a"][0]
r.check("the request: version 1, type acl, client id, action, topic",
        req["version"] == 1 and req["client_id"] == "p" and req["action"] == "publish" and
        isinstance(req["id"], str) and req["protocol"] == 5, req)
msgs = watch.wait_for(6)
r.check("the 6 messages delivered", len(msgs) == 6, msgs)
q = Raw(b.port, "q", True)
r.check("another client's topic asked once", q.publish("x/q", "q") == 0)


def topics_of(prefixes, n, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        got = [m for m in watch.msgs if m[0].startswith(prefixes)]
        if len(got) >= n:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    return [m for m in watch.msgs if m[0].startswith(prefixes)]


# order: o/first waits 600 ms for its answer; t/a (cached) behind it
watch.msgs.clear()
watch.times.clear()
t0 = time.time()
p.send_publish("o/first", "first", 1)
for i in range(20):
    p.send_publish("t/a", "n%d" % i, 1 if i % 2 else 0)
# another client goes on meanwhile (its topic is cached)
q_t0 = time.time()
q_rc = q.publish("x/q", "q2")
q_dt = time.time() - q_t0
msgs = topics_of(("o/", "t/"), 21)
r.check("order kept behind a held PUBLISH: it first, then the 20 behind it, none lost",
        [m[1] for m in msgs] == ["first"] + ["n%d" % i for i in range(20)], msgs)
r.check("another client not stalled while one waits (%.0f ms)" % (q_dt * 1000),
        q_rc == 0 and q_dt < 0.4, (q_rc, q_dt))
first_at = [t for m, t in zip(watch.msgs, watch.times) if m[0] == "o/first"]
r.check("the held one waited for the worker (>= 0.5 s)", first_at and first_at[0] - t0 >= 0.5,
        first_at)
r.check("denied by the worker: 0x87", p.publish("no/x", "x") == 0x87)
p.close()
q.close()

# a client that goes while its packet is held
c = Raw(b.port, "gone1", True)
c.send_publish("x/gone1", "g1", 1)
# taken over while held: its connection goes, and its request with it
c2 = Raw(b.port, "gone1", True)
p8e = read_packet(c.s, 5)
r.check("taken over while its PUBLISH waits: DISCONNECT 0x8E", p8e and p8e[0] == 0xE0 and
        p8e[1][:1] == b"\x8e", p8e)
c = Raw(b.port, "gone2", True)
c.send_publish("x/gone2", "g2", 1)
c.close()  # DISCONNECT behind the held PUBLISH, then close
got = [m[0] for m in topics_of(("x/gone",), 1, 5)]
time.sleep(0.8)  # gone1's answer came too (the worker answers in turn)
got = [m[0] for m in watch.msgs if m[0].startswith("x/gone")]
r.check("closed behind a held PUBLISH: it is still handled, once; the taken over one never",
        got == ["x/gone2"], got)
c2.close()
after = Raw(b.port, "after", True)
r.check("the broker serves on after clients went while held",
        b.alive() and after.publish("t/b", "z") == 0)
after.close()
watch.stop()
b.stop()

# ---- no cache, and a SUBSCRIBE with more filters than may be asked at once
log2 = os.path.join(d, "acl2.log")
b = broker("midge_auth_acl_cache_ttl 0\nmidge_auth_acl_pending_per_client 2\n")
start_worker([PY, WORKER, b.endpoint, "--answer", '{"acl": "ask"}', "--acl-deny", "no/",
              "--log", log2])
s = Sub(b.port, "s0", True)
g = s.subscribe([("k/%d" % i, 1) for i in range(5)] + [("no/x", 1)])
r.check("6 filters asked 2 at a time, without a cache: every code, in order",
        g == [1, 1, 1, 1, 1, 0x87], g)
p = Raw(b.port, "p0", True)
for i in range(10):
    p.send_publish("k/%d" % (i % 5), "v%d" % i, i % 2)
r.check("pipelined, each asked again (ttl 0): all 10 delivered in order",
        [m[1] for m in s.wait_for(10, 10)] == ["v%d" % i for i in range(10)], s.msgs)
r.check("ttl 0: one request per PUBLISH", len([x for x in acl_lines(log2)
                                                 if x["action"] == "publish"]) == 10)
p.close()
s.stop()
b.stop()

# ---- QoS and retain: in the request, in the cache's key, in rules --------
log3 = os.path.join(d, "acl3.log")
b = broker()
start_worker([PY, WORKER, b.endpoint, "--answer", '{"acl": "ask"}',
              "--acl-deny-qos2-retained", "q/", "--log", log3])
s = Sub(b.port, "qr-watch", True)
r.check("qr: the watcher subscribes to q/# at QoS 2", s.subscribe([("q/#", 2)]) == [2], s.granted)
pp = mqtt.Client(client_id="qr-paho", protocol=mqtt.MQTTv5)
pp.connect("127.0.0.1", b.port, keepalive=60)
pp.loop_start()
for i in range(2):
    pp.publish("q/t", "q0-%d" % i, qos=0).wait_for_publish(5)
got = [m[1] for m in s.wait_for(2, 10)]
r.check("qr: paho QoS 0 publishes on q/t arrive", got == ["q0-0", "q0-1"], got)
p5 = Raw(b.port, "qr-5", True)
r.check("qr: 5.0 QoS 2 on the same topic: PUBREC 0x87", p5.publish("q/t", "q2", qos=2) == 0x87)
r.check("qr: 5.0 QoS 1 retained on it: PUBACK 0x87",
        p5.publish("q/t", "q1r", qos=1, retain=True) == 0x87)
r.check("qr: 5.0 QoS 1 not retained: PUBACK 0", p5.publish("q/t", "q1", qos=1) == 0)
p4 = Raw(b.port, "qr-4", False)
r.check("qr: 3.1.1 QoS 2: acknowledged (PUBREC) as any 3.1.1 refusal",
        p4.publish("q/t", "q2-311", qos=2) == 0)
p4.send_publish("q/t", "q0r-311", 0, retain=True)
r.check("qr: 3.1.1 QoS 1 after them: PUBACK", p4.publish("q/t", "q1-311", qos=1) == 0)
got = [m[1] for m in s.wait_for(4, 10)]
time.sleep(0.3)
got = [m[1] for m in s.msgs]
r.check("qr: only QoS 0/1 non-retained ones delivered, in order",
        got == ["q0-0", "q0-1", "q1", "q1-311"], got)
late = Sub(b.port, "qr-late", True)
late.subscribe([("q/#", 0)])
time.sleep(0.3)
r.check("qr: nothing was retained (the refused retained publishes)", late.msgs == [], late.msgs)
late.stop()
asked = sorted((x["qos"], x["retain"]) for x in acl_lines(log3)
               if x["action"] == "publish" and x["topic"] == "q/t")
# per client: paho (0, F) once for two; 5.0 (2, F) (1, T) (1, F); 3.1.1
# (2, F) (0, T) (1, F)
r.check("qr: acl requests carry QoS and retain, one per client and (topic, QoS, retain)",
        asked == [(0, False), (0, True), (1, False), (1, False), (1, True), (2, False),
                  (2, False)], asked)
subq = [(x["qos"], x["retain"]) for x in acl_lines(log3) if x["action"] == "subscribe"]
r.check("qr: a SUBSCRIBE's request carries the QoS asked for, retain false",
        (2, False) in subq and (0, False) in subq, subq)
pp.loop_stop()
pp.disconnect()
p5.close()
p4.close()
s.stop()
b.stop()

# "any_qos_retain": one answer per topic, whatever the QoS and retain flag
log4 = os.path.join(d, "acl4.log")
b = broker()
start_worker([PY, WORKER, b.endpoint, "--answer", '{"acl": "ask"}', "--acl-any",
              "--acl-deny", "no/", "--log", log4])
c = Raw(b.port, "any-5", True)
rcs = [c.publish("a/t", "x", qos=q, retain=rt) for q, rt in ((1, False), (2, False), (1, True))]
rcs.append(c.publish("no/t", "x", qos=2))
rcs.append(c.publish("no/t", "x", qos=1, retain=True))
n = len([x for x in acl_lines(log4) if x["action"] == "publish"])
r.check("any_qos_retain: answers kept per topic (2 requests for 5 publishes), decisions kept",
        [x & 0x80 for x in rcs] == [0, 0, 0, 0x80, 0x80] and n == 2, (rcs, n))
c.close()
b.stop()

# rules with EMQX's conditions: a worker's list, checked by midge itself
rules = [{"permission": "deny", "action": "publish", "topic": "q/#", "qos": 2},
         {"permission": "deny", "action": "publish", "topic": "q/#", "retain": True},
         {"permission": "allow", "action": "all", "topic": "q/#", "qos": [0, 1, 2],
          "retain": "all"}]
b = broker()
start_worker([PY, WORKER, b.endpoint, "--answer", json.dumps({"acl": rules})])
s = Sub(b.port, "rl-watch", True)
s.subscribe([("q/#", 2)])
c = Raw(b.port, "rl-5", True)
rcs = [c.publish("q/r", "r2", qos=2), c.publish("q/r", "r1r", qos=1, retain=True),
       c.publish("q/r", "r1", qos=1)]
c4 = Raw(b.port, "rl-4", False)
c4.send_publish("q/r", "r0", 0)
c4.send_publish("q/r", "r0r", 0, retain=True)
got = [m[1] for m in s.wait_for(2, 10)]
time.sleep(0.3)
got = [m[1] for m in s.msgs]
r.check("rules \"qos\": 2 / \"retain\": true deny: 0x87, 0x87, then 0; only r1, r0 delivered",
        rcs == [0x87, 0x87, 0] and got == ["r1", "r0"], (rcs, got))
c.close()
c4.close()
s.stop()
b.stop()

# the JSON example's "ask" decides by the same conditions
db5 = os.path.join(d, "users5.json")
with open(db5, "w") as f:
    json.dump({"users": {}, "anonymous": {"ask": True, "acl": rules}}, f)
b = broker()
start_worker([PY, JSON_WORKER, b.endpoint, db5])
c = Raw(b.port, "ex-5", True)
rcs = [c.publish("q/e", "e2", qos=2), c.publish("q/e", "e1r", qos=1, retain=True),
       c.publish("q/e", "e1", qos=1)]
r.check("auth_worker_json.py \"ask\" with qos/retain conditions: 0x87, 0x87, then allowed "
        "(0x10: no subscribers)", rcs == [0x87, 0x87, 0x10], rcs)
c.close()
b.stop()

# ---- a worker that never answers acl requests ----------------------------
for mode, want in (("deny", 0x87), ("allow", 0)):
    b = broker("midge_auth_on_timeout %s\n" % mode, timeout_ms=800)
    start_worker([PY, WORKER, b.endpoint, "--answer", '{"acl": "ask"}', "--acl-silent"])
    c = Raw(b.port, "t-" + mode, True)
    t0 = time.time()
    rc = c.publish("t/x", "x")
    dt = time.time() - t0
    r.check("worker silent, midge_auth_on_timeout %s: PUBACK %#x after the timeout (%.1f s)"
            % (mode, want, dt), rc in (want, 0x10 if want == 0 else want) and 0.7 <= dt < 5,
            (rc, dt))
    c.close()
    r.check("broker alive", b.alive())
    b.stop()

for w in workers:
    kill(w)
r.finish()
