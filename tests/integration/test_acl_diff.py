"""acl_file equivalence with Mosquitto: the same acl_file and password file
(made with mosquitto_passwd) on midge and on /usr/sbin/mosquitto, the same
matrix of clients, and the same deliveries.

Per broker, in order:
  1. admin publishes retained messages (QoS 1);
  2. one subscriber per (user, filter): users anonymous, admin, alice, bob,
     carol (no section of her own) and "ev+l" (a wildcard in the name, so
     the patterns give it nothing), filters "#", "+/+", "+/#", "$SYS/#",
     "public/#", "devices/#", "users/+/inbox", "alice/#", "+/x", "bob/x",
     MQTT 5 and 3.1.1 alternately, plus subscribers whose client ids hold
     a wildcard and two shared subscriptions; each gets the retained
     messages its ACL lets it read (shared ones get none: the
     specification's rule, which Mosquitto 2.0.11 does not follow, so
     retained deliveries to them are not compared); four persistent 3.1.1
     sessions subscribe to "#" and go offline;
  3. admin publishes every topic of the matrix live, and one message on
     each subscriber's own devices/<client id>/... topics (pattern %c);
  4. every user publishes every topic of the matrix, as MQTT 5 (the PUBACK
     reason code says whether the publish was denied: 0x87) and as 3.1.1
     (acknowledged either way, as Mosquitto does);
  5. the offline sessions come back for what was queued for them;
  6. what each subscriber received (topic, payload, retain flag) and each
     MQTT 5 publish's verdict are recorded.
Both brokers' records must be identical; the figures (cases, deliveries
compared) are printed. Wills are not in the matrix: midge refuses a
CONNECT whose will topic the ACL denies, Mosquitto drops the will later
(docs/security.md).

Run with MIDGE_BROKER=mosquitto it checks nothing of midge: it then runs
Mosquitto twice, which proves the harness is deterministic.
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

r = brokerctl.Results("test_acl_diff")
brokerctl.deadline(r, 240)

ACL = """# the anonymous section: clients without a user name
topic read public/#
topic readwrite anon/rw
topic read $SYS/broker/uptime

user admin
topic readwrite #
topic readwrite $SYS/#

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic write shared/in
topic read shared/out
topic read $SYS/broker/connection/#

user bob
topic bob/x
topic read +/x
topic deny alice/#

user ev+l
topic read evil/#

# every client, %c its client id and %u its user name as a whole level
pattern readwrite devices/%c/#
pattern read users/%u/inbox
pattern deny devices/%c/locked
pattern write users/%u/outbox
"""

USERS = [None, "admin", "alice", "bob", "carol", "ev+l"]
PASSWORDS = {u: "pw-" + u.replace("+", "p") for u in USERS if u}
FILTERS = ["#", "+/+", "+/#", "$SYS/#", "public/#", "devices/#", "users/+/inbox", "alice/#",
           "+/x", "bob/x"]
TOPICS = ["public/a", "public/b/c", "anon/rw", "alice/x", "alice/secret/k", "alice/deep/x",
          "shared/in", "shared/out", "bob/x", "evil/x", "other/x", "devices/other/t",
          "users/alice/inbox", "users/bob/inbox", "users/carol/inbox", "users/carol/outbox",
          "$SYS/broker/uptime", "$SYS/broker/connection/b1/state", "$SYS/x", "$share/g/x"]
# $SYS/broker/version: no client may publish (or retain) on $SYS, admin neither
RETAINED = ["public/r", "alice/r", "alice/secret/r", "bob/x", "users/alice/inbox", "other/x",
            "shared/out", "$SYS/broker/version", "$SYS/broker/connection/b2/state"]


def uname(u):
    return u or "anon"


def sub_cid(u, k):
    return "sub-%s-%d" % (uname(u).replace("+", "p"), k)


class Client:
    """A paho client in its own network thread."""

    def __init__(self, port, cid, user, v5, clean=True):
        self.v5 = v5
        self.msgs = []
        self.acks = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.rc = None
        self.granted = None
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=proto, clean_session=clean)
        if user:
            self.c.username_pw_set(user, PASSWORDS[user])
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = self._on_publish
        self.port = port

    def _on_connect(self, client, userdata, flags, rc, props=None):
        self.rc = rc if isinstance(rc, int) else rc.value
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, granted, props=None):
        self.granted = [g if isinstance(g, int) else g.value for g in granted]
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        p = msg.payload.decode(errors="replace")
        if p.startswith("T:"):  # only the test's messages, not the broker's $SYS
            with self.lock:
                self.msgs.append((msg.topic, p, bool(msg.retain)))

    def _on_publish(self, client, userdata, mid):
        with self.lock:
            self.acks.setdefault(mid, None)

    def connect(self):
        self.c.connect("127.0.0.1", self.port, keepalive=60)
        self.c.loop_start()
        return self.connected.wait(5) and self.rc == 0

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class Publisher:
    """A raw-socket MQTT client: paho 1.6 does not hand the PUBACK reason
    code to the application, and the verdict is what we compare."""

    def __init__(self, port, cid, user, v5):
        import socket
        self.v5 = v5
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.pid = 0
        flags = 0x02
        payload = brokerctl._s(cid.encode())
        if user:
            flags |= 0xC0
            payload += brokerctl._s(user.encode()) + brokerctl._s(PASSWORDS[user].encode())
        vh = brokerctl._s(b"MQTT") + bytes([5 if v5 else 4, flags, 0, 60])
        if v5:
            vh += b"\x00"
        body = vh + payload
        self.s.sendall(b"\x10" + brokerctl.varint(len(body)) + body)
        pk = brokerctl.read_packet(self.s)
        self.ok = pk is not None and pk[0] == 0x20 and len(pk[1]) >= 2 and pk[1][1] == 0

    def publish(self, topic, payload, retain=False):
        """Returns the PUBACK reason code (3.1.1: 0), or None without one."""
        self.pid = self.pid % 65535 + 1
        t = brokerctl._s(topic.encode())
        body = t + self.pid.to_bytes(2, "big") + (b"\x00" if self.v5 else b"") + payload.encode()
        first = 0x32 | (1 if retain else 0)
        self.s.sendall(bytes([first]) + brokerctl.varint(len(body)) + body)
        while True:
            pk = brokerctl.read_packet(self.s)
            if pk is None:
                return None
            typ, b = pk
            if typ == 0x40 and int.from_bytes(b[:2], "big") == self.pid:
                return b[2] if len(b) > 2 else 0

    def close(self):
        try:
            self.s.sendall(b"\xe0\x00")
            self.s.close()
        except OSError:
            pass


def run_broker(kind, tmp, pwfile, aclfile):
    """The whole matrix against one broker; returns its records."""
    old = os.environ.get("MIDGE_BROKER")
    if kind == "mosquitto":
        os.environ["MIDGE_BROKER"] = "mosquitto"
    else:
        os.environ.pop("MIDGE_BROKER", None)
    try:
        b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous true\n"
                            "password_file %s\nacl_file %s\nsys_interval 3600\n"
                            % (pwfile, aclfile))
    finally:
        if old is None:
            os.environ.pop("MIDGE_BROKER", None)
        else:
            os.environ["MIDGE_BROKER"] = old
    port = b.port
    rec = {"deliveries": {}, "publish": {}, "connect": {}, "granted": {}}
    n = [0]

    def payload():
        n[0] += 1
        return "T:%d" % n[0]

    # 1. retained, from admin
    adm = Publisher(port, "admin-pub", "admin", True)
    rec["connect"]["admin-pub"] = adm.ok
    for t in RETAINED:
        rec["publish"][("retained", t)] = adm.publish(t, payload(), retain=True)
    # 2. subscribers
    subs = {}
    k = 0
    plan = [(u, f) for u in USERS for f in FILTERS]
    plan += [(None, "#"), ("alice", "#"), ("carol", "devices/#")]  # client ids with wildcards
    plan += [("alice", "$share/g/#"), (None, "$share/g/public/#")]  # shared subscriptions
    for i, (u, f) in enumerate(plan):
        wild = len(USERS) * len(FILTERS) <= i < len(USERS) * len(FILTERS) + 3
        cid = "w+%d#" % k if wild else sub_cid(u, k)
        k += 1
        c = Client(port, cid, u, v5=(k % 2 == 0))
        ok = c.connect()
        rec["connect"][cid] = ok
        if ok:
            c.c.subscribe(f, 1)
            c.subscribed.wait(5)
            rec["granted"][(uname(u), cid, f)] = c.granted
        subs[(uname(u), cid, f)] = c
    # persistent 3.1.1 sessions, offline while everything is published:
    # what is queued for them is checked too
    queued = [None, "alice", "bob", "carol"]
    for u in queued:
        c = Client(port, "q-" + uname(u), u, v5=False, clean=False)
        ok = c.connect()
        rec["connect"]["q-" + uname(u)] = ok
        if ok:
            c.c.subscribe("#", 1)
            c.subscribed.wait(5)
            time.sleep(0.3)  # the retained messages arrive and are acknowledged
        c.stop()
    time.sleep(0.5)
    # 3. live, from admin: the matrix and each subscriber's own device topics
    for t in TOPICS:
        rec["publish"][("admin", t)] = adm.publish(t, payload())
    for (u, cid, f) in subs:
        if "+" in cid or "#" in cid:  # not a topic level
            continue
        for leaf in ("t", "locked"):
            rec["publish"][("admin", "devices/%s/%s" % (cid, leaf))] = \
                adm.publish("devices/%s/%s" % (cid, leaf), payload())
    adm.close()
    # 4. every user publishes everything, MQTT 5 and 3.1.1
    for u in USERS:
        for v5 in (True, False):
            cid = "pub-%s-%d" % (uname(u).replace("+", "p"), 5 if v5 else 4)
            p = Publisher(port, cid, u, v5)
            rec["connect"][cid] = p.ok
            own = ["devices/%s/t" % cid]
            if "+" not in uname(u):  # a wildcard is no topic level
                own.append("users/%s/outbox" % uname(u))
            for t in TOPICS + own:
                rec["publish"][(cid, t)] = p.publish(t, payload()) if p.ok else "no connection"
            p.close()
    # the offline sessions come back for what was queued
    for u in queued:
        c = Client(port, "q-" + uname(u), u, v5=False, clean=False)
        c.connect()
        subs[(uname(u), "q-" + uname(u), "# (queued while offline)")] = c
    # 5. quiet for a second, then the records
    last, end = -1, time.time() + 15
    while time.time() < end:
        total = sum(len(c.msgs) for c in subs.values())
        if total == last:
            break
        last = total
        time.sleep(1.0)
    for key, c in subs.items():
        with c.lock:
            got = c.msgs
            if key[2].startswith("$share/"):
                # [MQTT-4.8.2]: no retained messages for a shared
                # subscription; Mosquitto 2.0.11 sends them anyway
                got = [m for m in got if not m[2]]
            rec["deliveries"][key] = sorted(got)
        c.stop()
    b.stop()
    return rec


tmp = tempfile.mkdtemp(prefix="midge-acl-diff-")
os.chmod(tmp, 0o755)  # Mosquitto reads its files as the user it drops to
pwfile = os.path.join(tmp, "passwd")
aclfile = os.path.join(tmp, "acl")
with open(aclfile, "w") as f:
    f.write(ACL)
first = True
for u, pw in PASSWORDS.items():
    args = ["mosquitto_passwd", "-b"] + (["-c"] if first else []) + [pwfile, u, pw]
    subprocess.run(args, check=True, timeout=20, capture_output=True)
    first = False
os.chmod(pwfile, 0o644)
os.chmod(aclfile, 0o644)

kind = brokerctl.broker_kind()
ref = run_broker("mosquitto", tmp, pwfile, aclfile)
got = run_broker(kind, tmp, pwfile, aclfile)
label = "midge" if kind == "midge" else "mosquitto (again)"

# Every subscriber and publisher connected on both.
r.check("the same clients connected on both brokers", ref["connect"] == got["connect"],
        repr(sorted(k for k in ref["connect"] if ref["connect"][k] != got["connect"].get(k))))
r.check("every client connected on Mosquitto", all(ref["connect"].values()),
        repr([k for k, v in ref["connect"].items() if not v]))

# Deliveries, subscriber by subscriber.
diff = []
for key in ref["deliveries"]:
    a, g = ref["deliveries"][key], got["deliveries"].get(key)
    if a != g:
        diff.append((key, sorted(set(a) - set(g or [])), sorted(set(g or []) - set(a))))
n_deliveries = sum(len(v) for v in ref["deliveries"].values())
r.check("identical deliveries for %d subscribers (%d deliveries compared)"
        % (len(ref["deliveries"]), n_deliveries), not diff,
        "\n".join("%s: only mosquitto %s, only %s %s" % (k, a, label, g) for k, a, g in diff[:20]))
n_queued = sum(len(v) for k, v in ref["deliveries"].items() if "queued" in k[2])
r.check("%d deliveries were queued for offline sessions" % n_queued, n_queued > 20, repr(n_queued))
r.check("deliveries include denied and allowed ones (the matrix is not empty)",
        n_deliveries > 100 and any(not v for v in ref["deliveries"].values()),
        repr(n_deliveries))

# Publish verdicts: MQTT 5 says 0x87 when denied; 3.1.1 is acknowledged.
def verdict(rc, key):
    if rc is None or rc == "no connection":
        return rc
    return "denied" if rc == 0x87 else "accepted" if rc in (0, 0x10) else rc


vdiff = [(k, ref["publish"][k], got["publish"].get(k)) for k in ref["publish"]
         if verdict(ref["publish"][k], k) != verdict(got["publish"].get(k), k)]
denied5 = sum(1 for k, v in ref["publish"].items() if v == 0x87)
r.check("identical PUBACK verdicts for %d publishes (%d denied with 0x87)"
        % (len(ref["publish"]), denied5), not vdiff, repr(vdiff[:20]))
acked3 = [k for k in ref["publish"] if k[0].endswith("-4")]
r.check("no client retains on $SYS: admin's retained $SYS/broker/version denied (0x87) on both",
        ref["publish"][("retained", "$SYS/broker/version")] == 0x87 and
        got["publish"][("retained", "$SYS/broker/version")] == 0x87,
        repr((ref["publish"][("retained", "$SYS/broker/version")],
              got["publish"][("retained", "$SYS/broker/version")])))
r.check("3.1.1 publishes are all acknowledged (denied ones dropped)",
        all(got["publish"][k] == 0 for k in acked3), repr([k for k in acked3 if got["publish"][k] != 0][:10]))

print("figures: %d subscriber cases, %d publish cases, %d deliveries compared (%d of them "
      "queued for offline sessions), %d MQTT 5 publishes denied"
      % (len(ref["deliveries"]), len(ref["publish"]), n_deliveries, n_queued, denied5), flush=True)
for f in (pwfile, aclfile):
    os.unlink(f)
os.rmdir(tmp)
r.finish()
