#!/usr/bin/python3
"""Hostile clients, group "faults".

1. kill -9 of a client mid-flow at every QoS step. The client is a child
   process with a persistent session (3.1.1 clean session 0; v5 clean
   start 0 + session expiry 300 s); after SIGKILL the parent resumes the
   same session with the state a real client would have persisted (the
   packet ids it received or sent) and completes the flows. Every message
   is counted: QoS 1 promises at least once, QoS 2 exactly once.
   Broker as sender (the killed client subscribes): after PUBLISH (no ack),
   after PUBREC, after PUBREL (no PUBCOMP).
   Broker as receiver (the killed client publishes): after PUBLISH, after
   PUBREC received, after PUBREL sent.
   Each scenario carries 5 messages: the one in flight at the kill and 4
   more published while the client is dead (subscriber side) or after it
   resumed (publisher side).

2. connect/subscribe/publish/disconnect cycles (MIDGE_HOSTILE_CYCLES,
   default 2000; the documented long run uses 10000) against the broker of
   $top_builddir, which is an ASan/UBSan build when that build directory was
   configured with --enable-sanitizers:
   every cycle must complete, RSS growth stay bounded, and the broker log
   stay free of sanitizer / valgrind reports, including at exit.
"""

import os
import signal
import subprocess
import sys
import time

from hostile import (V311, V5, VNAME, BASE_CONFIG, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
                     Closed, Conn, Suite, ack, connect, connected, disconnect_pkt, fail, props,
                     publish, publish_fields, subscribe, u32, brokerctl, SAN_PATTERNS)

N_MSGS = 5
CYCLES = int(os.environ.get("MIDGE_HOSTILE_CYCLES", "2000"))
CYCLE_RSS_MB = 8


def persistent(version):
    if version == V5:
        return dict(clean=False, properties=props(b"\x11" + u32(300)))
    return dict(clean=False)


def session_connect(c, version, cid, expect_present):
    c.version = version
    c.send(connect(version, cid, **persistent(version)))
    p = c.recv_packet(5)
    if p.type != 2 or p.rc(version) != 0:
        fail("CONNACK 0x00", p.describe(version))
    present = bool(p.body[0] & 1)
    if expect_present is not None and present != expect_present:
        fail("CONNACK session present=%d" % expect_present, "session present=%d" % present)


# ------------------------------------------------------------ child side

def child(role, step, qos, version, port, cid, topic):
    """Runs in the child process: drives one flow to `step`, prints READY
    with the state a client would persist, then waits to be killed."""
    c = Conn(port, timeout=10)
    session_connect(c, version, cid, None)
    state = ""
    if role == "sub":
        c.send(subscribe(1, [(topic, qos)], version))
        p = c.recv_packet(5)
        assert p.type == SUBACK
        print("SUBSCRIBED", flush=True)
        while True:
            p = c.recv_packet(30)
            if p.type == PUBLISH:
                break
        _, _, pid, _, payload = publish_fields(p, version)
        state = "%d %s" % (pid, payload.decode())
        if step in ("pubrec", "pubrel"):
            c.send(ack(PUBREC, pid, version))
        if step == "pubrel":
            while True:
                p = c.recv_packet(10)
                if p.type == PUBREL:
                    break
    else:
        c.send(publish(topic, b"m0", qos, 1, version=version))
        state = "1 m0"
        if step in ("pubrec", "pubrel"):
            while True:
                p = c.recv_packet(10)
                if p.type == PUBREC:
                    break
        if step == "pubrel":
            c.send(ack(PUBREL, 1, version))
    time.sleep(0.3)  # let the broker process what was sent before the kill
    print("READY %s" % state, flush=True)
    time.sleep(120)


def spawn(role, step, qos, version, port, cid, topic):
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", role, step, str(qos),
                          str(version), str(port), cid, topic],
                         stdout=subprocess.PIPE, text=True)
    return p


def readline(p, want, timeout=15):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(want):
            return line.split()[1:]
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    fail("child reports %s" % want, "it did not")


def kill9(p):
    os.kill(p.pid, signal.SIGKILL)
    p.wait(5)


# ------------------------------------------------------------ receivers

class Receiver:
    """A QoS 2 receiver that behaves as the specification's method B: a
    PUBLISH whose packet id awaits PUBREL is a re-send, not a new
    message. Counts deliveries per payload."""

    def __init__(self, conn, version, pending=()):
        self.c = conn
        self.version = version
        self.pending = set(pending)   # QoS 2 ids received, PUBREL not yet
        self.count = {}
        self.resends = 0
        self.pubrels = 0

    def handle(self, p):
        v = self.version
        if p.type == PUBLISH:
            _, qos, pid, dup, payload = publish_fields(p, v)
            key = payload.decode()
            if qos == 2 and pid in self.pending:
                self.resends += 1
                self.c.send(ack(PUBREC, pid, v))
                return
            self.count[key] = self.count.get(key, 0) + 1
            if qos == 1:
                self.c.send(ack(PUBACK, pid, v))
            elif qos == 2:
                self.pending.add(pid)
                self.c.send(ack(PUBREC, pid, v))
        elif p.type == PUBREL:
            self.pubrels += 1
            self.pending.discard(p.pid())
            self.c.send(ack(PUBCOMP, p.pid(), v))

    def drain(self, seconds):
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            try:
                self.handle(self.c.recv_packet(max(0.05, seconds - (time.monotonic() - t0))))
            except (Closed, OSError):
                return


def publish_complete(c, version, topic, payload, qos, pid):
    """Publishes and completes the flow from this side."""
    c.send(publish(topic, payload, qos, pid, version=version))
    if qos == 0:
        return
    want = PUBACK if qos == 1 else PUBREC
    while True:
        p = c.recv_packet(5)
        if p.type == want and p.pid() == pid:
            break
    if qos == 2:
        c.send(ack(PUBREL, pid, version))
        while True:
            p = c.recv_packet(5)
            if p.type == PUBCOMP and p.pid() == pid:
                break


def verdict(counts, qos, extra=""):
    lost = sum(1 for i in range(N_MSGS) if counts.get("m%d" % i, 0) == 0)
    dup = sum(max(0, counts.get("m%d" % i, 0) - 1) for i in range(N_MSGS))
    what = "%d messages: %d delivered, %d lost, %d duplicated%s" % (
        N_MSGS, N_MSGS - lost, lost, dup, extra)
    if lost or (qos == 2 and dup):
        fail("QoS %d: 0 lost%s" % (qos, ", 0 duplicated" if qos == 2 else ""), what)
    return what


# ------------------------------------------------------------ scenarios

def scenario_names(role, step, qos, version):
    """(tag, client id, topic) of the killed client, unique per scenario
    and run, so parallel runs and earlier sessions do not interfere."""
    tag = "%s-q%d-v%s-%d" % (step, qos, VNAME[version], os.getpid())
    return tag, "f%s-%s" % (role, tag), "fault/%s/%s" % (role, tag)


def resume(b, version, cid):
    """Reconnects as the killed client; its session must still be there."""
    c = Conn(b.port)
    session_connect(c, version, cid, True)
    return c


def sub_killed(step, qos, version):
    def run(b):
        tag, cid, topic = scenario_names("sub", step, qos, version)
        pub = connected(b, version, "fpubber-" + tag)
        ch = spawn("sub", step, qos, version, b.port, cid, topic)
        try:
            readline(ch, "SUBSCRIBED")
            publish_complete(pub, version, topic, b"m0", qos, 1)
            pid, payload = readline(ch, "READY")
        finally:
            kill9(ch)
        # The child delivered m0 to its application when it read it (QoS 1)
        # or sent PUBREC (QoS 2, id persisted); a QoS 1 re-send counts as a
        # duplicate, a QoS 2 re-send of a persisted id is recognised.
        pending = [int(pid)] if step in ("pubrec", "pubrel") else []
        for i in range(1, N_MSGS):
            publish_complete(pub, version, topic, ("m%d" % i).encode(), qos, i + 1)
        c = resume(b, version, cid)
        r = Receiver(c, version, pending)
        if step in ("pubrec", "pubrel") or qos == 1:
            r.count[payload] = 1
        r.drain(1.5)
        c.send(disconnect_pkt(version))
        c.close()
        pub.close()
        extra = ", %d PUBREL received, %d QoS 2 re-sends recognised" % (r.pubrels, r.resends)
        if qos == 2 and r.pending:
            fail("every QoS 2 flow completed (PUBREL for each PUBREC)", "ids left: %s" % sorted(r.pending))
        if qos == 2 and step in ("pubrec", "pubrel") and r.pubrels == 0:
            # [MQTT-4.4.0-1]: on resume the broker re-sends the PUBREL.
            fail("PUBREL re-sent on resume [MQTT-4.4.0-1]", "none" + extra)
        return verdict(r.count, qos, extra)
    return run


def pub_killed(step, qos, version):
    def run(b):
        tag, cid, topic = scenario_names("pub", step, qos, version)
        s = connected(b, version, "fsubber-" + tag)
        s.send(subscribe(1, [(topic, 2)], version))
        if s.recv_packet(5).type != SUBACK:
            fail("SUBACK", "something else")
        r = Receiver(s, version)
        ch = spawn("pub", step, qos, version, b.port, cid, topic)
        try:
            readline(ch, "READY")
        finally:
            kill9(ch)
        c = resume(b, version, cid)
        note = ""
        # Resume what the killed publisher had persisted [MQTT-4.4.0-1].
        if step == "publish":
            c.send(publish(topic, b"m0", qos, 1, dup=True, version=version))
            want = PUBACK if qos == 1 else PUBREC
            p = c.recv_packet(5)
            while p.type != want:
                p = c.recv_packet(5)
            if qos == 2:
                c.send(ack(PUBREL, 1, version))
                p = c.recv_packet(5)
                if p.type != PUBCOMP or p.rc(version) != 0:
                    fail("PUBCOMP 0x00", p.describe(version))
        else:
            c.send(ack(PUBREL, 1, version))
            p = c.recv_packet(5)
            ok = (0x00,) if step == "pubrec" else (0x00, 0x92)
            if p.type != PUBCOMP or p.pid() != 1 or p.rc(version) not in ok:
                fail("PUBCOMP 1 %s" % "/".join("0x%02x" % x for x in ok), p.describe(version))
            note = ", PUBCOMP 0x%02x" % p.rc(version)
        for i in range(1, N_MSGS):
            publish_complete(c, version, topic, ("m%d" % i).encode(), qos, i + 1)
        r.drain(1.0)
        c.send(disconnect_pkt(version))
        c.close()
        s.close()
        return verdict(r.count, qos, note)
    return run


# ------------------------------------------------------------ cycles

def cycles(b_unused):
    # A broker of its own, so the exit-time reports (LeakSanitizer,
    # valgrind) are checked too.
    b = brokerctl.start(BASE_CONFIG)
    done = 0
    try:
        rss_start = None
        t0 = time.monotonic()
        for i in range(CYCLES):
            v = V5 if i % 2 else V311
            c = Conn(b.port)
            c.handshake(v, "cycle-%d" % (i % 97))
            c.send(subscribe(1, [("cycle/%d" % i, 1)], v))
            if c.recv_packet(5).type != SUBACK:
                fail("SUBACK in cycle %d" % i, "something else")
            c.send(publish("cycle/%d" % i, b"x" * (i % 512), 1, 2, version=v))
            got = False
            while not got:
                p = c.recv_packet(5)
                if p.type == PUBLISH:
                    c.send(ack(PUBACK, publish_fields(p, v)[2], v))
                    got = True
            c.send(disconnect_pkt(v))
            c.close()
            done += 1
            if i == CYCLES // 10:
                rss_start = b.rss_kb()
        dur = time.monotonic() - t0
        rss_end = b.rss_kb()
    finally:
        status = b.stop(timeout=60)
    log = b.log_text()
    m = SAN_PATTERNS.search(log)
    if m:
        i = m.start()
        fail("no sanitizer/valgrind report", log[max(0, i - 200):i + 800])
    if status not in (0, -signal.SIGTERM):
        fail("clean exit on SIGTERM", "status %s, log tail: %s" % (status, log[-800:]))
    grow = (rss_end - (rss_start or rss_end)) / 1024.0
    if grow > CYCLE_RSS_MB:
        fail("RSS growth under %d MB after the first 10%%" % CYCLE_RSS_MB, "%.1f MB" % grow)
    return "%d cycles in %.1fs (%s), RSS growth %.1f MB after warm-up, exit %s, no reports" % (
        done, dur, brokerctl.binary(), grow, status)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        role, step, qos, version, port, cid, topic = sys.argv[2:9]
        child(role, step, int(qos), int(version), int(port), cid, topic)
        return
    s = Suite("faults")
    for v in (V311, V5):
        n = "_v" + VNAME[v]
        s.case("subscriber_killed_after_PUBLISH_qos1" + n, sub_killed("publish", 1, v))
        s.case("subscriber_killed_after_PUBLISH_qos2" + n, sub_killed("publish", 2, v))
        s.case("subscriber_killed_after_PUBREC_qos2" + n, sub_killed("pubrec", 2, v))
        s.case("subscriber_killed_after_PUBREL_qos2" + n, sub_killed("pubrel", 2, v))
        s.case("publisher_killed_after_PUBLISH_qos1" + n, pub_killed("publish", 1, v))
        s.case("publisher_killed_after_PUBLISH_qos2" + n, pub_killed("publish", 2, v))
        s.case("publisher_killed_after_PUBREC_qos2" + n, pub_killed("pubrec", 2, v))
        s.case("publisher_killed_after_PUBREL_qos2" + n, pub_killed("pubrel", 2, v))
    s.case("cycles_%d" % CYCLES, cycles, timeout=max(120, CYCLES * 0.5), health=False)
    s.finish()


if __name__ == "__main__":
    main()
