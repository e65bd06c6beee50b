#!/usr/bin/python3
"""test_hooks.py - midge's ZeroMQ event publisher against the real daemon.

Starts build/midge on free loopback ports (MQTT and events), drives clients
(a raw MQTT 3.1.1 client for an exact script, paho-mqtt for MQTT 5 and for a
killed client with a will) and checks what a pyzmq subscriber sees: each
event once, in order, with the right fields; prefix filtering; CurveZMQ;
and that a subscriber that stops reading does not stall the broker.

Prints "N passed, M failed" last; exits 1 if anything failed.
"""
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402

try:
    import paho.mqtt.client as mqtt
except ImportError:  # reported as a failure below, never skipped
    mqtt = None

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")
TOP_BUILDDIR = os.environ.get("top_builddir") or os.path.join(TOP_SRCDIR, "build")
MIDGE = os.path.join(TOP_BUILDDIR, "midge")
CTX = zmq.Context.instance()


class Broker:
    """build/midge with a generated configuration; stopped by PID."""

    def __init__(self, extra=(), hwm=None, curve=None):
        self.dir = tempfile.TemporaryDirectory(prefix="midge-hooks-")
        self.port = brokerctl.free_port()
        self.hport = brokerctl.free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.hport}"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"midge_hooks_endpoint {self.endpoint}",
            "midge_node_name itest-node",
            "log_dest stderr",
            "log_type all",
        ]
        if hwm is not None:
            lines.append(f"midge_hooks_hwm {hwm}")
        if curve:
            lines.append(f"midge_hooks_curve_secret_key {curve[1]}")
            lines.append(f"midge_hooks_curve_public_key {curve[0]}")
        lines.extend(extra)
        self.conf = os.path.join(self.dir.name, "midge.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(self.dir.name, "midge.log"), "w+")
        self.proc = subprocess.Popen([MIDGE, "-c", self.conf], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"midge exited with {self.proc.returncode}:\n{self.logtext()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("midge did not listen within 10 s:\n" + self.logtext())

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; raises if the broker did not stop cleanly, or a
        sanitizer build (ASan, TSan) reported anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        text = self.logtext()
        self.log.close()
        self.dir.cleanup()
        if self.proc.returncode != 0 or "Sanitizer" in text:
            raise AssertionError(f"broker stopped with {self.proc.returncode}:\n{text}")


# ---------------------------------------------------------------- raw MQTT 3.1.1

def mstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    return bytes([first]) + brokerctl.varint(len(body)) + body


class RawClient:
    """A deterministic MQTT 3.1.1 client: every step waits for its answer
    and answers the broker's QoS flows itself."""

    def __init__(self, port, client_id, keepalive=30, username=None, will=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.local_port = self.sock.getsockname()[1]
        self.buf = b""
        self.received = []  # (topic, payload, qos)
        self.pending = []   # (type, packet id) of acks and answers received
        flags = 0x02
        payload = mstr(client_id)
        if will:
            topic, msg, qos = will
            flags |= 0x04 | (qos << 3)
            payload += mstr(topic) + mstr(msg)
        if username is not None:
            flags |= 0x80
            payload += mstr(username)
        body = mstr("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + payload
        self.sock.sendall(packet(0x10, body))
        t, b = self.read_packet()
        assert t == 2 and b[1] == 0, f"CONNACK {t} {b!r}"

    def read_packet(self):
        while True:
            got = brokerctl.varint_decode(self.buf, 1)
            if got is not None:
                n, i = got
                if len(self.buf) >= i + n:
                    first, body = self.buf[0], self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return first >> 4, (first & 15, body) if first >> 4 == 3 else body
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("broker closed the connection")
            self.buf += data

    def pump_until(self, want, timeout=5):
        """Handles packets until (type, packet id) `want` has arrived."""
        deadline = time.monotonic() + timeout
        while want not in self.pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {want} within {timeout} s")
            t, b = self.read_packet()
            if t == 3:
                flags, body = b
                qos = (flags >> 1) & 3
                tl = struct.unpack("!H", body[:2])[0]
                topic = body[2:2 + tl].decode()
                rest = body[2 + tl:]
                if qos:
                    pid = struct.unpack("!H", rest[:2])[0]
                    rest = rest[2:]
                    self.sock.sendall(packet(0x40 if qos == 1 else 0x50, struct.pack("!H", pid)))
                self.received.append((topic, rest, qos))
                self.pending.append(("publish", topic))
            elif t == 6:  # PUBREL for a QoS 2 delivery
                self.sock.sendall(packet(0x70, b[:2]))
                self.pending.append(("pubrel", struct.unpack("!H", b[:2])[0]))
            elif t == 5:  # PUBREC for our QoS 2 publish
                self.sock.sendall(packet(0x62, b[:2]))
                self.pending.append(("pubrec", struct.unpack("!H", b[:2])[0]))
            elif t in (4, 7, 9, 11):
                name = {4: "puback", 7: "pubcomp", 9: "suback", 11: "unsuback"}[t]
                self.pending.append((name, struct.unpack("!H", b[:2])[0]))
            elif t == 13:
                self.pending.append(("pingresp", 0))
        self.pending.remove(want)

    def subscribe(self, pid, filt, qos):
        self.sock.sendall(packet(0x82, struct.pack("!H", pid) + mstr(filt) + bytes([qos])))
        self.pump_until(("suback", pid))

    def unsubscribe(self, pid, filt):
        self.sock.sendall(packet(0xA2, struct.pack("!H", pid) + mstr(filt)))
        self.pump_until(("unsuback", pid))

    def publish(self, topic, payload, qos=0, pid=0, expect_echo=True):
        body = mstr(topic) + (struct.pack("!H", pid) if qos else b"") + payload
        self.sock.sendall(packet(0x30 | (qos << 1), body))
        if qos == 1:
            self.pump_until(("puback", pid))
        elif qos == 2:
            self.pump_until(("pubcomp", pid))
        if expect_echo:
            self.pump_until(("publish", topic))
            if qos == 2:
                self.pump_until(("pubrel", self.last_pubrel_pid()))

    def last_pubrel_pid(self):
        # The broker's packet id for the QoS 2 delivery: wait for any PUBREL.
        deadline = time.monotonic() + 5
        while not any(p[0] == "pubrel" for p in self.pending):
            if time.monotonic() > deadline:
                raise TimeoutError("no PUBREL")
            t, b = self.read_packet()
            if t == 6:
                self.sock.sendall(packet(0x70, b[:2]))
                self.pending.append(("pubrel", struct.unpack("!H", b[:2])[0]))
        return next(p[1] for p in self.pending if p[0] == "pubrel")

    def ping(self):
        self.sock.sendall(b"\xc0\x00")
        self.pump_until(("pingresp", 0))

    def disconnect(self):
        self.sock.sendall(b"\xe0\x00")
        self.sock.close()

    def drop(self):
        self.sock.close()


# ---------------------------------------------------------------- event subscriber

class Events:
    """A SUB socket that keeps every event it received: (frames, json)."""

    def __init__(self, endpoint, prefixes=("",), curve_server_key=None, rcvhwm=None):
        self.sock = CTX.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
            self.sock.setsockopt(zmq.RCVBUF, 4096)
        if curve_server_key:
            pub, sec = zmq.curve_keypair()
            self.sock.curve_serverkey = curve_server_key
            self.sock.curve_publickey = pub
            self.sock.curve_secretkey = sec
        for p in prefixes:
            self.sock.setsockopt(zmq.SUBSCRIBE, p.encode())
        self.sock.connect(endpoint)
        self.events = []

    def poll(self, timeout=0.05):
        got = 0
        if self.sock.poll(int(timeout * 1000)):
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.events.append((frames, json.loads(frames[1])))
                got += 1
        return got

    def wait(self, pred, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.events):
                return True
            self.poll(0.05)
        return pred(self.events)

    def of(self, client_id=None, names=None):
        return [(f, e) for f, e in self.events
                if (client_id is None or e.get("client_id") == client_id
                    or e.get("to") == client_id)
                and (names is None or e["event"] in names)]

    def close(self):
        self.sock.close()


def sync(broker, ev, tag, timeout=10):
    """Waits until the broker knows ev's subscription: connects probe
    clients until one's client.connected arrives (or, for a socket that
    does not take client events, a probe publish on `tag`)."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        cid = f"probe-{tag}-{n}"
        c = RawClient(broker.port, cid)
        c.publish(f"probe/{tag}", b"x", expect_echo=False)
        c.disconnect()
        if ev.wait(lambda evs: any(e.get("client_id") == cid for _, e in evs), 0.3):
            return
    raise TimeoutError(f"subscriber {tag} never saw an event")


# ---------------------------------------------------------------- tests

def check(cond, what):
    if not cond:
        raise AssertionError(what)


def test_scripted_session(broker):
    """A 3.1.1 client's whole life: each event once, in order, with fields."""
    ev = Events(broker.endpoint)
    sync(broker, ev, "script")
    c = RawClient(broker.port, "c1", keepalive=30, username="user1")
    c.subscribe(1, "t/#", 2)
    c.publish("t/a", b"p0", qos=0)
    c.publish("t/b", b"p1", qos=1, pid=10)
    c.publish("t/c", b"p2", qos=2, pid=11)
    c.ping()
    c.unsubscribe(2, "t/#")
    c.disconnect()
    names = ["session.created", "client.connected", "client.subscribed",
             "message.published", "message.delivered", "message.acked", "client.ping",
             "client.unsubscribed", "client.disconnected"]
    want = [("session.created", None), ("client.connected", None),
            ("client.subscribed", None),
            ("message.published", "t/a"), ("message.delivered", "t/a"),
            ("message.published", "t/b"), ("message.delivered", "t/b"),
            ("message.acked", "t/b"),
            ("message.published", "t/c"), ("message.delivered", "t/c"),
            ("message.acked", "t/c"),
            ("client.ping", None), ("client.unsubscribed", None),
            ("client.disconnected", None)]

    def got(evs):
        return [(e["event"], e.get("topic")) for f, e in ev.of("c1", names)]

    ev.wait(lambda evs: len(got(evs)) >= len(want), 5)
    ev.poll(0.2)  # anything duplicated would arrive now
    check(got(ev.events) == want, f"events in order: {got(ev.events)}")

    evs = {(e["event"], e.get("topic")): (f, e) for f, e in ev.of("c1", names)}
    f, e = evs[("client.connected", None)]
    check(f[0] == b"client.connected" and len(f) == 2, f"frames {f[0]!r} {len(f)}")
    for k, v in (("schema", 1), ("node", "itest-node"), ("client_id", "c1"),
                 ("username", "user1"), ("peer_addr", "127.0.0.1"),
                 ("peer_port", c.local_port), ("protocol", 4), ("tls", False),
                 ("clean_start", True), ("keep_alive", 30), ("will", False), ("rc", 0),
                 ("rc_name", "accepted")):
        check(e.get(k) == v, f"client.connected {k}={e.get(k)!r}, want {v!r}")
    check(abs(e["ts"] / 1000 - time.time()) < 60, f"ts {e['ts']}")

    f, e = evs[("client.subscribed", None)]
    check((e["filter"], e["qos"], e["rc"], e["packet_id"]) == ("t/#", 2, 2, 1),
          f"client.subscribed {e}")
    f, e = evs[("message.published", "t/b")]
    check(f[0] == b"message.published/t/b" and len(f) == 3 and f[2] == b"p1",
          f"published frames {f}")
    check((e["qos"], e["packet_id"], e["payload_len"], e["retain"], e["origin"])
          == (1, 10, 2, False, "c1"), f"message.published {e}")
    f, e = evs[("message.delivered", "t/c")]
    check(f[0] == b"message.delivered/t/c" and f[2] == b"p2", f"delivered frames {f}")
    check((e["to"], e["delivery_qos"], e["qos"]) == ("c1", 2, 2), f"message.delivered {e}")
    f, e = evs[("message.acked", "t/b")]
    check((e["to"], e["delivery_qos"]) == ("c1", 1), f"message.acked {e}")
    f, e = evs[("client.unsubscribed", None)]
    check((e["filter"], e["packet_id"]) == ("t/#", 2), f"client.unsubscribed {e}")
    f, e = evs[("client.disconnected", None)]
    check(e["by_client"] is True and e["will"] is False, f"client.disconnected {e}")

    # Sequence numbers: one socket, everything subscribed, nothing dropped.
    seqs = [e["seq"] for f, e in ev.events]
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"consecutive seq {seqs}")
    check(all(e["dropped"] == 0 for f, e in ev.events), "no drops")
    ev.close()


def test_v5_properties(broker):
    """paho MQTT 5: user properties in order and the other v5 fields."""
    check(mqtt is not None, "paho-mqtt missing")
    ev = Events(broker.endpoint, ("message.published/v5/", "client."))
    sync(broker, ev, "v5")
    cl = mqtt.Client(client_id="c5", protocol=mqtt.MQTTv5)
    cl.connect("127.0.0.1", broker.port, keepalive=20)
    cl.loop_start()
    try:
        props = brokerctl.publish_properties(
            [("a", "1"), ("b", "2"), ("a", "3")], ContentType="text/plain",
            ResponseTopic="v5/reply", CorrelationData=b"\x00\x01\xfe",
            MessageExpiryInterval=120, PayloadFormatIndicator=1)
        info = cl.publish("v5/x", b"hello", qos=1, properties=props)
        info.wait_for_publish(5)
        ok = ev.wait(lambda evs: any(e["event"] == "message.published" for f, e in evs), 5)
        check(ok, "message.published v5 arrived")
    finally:
        cl.disconnect()
        cl.loop_stop()
    f, e = next((f, e) for f, e in ev.events if e["event"] == "message.published")
    check(f[0] == b"message.published/v5/x" and f[2] == b"hello", f"frames {f}")
    check(e["user_properties"] == [["a", "1"], ["b", "2"], ["a", "3"]],
          f"user_properties {e['user_properties']}")
    check(e["content_type"] == "text/plain", e)
    check(e["response_topic"] == "v5/reply", e)
    check(base64.b64decode(e["correlation_data"]) == b"\x00\x01\xfe", e)
    check(e["message_expiry"] in (119, 120), e)
    check(e["payload_format"] == 1, e)
    check(e["protocol"] == 5 and e["client_id"] == "c5", e)
    conn = [e for f, e in ev.events if e["event"] == "client.connected" and e["client_id"] == "c5"]
    check(len(conn) == 1 and conn[0]["protocol"] == 5, f"client.connected v5 {conn}")
    ev.close()


DYING = r"""
import sys, time
import paho.mqtt.client as mqtt
c = mqtt.Client(client_id="dying")
c.will_set("wills/dying", b"gone", qos=1)
c.on_connect = lambda *a: print("ready", flush=True)
c.connect("127.0.0.1", int(sys.argv[1]), keepalive=60)
c.loop_forever()
"""


def test_killed_client_will(broker):
    """A client killed with SIGKILL: disconnected (not by the client), and
    its will published, each once."""
    check(mqtt is not None, "paho-mqtt missing")
    ev = Events(broker.endpoint)
    sync(broker, ev, "will")
    p = subprocess.Popen([sys.executable, "-c", DYING, str(broker.port)], stdout=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        check(line.strip() == b"ready", f"dying client said {line!r}")
        check(ev.wait(lambda evs: ev.of("dying", {"client.connected"}), 5), "dying connected")
        p.send_signal(signal.SIGKILL)
        p.wait(5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    names = {"client.disconnected", "message.will"}
    ev.wait(lambda evs: len(ev.of("dying", names)) >= 2, 5)
    ev.poll(0.3)
    got = ev.of("dying", names)
    check(sorted(e["event"] for f, e in got) == sorted(names), f"events {got}")
    f, e = next((f, e) for f, e in got if e["event"] == "message.will")
    check(f[0] == b"message.will/wills/dying" and f[2] == b"gone", f"will frames {f}")
    check((e["topic"], e["qos"]) == ("wills/dying", 1), f"will {e}")
    # The client's side closed the connection (the kernel did, for the
    # killed process), without DISCONNECT: so the will goes out.
    f, e = next((f, e) for f, e in got if e["event"] == "client.disconnected")
    check(e["will"] is True and e["by_client"] is True and e["rc"] != 0, f"disconnected {e}")
    connected = ev.of("dying", {"client.connected"})
    check(connected[0][1]["will"] is True, "client.connected will flag")
    ev.close()


def test_prefix_filtering(broker):
    """Subscribers get exactly the events under their prefixes."""
    ev = Events(broker.endpoint, ("message.published/filt/", "client.connected"))
    sync(broker, ev, "filter")
    c = RawClient(broker.port, "filt")
    c.publish("filt/a", b"1", expect_echo=False)
    c.publish("other/b", b"2", expect_echo=False)
    c.publish("filt/c/d", b"3", expect_echo=False)
    c.publish("filt", b"4", expect_echo=False)
    c.ping()
    c.disconnect()
    ev.wait(lambda evs: len(ev.of("filt")) >= 3, 5)
    ev.poll(0.3)
    got = [f[0].decode() for f, e in ev.of("filt")]
    check(got == ["client.connected", "message.published/filt/a", "message.published/filt/c/d"],
          f"filtered {got}")
    names = {e["event"] for f, e in ev.events}
    check(names <= {"client.connected", "message.published"}, f"names {names}")
    ev.close()


def test_examples(broker):
    """The example consumers run against the broker, bounded."""
    ex = os.path.join(TOP_SRCDIR, "examples")
    pr = subprocess.Popen([sys.executable, os.path.join(ex, "hooks_print.py"), "-e", broker.endpoint,
                           "-p", "client.connected", "--count", "1", "--timeout", "10"],
                          stdout=subprocess.PIPE, text=True)
    tc = subprocess.Popen([sys.executable, os.path.join(ex, "hooks_topic_counts.py"), "-e",
                           broker.endpoint, "-p", "message.published/ex/", "--seconds", "12"],
                          stdout=subprocess.PIPE, text=True)
    try:
        # hooks_print.py exits after its first event: connect clients
        # until it has subscribed and seen one.
        deadline = time.monotonic() + 10
        while pr.poll() is None and time.monotonic() < deadline:
            RawClient(broker.port, "example-client").disconnect()
            time.sleep(0.2)
        c = RawClient(broker.port, "example-client")
        for i in range(5):
            c.publish("ex/a", b"12345", expect_echo=False)
        c.publish("ex/b", b"1", expect_echo=False)
        c.disconnect()
        out, _ = pr.communicate(timeout=15)
        check(pr.returncode == 0 and "client.connected" in out and "example-client" in out,
              f"hooks_print.py said {out!r}")
        out, _ = tc.communicate(timeout=25)
        last = out.strip().split("\n")
        check(tc.returncode == 0, f"hooks_topic_counts.py rc {tc.returncode}")
        table = {ln.split()[0]: ln.split()[1:] for ln in last if ln.startswith("ex/")}
        check(table.get("ex/a", [None])[0] == "5" and table.get("ex/b", [None])[0] == "1",
              f"topic table {out!r}")
    finally:
        for p in (pr, tc):
            if p.poll() is None:
                p.kill()
                p.wait(5)


def test_curve():
    """With CurveZMQ keys only a client with the server key gets events."""
    pub, sec = zmq.curve_keypair()
    b = Broker(curve=(pub.decode(), sec.decode()))
    try:
        plain = Events(b.endpoint)
        secure = Events(b.endpoint, curve_server_key=pub)
        sync(b, secure, "curve")
        plain.poll(0.5)
        check(secure.events and not plain.events,
              f"secure {len(secure.events)} plain {len(plain.events)}")
        plain.close()
        secure.close()
    finally:
        b.stop()


def roundtrip(port, cid, n=5, timeout=5):
    """Seconds for n QoS 1 publishes to come back to their own client."""
    c = RawClient(port, cid)
    c.subscribe(1, f"rt/{cid}", 1)
    t0 = time.monotonic()
    for i in range(n):
        c.publish(f"rt/{cid}", b"x", qos=1, pid=100 + i)
    dt = time.monotonic() - t0
    c.disconnect()
    return dt


def test_stuck_subscriber():
    """A subscriber that stops reading: the broker keeps serving, drops
    events, counts them ($SYS, and the dropped field)."""
    b = Broker(hwm=20, extra=["sys_interval 1"])
    try:
        stuck = Events(b.endpoint, rcvhwm=10)
        sync(b, stuck, "stuck")
        base = roundtrip(b.port, "rt0")
        pub = RawClient(b.port, "loader")
        payload = b"z" * 8192
        t0 = time.monotonic()
        for i in range(3000):
            pub.publish("load/x", payload, expect_echo=False)
            if i % 500 == 0:
                dt = roundtrip(b.port, f"rt{i}")
                check(dt < 5, f"round trip took {dt:.2f} s under load")
        pub.ping()
        elapsed = time.monotonic() - t0
        check(elapsed < 60, f"3000 publishes took {elapsed:.1f} s")
        pub.disconnect()
        check(b.alive(), "broker alive")
        # $SYS shows the drops.
        sysc = RawClient(b.port, "sys-reader")
        sysc.subscribe(1, "$SYS/broker/midge/hooks/dropped", 0)
        dropped = 0
        deadline = time.monotonic() + 5
        while dropped == 0 and time.monotonic() < deadline:
            sysc.pump_until(("publish", "$SYS/broker/midge/hooks/dropped"), 5)
            dropped = int(sysc.received[-1][1])
        check(dropped > 0, f"$SYS dropped {dropped}")
        sysc.disconnect()
        # The stuck subscriber reads again: it sees a gap and the count.
        stuck.wait(lambda evs: False, 1.0)
        seqs = [e["seq"] for f, e in stuck.events]
        gaps = sum(1 for a, c in zip(seqs, seqs[1:]) if c != a + 1)
        check(gaps > 0, f"no seq gap in {len(seqs)} events")
        check(max(e["dropped"] for f, e in stuck.events) > 0, "dropped field grew")
        # The log says so too (once per sys_interval at most).
        deadline = time.monotonic() + 5
        while "event publisher dropped" not in b.logtext() and time.monotonic() < deadline:
            time.sleep(0.1)
        check("event publisher dropped" in b.logtext(), "no drop count in the log")
        check(base < 5, f"baseline round trip {base:.2f}")
        stuck.close()
    finally:
        b.stop()


def test_first_packet_not_connect(broker):
    """A first packet that is not CONNECT: the engine's client.protocol_error
    reaches the hooks and the log (no transport special case)."""
    ev = Events(broker.endpoint)
    sync(broker, ev, "notconnect")
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    s.sendall(b"\xc0\x00")
    try:
        check(s.recv(16) == b"", "connection not closed")
    finally:
        s.close()
    why = "first packet is PINGREQ, not CONNECT"
    check(ev.wait(lambda evs: any(e["event"] == "client.protocol_error" and e.get("why") == why
                                  for _, e in evs), 5), "no client.protocol_error")
    deadline = time.monotonic() + 5
    while why not in broker.logtext() and time.monotonic() < deadline:
        time.sleep(0.05)
    check(why in broker.logtext(), "not logged")
    ev.close()


def test_bound_endpoint_logged():
    """A "*" port is logged as the port bound, not as configured."""
    b = Broker(extra=["midge_hooks_endpoint tcp://127.0.0.1:*"])
    try:
        deadline = time.monotonic() + 5
        ports = []
        while len(ports) < 2 and time.monotonic() < deadline:
            ports = re.findall(r"events published on tcp://127\.0\.0\.1:(\S+)", b.logtext())
            time.sleep(0.05)
        check(len(ports) == 2 and all(p.isdigit() for p in ports), f"endpoints logged {ports}")
        check(str(b.hport) in ports, f"fixed port {b.hport} not in {ports}")
    finally:
        b.stop()


def main():
    passed = failed = 0
    if not os.access(MIDGE, os.X_OK):
        print(f"FAIL: {MIDGE} not built")
        print("0 passed, 1 failed")
        return 1
    broker = None
    try:
        broker = Broker()
    except Exception as e:  # noqa: BLE001 - reported, counted
        print(f"FAIL: broker start: {e}")
        print("0 passed, 1 failed")
        return 1
    tests = [("scripted 3.1.1 session", lambda: test_scripted_session(broker)),
             ("MQTT 5 properties", lambda: test_v5_properties(broker)),
             ("killed client with will", lambda: test_killed_client_will(broker)),
             ("prefix filtering", lambda: test_prefix_filtering(broker)),
             ("example consumers", lambda: test_examples(broker)),
             ("CurveZMQ", test_curve),
             ("stuck subscriber does not stall", test_stuck_subscriber),
             ("first packet not CONNECT", lambda: test_first_packet_not_connect(broker)),
             ("bound endpoints logged", test_bound_endpoint_logged)]
    only = sys.argv[1:]
    for name, fn in tests:
        if only and not any(o in name for o in only):
            continue
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            print(f"PASS: {name} ({time.monotonic() - t0:.1f} s)", flush=True)
        except Exception:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL: {name}", flush=True)
            traceback.print_exc()
            if broker and not broker.alive():
                print(broker.logtext())
    try:
        broker.stop()
    except AssertionError as e:
        failed += 1
        print(f"FAIL: main broker's stop: {e}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
