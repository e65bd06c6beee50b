#!/usr/bin/python3
"""Hostile clients, group "resources": clients that hold resources
(silence, slowloris, a subscriber that never reads, 20 000 connections,
subscriptions up to the limit, a huge will, TLS garbage and a stalled
handshake). For each case: the offending client is cut off within the
configured timeout, the broker's VmRSS stays under the stated bound, and
other clients' QoS 1 round trip stays under the stated latency.

Bounds (also in docs/ROBUSTNESS.md):
  RSS_SMALL_MB   growth allowed for a single hostile client
  FLOOD_RSS_MB   growth allowed while a subscriber never reads a flood
  CONN_RSS_MB    total RSS allowed with ~20 000 connections open
  LATENCY_MAX_S  worst QoS 1 round trip of a normal client meanwhile
"""

import os
import selectors
import socket
import ssl
import threading
import time

from hostile import (V311, V5, VNAME, BASE_CONFIG, MAX_PACKET_SIZE, CONNECT_TIMEOUT, DISCONNECT, SUBACK,
                     Conn, Suite, connect, connected, expect_connect_refused, expect_silent_close,
                     fail, publish, raw_roundtrip, subscribe, suback_codes, rss_mb, brokerctl)

MAX_SUBSCRIPTIONS = 100
# A will payload is at most 65535 bytes, so this group lowers the limits
# to make a will over message_size_limit (payload bound) and one over
# max_packet_size (packet bound) possible.
SIZE_LIMIT = 32768
PACKET_LIMIT = 49152
CONFIG = BASE_CONFIG.replace("max_packet_size %d" % MAX_PACKET_SIZE,
                             "max_packet_size %d" % PACKET_LIMIT) + \
    "message_size_limit %d\n" % SIZE_LIMIT + \
    "midge_max_subscriptions %d\n" % MAX_SUBSCRIPTIONS
RSS_SMALL_MB = 16
FLOOD_RSS_MB = 64
CONN_RSS_MB = 400
LATENCY_MAX_S = 2.0
CUT_SLACK_S = 1.5
N_CONNECTIONS = int(os.environ.get("MIDGE_HOSTILE_CONNECTIONS", "20000"))


class Prober:
    """A normal client connected before the case starts round-trips a QoS
    1 message to itself every 0.25 s (in a thread) and records the
    latencies and failures; the broker's peak RSS is sampled as well."""

    def __init__(self, b):
        import paho.mqtt.client as mqtt
        self.b = b
        self.lat = []
        self.errors = []
        self.peak_mb = rss_mb(b)
        self.base_mb = self.peak_mb
        self.stop_ev = threading.Event()
        self.got = threading.Event()
        self.topic = "probe/held/%d" % int(time.monotonic() * 1e6)
        ready = threading.Event()
        self.c = mqtt.Client(client_id="held-" + self.topic.split("/")[-1])
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.on_message = lambda cl, ud, m: self.got.set()
        self.c.connect("127.0.0.1", b.port, keepalive=30)
        self.c.loop_start()
        self.c.subscribe(self.topic, qos=1)
        if not ready.wait(5):
            self.c.loop_stop()
            fail("probe client subscribed before the case", "no SUBACK within 5s")
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_ev.is_set():
            self.got.clear()
            t0 = time.monotonic()
            self.c.publish(self.topic, b"p", qos=1)
            if self.got.wait(LATENCY_MAX_S + 3):
                self.lat.append(time.monotonic() - t0)
            else:
                self.errors.append("held client's QoS 1 round trip took over %.0fs" % (LATENCY_MAX_S + 3))
            self.peak_mb = max(self.peak_mb, rss_mb(self.b))
            self.stop_ev.wait(0.25)

    def check(self, rss_bound_mb, absolute=False):
        self.stop_ev.set()
        self.t.join(LATENCY_MAX_S + 10)
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()
        self.peak_mb = max(self.peak_mb, rss_mb(self.b))
        if self.errors:
            fail("other clients served meanwhile", self.errors[0])
        if not self.lat:
            fail("at least one probe round trip", "none completed")
        worst = max(self.lat)
        if worst > LATENCY_MAX_S:
            fail("held client's round trip under %.1fs" % LATENCY_MAX_S, "worst %.2fs" % worst)
        grow = self.peak_mb - (0 if absolute else self.base_mb)
        if grow > rss_bound_mb:
            fail("RSS %s under %d MB" % ("" if absolute else "growth", rss_bound_mb),
                 "%.1f MB (base %.1f MB)" % (grow, self.base_mb))
        return "RSS %s %.1f MB (bound %d), %d probes, worst %.0f ms" % (
            "peak" if absolute else "+", grow, rss_bound_mb, len(self.lat), worst * 1000)


def silent_clients(b):
    pr = Prober(b)
    conns = [Conn(b.port, timeout=10) for _ in range(200)]
    t0 = time.monotonic()
    worst = 0.0
    for c in conns:
        obs = c.observe(max(0.1, CONNECT_TIMEOUT + CUT_SLACK_S + 1 - (time.monotonic() - t0)))
        if not obs.closed or obs.packets:
            fail("cut off within connect timeout %ds + %.1fs" % (CONNECT_TIMEOUT, CUT_SLACK_S),
                 obs.describe())
        worst = time.monotonic() - t0
        c.close()
    if worst > CONNECT_TIMEOUT + CUT_SLACK_S:
        fail("all 200 cut off within %.1fs" % (CONNECT_TIMEOUT + CUT_SLACK_S), "last at %.2fs" % worst)
    return "200 silent clients cut at <= %.2fs; %s" % (worst, pr.check(RSS_SMALL_MB))


def trickle(c, data, give_up_s):
    """Sends data one byte at a time, watching 1 s after each, until the
    broker closes or give_up_s have passed. Returns (seconds until the
    close or None, the last observation or None, the start time)."""
    t0 = time.monotonic()
    obs = None
    for i in range(len(data)):
        try:
            c.send(data[i:i + 1])
        except OSError:
            return time.monotonic() - t0, obs, t0
        obs = c.observe(1.0)
        if obs.closed:
            return time.monotonic() - t0, obs, t0
        if time.monotonic() - t0 > give_up_s:
            break
    return None, obs, t0


def slowloris_connect(b):
    pr = Prober(b)
    c = Conn(b.port)
    closed_at, obs, t0 = trickle(c, connect(V311, "slowloris"), CONNECT_TIMEOUT + CUT_SLACK_S + 2)
    c.close()
    if obs is not None and obs.closed and obs.packets:
        fail("close without a packet", obs.describe())
    if closed_at is None or closed_at > CONNECT_TIMEOUT + CUT_SLACK_S:
        fail("cut off within connect timeout %ds + %.1fs" % (CONNECT_TIMEOUT, CUT_SLACK_S),
             "still open after %.1fs" % (time.monotonic() - t0) if closed_at is None
             else "closed after %.2fs" % closed_at)
    return "1 byte/s CONNECT cut at %.2fs; %s" % (closed_at, pr.check(RSS_SMALL_MB))


def slowloris_keepalive(version):
    def run(b):
        pr = Prober(b)
        c = connected(b, version, keepalive=2)
        data = publish("slow/loris", b"z" * 50, 0, version=version)
        closed_at, obs, t0 = trickle(c, data, 3 + CUT_SLACK_S + 2)
        c.close()
        # No complete packet within 1.5 x keep alive [MQTT-3.1.2-24]
        # (v5 [MQTT-3.1.2-22]); v5 may say DISCONNECT 0x8D first.
        if closed_at is None or closed_at > 3 + CUT_SLACK_S:
            fail("cut off within 1.5 x keepalive 2s + %.1fs" % CUT_SLACK_S,
                 "still open after %.1fs" % (time.monotonic() - t0) if closed_at is None
                 else "closed after %.2fs" % closed_at)
        if obs is not None and obs.packets and not (
                version == V5 and obs.packets[-1].type == DISCONNECT and obs.packets[-1].rc(V5) == 0x8D):
            fail("close (v5: optionally DISCONNECT 0x8D)", obs.describe())
        return "1 byte/s PUBLISH cut at %.2fs; %s" % (closed_at, pr.check(RSS_SMALL_MB))
    return run


def slow_reader_flood(qos):
    def run(b):
        sub = Conn(b.port, rcvbuf=4096)
        sub.handshake(V311, "never-reads-%d" % qos)
        sub.send(subscribe(1, [("flood/#", qos)]))
        p = sub.recv_packet(3)
        if p.type != SUBACK:
            fail("SUBACK", p.describe(V311))
        pub = Conn(b.port, timeout=2)
        pub.handshake(V311, "flooder-%d" % qos)
        pr = Prober(b)
        payload = b"F" * 16384
        sent = 0
        t0 = time.monotonic()
        pid = 1
        # 5 s or 2 GB, whichever first; a publisher the broker stops
        # reading from (backpressure) just sends less.
        while time.monotonic() - t0 < 5 and sent < 2048 * 1024 * 1024:
            batch = b"".join(publish("flood/x", payload, qos, (pid + i) % 65535 + 1)
                             for i in range(16))
            pid += 16
            try:
                pub.sock.settimeout(1.0)
                pub.sock.sendall(batch)
                sent += len(batch)
            except socket.timeout:
                pass
            except OSError:
                break
            if qos:
                try:
                    pub.sock.setblocking(False)
                    while pub.sock.recv(65536):
                        pass
                except (BlockingIOError, OSError):
                    pass
                finally:
                    pub.sock.setblocking(True)
        dur = time.monotonic() - t0
        what = pr.check(FLOOD_RSS_MB)
        sub.abort()
        pub.close()
        return "QoS %d: %.0f MB offered in %.1fs to a subscriber that never reads; %s" % (
            qos, sent / 1048576.0, dur, what)
    return run


def many_connections(suite_broker):
    """Opens n connections as fast as the broker accepts them (at most
    WINDOW handshakes in flight, so the kernel's listen backlog does not
    turn the test into a measure of SYN retransmission back-off), each
    sending CONNECT; all must get CONNACK 0 and stay open while a held
    client keeps round-tripping."""
    limit = brokerctl.raise_nofile()
    n = min(N_CONNECTIONS, limit - 100)
    window = 256
    # A broker of its own with a connect timeout long enough that a burst
    # of n handshakes on a loaded machine is not cut by the 2 s one.
    b = brokerctl.start(CONFIG.replace("midge_connect_timeout %d" % CONNECT_TIMEOUT,
                                       "midge_connect_timeout 60"))
    try:
        return _many_connections(b, n, limit, window)
    finally:
        b.stop()


def _many_connections(b, n, limit, window):
    pr = Prober(b)
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    try:
        pending = {}
        acked = 0
        lost = 0
        deadline = time.monotonic() + 150
        while acked + lost < n and time.monotonic() < deadline:
            while len(socks) < n and len(pending) < window:
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", b.port))
                except BlockingIOError:
                    pass
                i = len(socks)
                socks.append(s)
                sel.register(s, selectors.EVENT_WRITE, i)
                pending[i] = b""
            for key, ev in sel.select(1.0):
                s, i = key.fileobj, key.data
                if ev & selectors.EVENT_WRITE:
                    try:
                        s.send(connect(V311, "many-%d" % i))
                        sel.modify(s, selectors.EVENT_READ, i)
                    except OSError:
                        sel.unregister(s)
                        pending.pop(i)
                        lost += 1
                    continue
                try:
                    d = s.recv(16)
                except OSError:
                    d = b""
                if not d:
                    sel.unregister(s)
                    pending.pop(i)
                    lost += 1
                    continue
                pending[i] += d
                if len(pending[i]) >= 4:
                    if pending[i][:4] == b"\x20\x02\x00\x00":
                        acked += 1
                    else:
                        lost += 1
                    sel.unregister(s)
                    pending.pop(i)
        opened = time.monotonic() - t0
        print("# %d connections: %d CONNACK 0, %d refused or closed, in %.1fs" % (
            n, acked, lost, opened), flush=True)
        if acked != n:
            fail("CONNACK 0 on all %d connections" % n, "%d (%d refused/closed) in %.1fs" % (
                acked, lost, opened))
        held_lat = raw_roundtrip(b.port)
        if held_lat > LATENCY_MAX_S:
            fail("round trip under %.1fs with %d connections" % (LATENCY_MAX_S, n), "%.2fs" % held_lat)
        still = b.fd_count()
        open_now = 0
        for s in socks:
            try:
                if s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK):
                    open_now += 1  # unexpected data, but still open
            except BlockingIOError:
                open_now += 1
            except OSError:
                pass
        if open_now != n:
            fail("all %d connections still open while held" % n, "%d open" % open_now)
        what = pr.check(CONN_RSS_MB, absolute=True)
    finally:
        for s in socks:
            s.close()
        sel.close()
    note = "" if n >= N_CONNECTIONS else " (RLIMIT_NOFILE hard limit %d, so %d instead of %d)" % (limit, n, N_CONNECTIONS)
    return "%d connections CONNACKed in %.1fs%s, broker fds %d; new client round trip %.0f ms; %s" % (
        n, opened, note, still, held_lat * 1000, what)


def subscription_limit(version):
    def run(b):
        pr = Prober(b)
        c = connected(b, version)
        got = []
        for i in range(MAX_SUBSCRIPTIONS + 20):
            c.send(subscribe(i + 1, [("lim/%d/+" % i, 1)], version))
            p = c.recv_packet(3)
            if p.type != SUBACK:
                fail("SUBACK", p.describe(version))
            got.append(suback_codes(p, version)[0])
        refused = 0x97 if version == V5 else 0x80  # v5: Quota exceeded
        ok = got[:MAX_SUBSCRIPTIONS] == [1] * MAX_SUBSCRIPTIONS
        over = got[MAX_SUBSCRIPTIONS:]
        if not ok or any(x != refused for x in over):
            fail("first %d granted (0x01), the next 20 refused 0x%02x" % (MAX_SUBSCRIPTIONS, refused),
                 "granted %d, codes after the limit: %s" % (
                     sum(1 for x in got if x < 0x80), sorted(set("0x%02x" % x for x in over))))
        if not c.ping_ok():
            fail("connection kept", "no PINGRESP")
        c.close()
        return "%d granted then 0x%02x; %s" % (MAX_SUBSCRIPTIONS, refused, pr.check(RSS_SMALL_MB))
    return run


def huge_will(version, size, codes, limit_name):
    """A CONNECT whose will is too big. 3.1.1: close (optionally after a
    CONNACK with a non-zero code); v5: close, optionally after CONNACK
    with one of codes."""
    def run(b):
        pr = Prober(b)
        c = Conn(b.port)
        c.version = version
        data = connect(version, "hugewill", will=("will/t", b"W" * size, 1, False))
        try:
            c.send(data)
        except OSError:
            pass  # refused from the header: the broker closed early
        obs = c.observe(4)
        c.close()
        what = expect_connect_refused(obs, codes, within=2.0)
        return "%d-byte will over %s: %s; %s" % (size, limit_name, what, pr.check(RSS_SMALL_MB))
    return run


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_probe(b):
    c = Conn(b.tls_port, tls_context=tls_context())
    c.handshake(V311, "tls-probe")
    c.close()


def tls_garbage(b):
    pr = Prober(b)
    c = Conn(b.tls_port)
    # Deterministic garbage: random bytes can look like a TLS record header
    # announcing a long record, which a server rightly waits for.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4)
    t0 = time.monotonic()
    closed = False
    try:
        while time.monotonic() - t0 < 5:
            c.sock.settimeout(5)
            if not c.sock.recv(4096):  # a TLS alert may come first
                closed = True
                break
    except OSError:
        closed = True
    el = time.monotonic() - t0
    c.close()
    if not closed or el > 2:
        fail("close within 2s", "open after %.1fs" % el if not closed else "closed after %.2fs" % el)
    tls_probe(b)
    return "closed after %.2fs, TLS client served; %s" % (el, pr.check(RSS_SMALL_MB))


def tls_hello_then_silence(b):
    pr = Prober(b)
    ctx = tls_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = out.read()
    c = Conn(b.tls_port)
    t0 = time.monotonic()
    c.send(hello)
    closed = False
    got = 0
    try:
        while time.monotonic() - t0 < CONNECT_TIMEOUT + CUT_SLACK_S + 3:
            c.sock.settimeout(CONNECT_TIMEOUT + CUT_SLACK_S + 3)
            d = c.sock.recv(65536)
            if not d:
                closed = True
                break
            got += len(d)
    except OSError as e:
        closed = not isinstance(e, socket.timeout)
    el = time.monotonic() - t0
    c.close()
    if not closed or el > CONNECT_TIMEOUT + CUT_SLACK_S:
        fail("cut off within connect/handshake timeout %ds + %.1fs" % (CONNECT_TIMEOUT, CUT_SLACK_S),
             "open after %.1fs" % el if not closed else "closed after %.2fs" % el)
    tls_probe(b)
    return "ServerHello (%d bytes) then cut at %.2fs; %s" % (got, el, pr.check(RSS_SMALL_MB))


def tls_silent(b):
    c = Conn(b.tls_port, timeout=10)
    obs = c.observe(CONNECT_TIMEOUT + CUT_SLACK_S + 2)
    c.close()
    what = expect_silent_close(obs, CONNECT_TIMEOUT + CUT_SLACK_S)
    tls_probe(b)
    return what


def main():
    s = Suite("resources", config=CONFIG, tls=True)
    t = CONNECT_TIMEOUT + CUT_SLACK_S + 15
    s.case("silent_clients_200", silent_clients, timeout=t + 10)
    s.case("slowloris_connect", slowloris_connect, timeout=t)
    for v in (V311, V5):
        s.case("slowloris_keepalive_v" + VNAME[v], slowloris_keepalive(v), timeout=t)
    s.case("slow_reader_flood_qos0", slow_reader_flood(0), timeout=40)
    s.case("slow_reader_flood_qos1", slow_reader_flood(1), timeout=40)
    s.case("connections_%d" % N_CONNECTIONS, many_connections, timeout=200)
    for v in (V311, V5):
        s.case("subscription_limit_v" + VNAME[v], subscription_limit(v), timeout=30)
        # Payload over message_size_limit: the specification names no
        # code, so any refusing CONNACK (>= 0x80) or a close.
        s.case("will_over_message_size_limit_v" + VNAME[v],
               huge_will(v, SIZE_LIMIT + 8000, tuple(range(0x80, 0x100)), "message_size_limit %d" % SIZE_LIMIT),
               timeout=t)
        # Packet over max_packet_size: refused from the fixed header; v5
        # may answer CONNACK 0x95 Packet too large.
        s.case("will_over_max_packet_size_v" + VNAME[v],
               huge_will(v, 65000, (0x95,), "max_packet_size %d" % PACKET_LIMIT), timeout=t)
    s.case("tls_garbage", tls_garbage, timeout=t)
    s.case("tls_clienthello_then_silence", tls_hello_then_silence, timeout=t)
    s.case("tls_silent", tls_silent, timeout=t)
    s.finish()


if __name__ == "__main__":
    main()
