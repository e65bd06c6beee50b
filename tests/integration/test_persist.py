"""Persistence against the real binary with real clients (paho-mqtt 3.1.1
and 5, raw sockets where paho hides the bytes): everything comes back
after a SIGTERM and after a kill -9 (sessions with session present 1,
subscriptions with their identifiers, queued messages in order, retained
messages, replay logs), in-flight messages are resent with DUP, QoS 2
stays exactly once across a crash both ways, deadlines count by wall
clock across a restart (session expiry, message expiry, will delay), the
Mosquitto keys keep their meaning, damaged and foreign files stop
start-up with a reason (or are moved aside when asked), and the store's
$SYS topics are there."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import Client, kill9, raw_connect, ack, parse_publish  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

r = brokerctl.Results("persist")
brokerctl.deadline(r, 170)
check = r.check
DIRS = []


def newdir():
    d = tempfile.mkdtemp(prefix="midge-persist-")
    DIRS.append(d)
    return d


def stop(b, how):
    if how == "kill":
        kill9(b)
    else:
        b.stop()


def case_restart(version, how):
    """Sessions, subscriptions (with identifiers), the queue in order with
    its QoS, retained messages and the replay log survive a SIGTERM and a
    kill -9; the subscriber resumes with session present 1."""
    tag = "v%d %s" % (version, how)
    d = newdir()
    extra = "midge_history h/# 10\n"
    b = persistctl.start(d, extra)
    sub = Client("sub-%d" % version, version, b.port, clean=False, expiry=600)
    check("%s: subscriber connects" % tag, sub.connect())
    sub.subscribe("a/#", 2, sub_id=7 if version == 5 else None)
    sub.close()
    pub = Client("pub-%d" % version, version, b.port)
    pub.connect()
    mids = [pub.publish("a/x", "m%d" % i, 1 + i % 2).mid for i in range(10)]
    mids.append(pub.publish("r/1", "keep", 1, retain=True).mid)
    pub.publish("h/1", "log1", 0)
    check("%s: every publish acknowledged" % tag, pub.wait_acked(mids))
    pub.close()
    stop(b, how)

    b = persistctl.start(d, extra)
    check("%s: recovery logged" % tag, "1 sessions" in b.log_text(), b.log_text()[-400:])
    sub = Client("sub-%d" % version, version, b.port, clean=False, expiry=600)
    check("%s: resumes" % tag, sub.connect())
    check("%s: session present 1" % tag, sub.session_present == 1)
    got = sub.wait(10)
    # paho hands a QoS 2 message over at PUBREL, a round trip later than a
    # QoS 1 one: the order is checked per QoS
    for q in (1, 2):
        check("%s: the queue in order, QoS %d" % (tag, q),
              [m.payload.decode() for m in got if m.qos == q] ==
              ["m%d" % i for i in range(10) if 1 + i % 2 == q],
              [(m.payload, m.qos) for m in got])
    if version == 5:
        ids = [getattr(m.properties, "SubscriptionIdentifier", None) for m in got]
        check("%s: subscription identifier kept" % tag, ids == [[7]] * 10, ids)
    pub = Client("pub2-%d" % version, version, b.port)
    pub.connect()
    pub.publish("a/y", "after", 1).wait_for_publish(5)
    got = sub.wait(11)
    check("%s: the subscription survived" % tag, len(got) == 11 and got[-1].payload == b"after",
          [m.payload for m in got])
    r1 = Client("r-%d" % version, version, b.port)
    r1.connect()
    r1.subscribe("r/#", 1)
    got = r1.wait(1)
    check("%s: retained message" % tag, len(got) == 1 and got[0].payload == b"keep" and got[0].retain)
    r1.subscribe("$replay/all/h/#", 0)
    got = r1.wait(2)
    check("%s: replay log" % tag, len(got) == 2 and got[1].payload == b"log1", [m.payload for m in got])
    for c in (sub, pub, r1):
        c.close()
    b.stop()


def case_dup_resend():
    """A QoS 1 delivery not acknowledged when the broker is killed is sent
    again with DUP and its packet id; once acknowledged, never again."""
    d = newdir()
    b = persistctl.start(d)
    s, present = raw_connect(b.port, "raw-dup")
    s.sendall(brokerctl.subscribe_packet(1, "d/#", 1))
    brokerctl.read_packet(s)
    pub = Client("p-dup", 4, b.port)
    pub.connect()
    pub.publish("d/1", "once", 1).wait_for_publish(5)
    pk = brokerctl.read_packet(s)
    topic, pid, payload, qos, dup, _ = parse_publish(*pk)
    check("dup: first delivery without DUP", topic == "d/1" and payload == b"once" and not dup)
    pub.close()
    kill9(b)
    s.close()
    b = persistctl.start(d)
    s, present = raw_connect(b.port, "raw-dup")
    check("dup: session present", present)
    pk = brokerctl.read_packet(s)
    t2, pid2, p2, q2, dup2, _ = parse_publish(*pk) if pk else (None,) * 6
    check("dup: resent with DUP and the same packet id [MQTT-4.4.0-1]",
          pk and t2 == "d/1" and pid2 == pid and dup2 and p2 == b"once", pk)
    s.sendall(ack(0x40, pid))
    time.sleep(0.3)
    s.close()
    kill9(b)
    b = persistctl.start(d)
    s, present = raw_connect(b.port, "raw-dup")
    check("dup: acknowledged, not sent again", brokerctl.read_packet(s, 1.0) is None)
    s.close()
    b.stop()


def case_qos2_crash():
    """QoS 2 across a crash: an incoming id acknowledged by PUBREC survives,
    so the publisher's resend is not routed twice; an outgoing exchange past
    PUBREC resumes with PUBREL, not PUBLISH."""
    d = newdir()
    b = persistctl.start(d)
    sub = Client("q2-sub", 5, b.port, clean=False, expiry=600)
    sub.connect()
    sub.subscribe("q/#", 2)
    sub.close()
    p, _ = raw_connect(b.port, "q2-pub")
    p.sendall(brokerctl.publish_packet("q/1", b"exactly", 2, 5))
    pk = brokerctl.read_packet(p)
    check("qos2: PUBREC", pk == (0x50, b"\x00\x05"), pk)
    kill9(b)
    p.close()
    b = persistctl.start(d)
    p, present = raw_connect(b.port, "q2-pub")
    check("qos2: publisher session present", present)
    dup = bytearray(brokerctl.publish_packet("q/1", b"exactly", 2, 5))
    dup[0] |= 0x08
    p.sendall(bytes(dup))
    check("qos2: resend acknowledged [MQTT-4.3.3-9]", brokerctl.read_packet(p) == (0x50, b"\x00\x05"))
    p.sendall(ack(0x62, 5))
    check("qos2: PUBCOMP", brokerctl.read_packet(p) == (0x70, b"\x00\x05"))
    p.close()
    sub = Client("q2-sub", 5, b.port, clean=False, expiry=600)
    sub.connect()
    got = sub.wait(2, 1.5)
    check("qos2: delivered exactly once", [m.payload for m in got] == [b"exactly"],
          [m.payload for m in got])
    sub.close()
    # outgoing: PUBREC sent, PUBREL received, then the crash
    s, _ = raw_connect(b.port, "q2-raw")
    s.sendall(brokerctl.subscribe_packet(1, "o/#", 2))
    brokerctl.read_packet(s)
    pub = Client("q2-p2", 4, b.port)
    pub.connect()
    pub.publish("o/1", "out", 2).wait_for_publish(5)
    topic, pid, payload, qos, dup, _ = parse_publish(*brokerctl.read_packet(s))
    s.sendall(ack(0x50, pid))
    pk = brokerctl.read_packet(s)
    check("qos2: PUBREL after the PUBREC is durable", pk == (0x62, pid.to_bytes(2, "big")), pk)
    pub.close()
    kill9(b)
    s.close()
    b = persistctl.start(d)
    s, present = raw_connect(b.port, "q2-raw")
    pk = brokerctl.read_packet(s)
    check("qos2: PUBREL resent, not the PUBLISH", pk == (0x62, pid.to_bytes(2, "big")), pk)
    s.sendall(ack(0x70, pid))
    check("qos2: then nothing", brokerctl.read_packet(s, 1.0) is None)
    s.close()
    b.stop()


def case_timers():
    """Deadlines by wall-clock time across a restart: a session expired
    while the broker was down is gone, an expired message is not
    delivered, a live one carries what is left of its interval, a will
    waits for its delay after the broker comes back."""
    d = newdir()
    b = persistctl.start(d)
    short = Client("exp-short", 5, b.port, clean=False, expiry=2)
    short.connect()
    short.subscribe("e/#", 1)
    short.close()
    keep = Client("exp-keep", 5, b.port, clean=False, expiry=600)
    keep.connect()
    keep.subscribe("m/#", 1)
    keep.close()
    pub = Client("exp-pub", 5, b.port)
    pub.connect()
    for payload, ttl in (("gone", 2), ("stays", 100)):
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = ttl
        pub.publish("m/1", payload, 1, props=props).wait_for_publish(5)
    pub.close()
    will_props = Properties(PacketTypes.WILLMESSAGE)
    will_props.WillDelayInterval = 2
    willer = Client("willer", 5, b.port, clean=False, expiry=600, will=("w/1", "bye", 1, False),
                    will_props=will_props)
    willer.connect()
    kill9(b)
    willer.close(disconnect=False)
    time.sleep(2.6)
    b = persistctl.start(d)
    t0 = time.time()
    watch = Client("watch", 5, b.port)
    watch.connect()
    watch.subscribe("w/#", 1)
    short = Client("exp-short", 5, b.port, clean=False, expiry=2)
    short.connect()
    check("timers: session expired while down", short.session_present == 0)
    short.close()
    keep = Client("exp-keep", 5, b.port, clean=False, expiry=600)
    keep.connect()
    got = keep.wait(2, 1.5)
    check("timers: expired message dropped [MQTT-3.3.2-5]", [m.payload for m in got] == [b"stays"],
          [m.payload for m in got])
    if got:
        left = getattr(got[0].properties, "MessageExpiryInterval", None)
        check("timers: remaining expiry counts the time down", left is not None and left <= 98, left)
    got = watch.wait(1, 5)
    dt = time.time() - t0
    check("timers: will after its delay, counted from the restart",
          len(got) == 1 and got[0].payload == b"bye" and 1.5 <= dt <= 4.5, (len(got), dt))
    for c in (watch, keep):
        c.close()
    b.stop()


def case_keys():
    """Mosquitto's keys: persistence false stores nothing, persistence_file
    names the file, periodic mode acknowledges before committing
    (autosave_on_changes counting changes), bad values stop start-up."""
    d = newdir()
    b = brokerctl.start("listener {port} 127.0.0.1\npersistence false\npersistence_location %s/\n" % d)
    c = Client("k1", 4, b.port, clean=False)
    c.connect()
    c.subscribe("k/#", 1)
    c.close()
    b.stop()
    check("keys: persistence false writes nothing", os.listdir(d) == [], os.listdir(d))
    b = persistctl.start(d, "persistence_file other.db\n")
    b.stop()
    check("keys: persistence_file", os.path.exists(os.path.join(d, "other.db")), os.listdir(d))
    # periodic by changes: one message (2 changes of 1000) is acknowledged and
    # lost in a crash, as with Mosquitto's autosave
    d2 = newdir()
    extra = "midge_persist_sync periodic\nautosave_on_changes true\nautosave_interval 1000\n"
    b = persistctl.start(d2, extra)
    check("keys: periodic mode announced", "periodic" in b.log_text(), b.log_text()[-300:])
    c = Client("k2", 4, b.port, clean=False)
    c.connect()
    c.subscribe("k/#", 1)
    c.close()
    b.stop()  # SIGTERM: the final commit keeps the session
    b = persistctl.start(d2, extra)
    p = Client("k2p", 4, b.port)
    p.connect()
    check("keys: periodic mode acknowledges at once", p.publish("k/1", "x", 1).wait_for_publish(2) is None)
    p.close()
    kill9(b)
    b = persistctl.start(d2, extra)
    c = Client("k2", 4, b.port, clean=False)
    c.connect()
    check("keys: periodic mode loses what was not committed", c.wait(1, 1.0) == [] and c.session_present)
    c.close()
    b.stop()
    for bad, what in (("midge_persist_sync sometimes", "midge_persist_sync"),
                      ("midge_history a/# 0", "midge_history"),
                      ("autosave_interval -1", "autosave_interval"),
                      ("midge_persist_damaged maybe", "midge_persist_damaged")):
        b = persistctl.start(d, bad + "\n", wait_for=None)
        rc = b.proc.wait(5)
        check("keys: '%s' stops start-up with file:line" % bad,
              rc != 0 and (".conf:" in b.log_text()) and what in b.log_text(), b.log_text()[-300:])
        b.stop()


def start_fails(d, extra=""):
    b = persistctl.start(d, extra, wait_for=None)
    rc = b.proc.wait(10)
    log = b.log_text()
    b.stop()
    return rc, log


def case_damaged():
    """Damaged, foreign and newer files stop start-up with what is wrong and
    how to recover; midge_persist_damaged move starts anyway after moving
    the file aside; a second broker on the same file is refused."""
    d = newdir()
    db = os.path.join(d, "midge.db")
    with open(db, "wb") as f:
        f.write(b"definitely not a database, just some bytes" * 10)
    rc, log = start_fails(d)
    check("damaged: start-up stops", rc != 0, rc)
    check("damaged: the log says what and how", "is damaged" in log and "midge_persist_damaged move" in log,
          log[-600:])
    b = persistctl.start(d, "midge_persist_damaged move\n")
    moved = [n for n in os.listdir(d) if n.startswith("midge.db.damaged-")]
    check("damaged: moved aside, started empty", len(moved) == 1 and "moved to" in b.log_text(),
          (os.listdir(d), b.log_text()[-400:]))
    b.stop()
    # a newer midge's file
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=99")
    con.commit()
    con.close()
    rc, log = start_fails(d, "midge_persist_damaged move\n")
    check("damaged: a newer schema stops start-up, even with move", rc != 0 and "newer midge" in log,
          log[-400:])
    # Mosquitto's own file format
    d2 = newdir()
    with open(os.path.join(d2, "midge.db"), "wb") as f:
        f.write(b"\x00\xb5\x00mosquitto db\x00\x00\x00\x06" + b"\x00" * 64)
    rc, log = start_fails(d2)
    check("damaged: a Mosquitto file is named as such", rc != 0 and "Mosquitto persistence file" in log,
          log[-400:])
    # a page of a good file overwritten
    d3 = newdir()
    b = persistctl.start(d3)
    p = Client("dmg", 4, b.port)
    p.connect()
    for i in range(300):
        p.publish("dmg/%d" % i, "x" * 100, 1, retain=True)
    p.publish("dmg/end", "x", 1, retain=True).wait_for_publish(5)
    p.close()
    b.stop()
    path = os.path.join(d3, "midge.db")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\xa5" * 4096)
    rc, log = start_fails(d3)
    check("damaged: an overwritten page stops start-up", rc != 0 and "is damaged" in log, log[-400:])
    # two brokers, one file
    d4 = newdir()
    b1 = persistctl.start(d4)
    rc, log = start_fails(d4)
    check("damaged: a second broker on the same file is refused", rc != 0 and "in use by another midge" in log,
          log[-400:])
    b1.stop()


def case_sys():
    """The store's figures under $SYS/broker/midge/store/."""
    d = newdir()
    b = persistctl.start(d, "sys_interval 1\n")
    c = Client("sys", 4, b.port)
    c.connect()
    c.subscribe("$SYS/broker/midge/store/#", 0)
    got = c.wait(10, 3)
    topics = {m.topic: m.payload.decode() for m in got}
    check("sys: state ok", topics.get("$SYS/broker/midge/store/state") == "ok", topics)
    check("sys: commits, fsyncs, size, latency", all(
        "$SYS/broker/midge/store/" + k in topics
        for k in ("commits", "fsyncs per second", "bytes", "commit/latency/avg", "messages per commit")),
        sorted(topics))
    c.close()
    b.stop()


try:
    for v in (4, 5):
        for how in ("term", "kill"):
            case_restart(v, how)
    case_dup_resend()
    case_qos2_crash()
    case_timers()
    case_keys()
    case_damaged()
    case_sys()
finally:
    brokerctl.stop_all()
    for d in DIRS:
        shutil.rmtree(d, ignore_errors=True)
r.finish()
