"""Shared pieces of the hostile-client suite: raw MQTT packet builders, a
raw connection that reports exactly what the broker did (packets, close,
timing), the expected-reaction checks, the "a normal client still works"
probe (paho-mqtt, QoS 1 round trip) and the case runner.

Every case is bounded by a timer (SIGALRM); every socket has a timeout.
"""

import collections
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import broker as brokerctl  # noqa: E402
from brokerctl import varint_decode  # noqa: E402  (tests/integration/, on the path by broker.py)

# An ASan build keeps freed memory in a quarantine (256 MB by default)
# that would read as RSS growth; 4 MB keeps use-after-free detection
# useful and the RSS bounds meaningful. Brokers inherit this environment.
if "quarantine_size_mb" not in os.environ.get("ASAN_OPTIONS", ""):
    os.environ["ASAN_OPTIONS"] = ":".join(
        x for x in (os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=4") if x)

V31, V311, V5 = 3, 4, 5
VNAME = {3: "3.1", 4: "3.1.1", 5: "5"}

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
TNAME = {0: "RESERVED0", 1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
         6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
         11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# The default configuration every group starts from. The keys are
# Mosquitto's where Mosquitto has one; midge_* keys are midge-only (see
# docs/ROBUSTNESS.md) and are dropped when the broker is Mosquitto.
CONNECT_TIMEOUT = 2          # midge_connect_timeout: accept -> CONNECT (and TLS handshake)
MAX_PACKET_SIZE = 262144     # max_packet_size: largest packet accepted (both brokers)
BASE_CONFIG = """max_packet_size %d
midge_connect_timeout %d
max_inflight_messages 20
max_queued_messages 1000
""" % (MAX_PACKET_SIZE, CONNECT_TIMEOUT)


# ---------------------------------------------------------------- encoding

def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def mstr(s):
    """Length-prefixed string; bytes are sent as they are (for bad UTF-8)."""
    if isinstance(s, str):
        s = s.encode()
    return u16(len(s)) + s


def pkt(first, body):
    return bytes([first]) + vbi(len(body)) + body


def props(*items):
    """items: raw property bytes (identifier + value); returns length + items."""
    raw = b"".join(items)
    return vbi(len(raw)) + raw


def connect(version=V311, client_id="hostile", clean=True, keepalive=60, will=None,
            username=None, password=None, properties=None, flags=None):
    """CONNECT. will = (topic, payload, qos, retain[, will_props])."""
    name = b"MQIsdp" if version == V31 else b"MQTT"
    f = 0x02 if clean else 0
    if will:
        f |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if username is not None:
        f |= 0x80
    if password is not None:
        f |= 0x40
    if flags is not None:
        f = flags
    body = mstr(name) + bytes([version, f]) + u16(keepalive)
    if version == V5:
        body += properties if properties is not None else props()
    body += mstr(client_id)
    if will:
        if version == V5:
            body += will[4] if len(will) > 4 else props()
        body += mstr(will[0]) + mstr(will[1])
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return pkt(0x10, body)


def publish(topic, payload=b"", qos=0, pid=1, retain=False, dup=False, version=V311,
            properties=None):
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    body = mstr(topic)
    if qos:
        body += u16(pid)
    if version == V5:
        body += properties if properties is not None else props()
    if isinstance(payload, str):
        payload = payload.encode()
    return pkt(first, body + payload)


def subscribe(pid, filters, version=V311, properties=None):
    """filters: list of (filter, options byte)."""
    body = u16(pid)
    if version == V5:
        body += properties if properties is not None else props()
    for flt, opts in filters:
        body += mstr(flt) + bytes([opts])
    return pkt(0x82, body)


def ack(ptype, pid, version=V311, rc=None):
    """PUBACK/PUBREC/PUBREL/PUBCOMP."""
    first = (ptype << 4) | (2 if ptype == PUBREL else 0)
    body = u16(pid)
    if version == V5 and rc is not None:
        body += bytes([rc])
    return pkt(first, body)


PINGREQ_PKT = b"\xc0\x00"


def disconnect_pkt(version=V311, rc=0):
    if version == V5 and rc:
        return pkt(0xE0, bytes([rc]))
    return b"\xe0\x00"


# ---------------------------------------------------------------- decoding

class Packet:
    def __init__(self, first, body):
        self.first = first
        self.type = first >> 4
        self.flags = first & 15
        self.body = body

    def rc(self, version):
        """Reason/return code of CONNACK, DISCONNECT, acks (v5), or None."""
        if self.type == CONNACK and len(self.body) >= 2:
            return self.body[1]
        if self.type == DISCONNECT:
            return self.body[0] if self.body else 0
        if self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            return self.body[2] if len(self.body) >= 3 else 0
        return None

    def pid(self):
        if self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK):
            return struct.unpack(">H", self.body[:2])[0]
        return None

    def describe(self, version):
        rc = self.rc(version)
        if rc is not None and self.type in (CONNACK, DISCONNECT, PUBACK, PUBREC, PUBREL, PUBCOMP):
            return "%s 0x%02x" % (TNAME[self.type], rc)
        if self.type == SUBACK:
            return "SUBACK [%s]" % " ".join("0x%02x" % c for c in suback_codes(self, version))
        return TNAME[self.type]


def vbi_at(buf, i):
    """(value, index after it) of the variable byte integer at buf[i];
    IndexError when buf ends inside it, as indexing past the end would."""
    got = varint_decode(buf, i)
    if got is None:
        raise IndexError("variable byte integer torn at %d" % i)
    return got


def parse_props(buf):
    """Returns ({id: [raw values]}, rest) for a v5 property block."""
    n, i = vbi_at(buf, 0)
    block, rest = buf[i:i + n], buf[i + n:]
    out, j = {}, 0
    sizes = {0x01: 1, 0x17: 1, 0x19: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1,
             0x13: 2, 0x21: 2, 0x22: 2, 0x23: 2, 0x02: 4, 0x11: 4, 0x18: 4, 0x27: 4}
    while j < len(block):
        pid = block[j]
        j += 1
        if pid in sizes:
            out.setdefault(pid, []).append(int.from_bytes(block[j:j + sizes[pid]], "big"))
            j += sizes[pid]
        elif pid == 0x0B:
            v, j = vbi_at(block, j)
            out.setdefault(pid, []).append(v)
        elif pid == 0x26:
            ln = struct.unpack(">H", block[j:j + 2])[0]
            ln2 = struct.unpack(">H", block[j + 2 + ln:j + 4 + ln])[0]
            out.setdefault(pid, []).append(block[j:j + 4 + ln + ln2])
            j += 4 + ln + ln2
        else:
            ln = struct.unpack(">H", block[j:j + 2])[0]
            out.setdefault(pid, []).append(block[j + 2:j + 2 + ln])
            j += 2 + ln
    return out, rest


def suback_codes(p, version):
    body = p.body[2:]
    if version == V5:
        _, body = parse_props(body)
    return list(body)


def publish_fields(p, version):
    """(topic bytes, qos, pid or None, dup, payload bytes)."""
    qos = (p.flags >> 1) & 3
    tl = struct.unpack(">H", p.body[:2])[0]
    topic = p.body[2:2 + tl]
    rest = p.body[2 + tl:]
    pid = None
    if qos:
        pid = struct.unpack(">H", rest[:2])[0]
        rest = rest[2:]
    if version == V5:
        _, rest = parse_props(rest)
    return topic, qos, pid, bool(p.flags & 8), rest


# ---------------------------------------------------------------- raw client

class Closed(Exception):
    pass


class Conn:
    """One raw TCP (or TLS) connection to the broker."""

    def __init__(self, port, timeout=5.0, tls_context=None, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        if tls_context:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.buf = b""
        self.t0 = time.monotonic()
        self.version = V311

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            d = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            d = b""
        if not d:
            raise Closed()
        self.buf += d

    def recv_packet(self, timeout=5.0):
        """Next packet; raises Closed on EOF/reset, socket.timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = varint_decode(self.buf, 1, most=4)
            if got is not None:
                n, i = got
                if len(self.buf) >= i + n:
                    p = Packet(self.buf[0], self.buf[i:i + n])
                    self.buf = self.buf[i + n:]
                    return p
            self._fill(deadline)

    def observe(self, timeout=5.0):
        """Reads until the broker closes or timeout. Returns an Observation."""
        t0 = time.monotonic()
        packets = []
        closed = False
        try:
            while True:
                packets.append(self.recv_packet(max(0.0, timeout - (time.monotonic() - t0))))
        except Closed:
            closed = True
        except (socket.timeout, TimeoutError):
            pass
        except OSError:
            closed = True
        return Observation(packets, closed, time.monotonic() - t0, self.version, self.buf)

    def handshake(self, version=V311, client_id="hostile", **kw):
        """CONNECT and expect CONNACK 0; returns the CONNACK packet."""
        self.version = version
        self.send(connect(version, client_id, **kw))
        p = self.recv_packet(5.0)
        if p.type != CONNACK or p.rc(version) != 0:
            raise AssertionError("handshake: expected CONNACK 0x00, observed %s" % p.describe(version))
        return p

    def ping_ok(self, timeout=3.0):
        """True if a PINGREQ still gets a PINGRESP (other packets skipped)."""
        try:
            self.send(PINGREQ_PKT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                p = self.recv_packet(deadline - time.monotonic())
                if p.type == PINGRESP:
                    return True
        except (Closed, OSError, socket.timeout):
            return False
        return False

    def abort(self):
        """Close with RST (SO_LINGER 0), as a killed client would."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Observation(collections.namedtuple("Observation", "packets closed elapsed version leftover")):
    """What observe() saw: the packets, whether the broker closed, after how
    long, and the bytes of an incomplete packet left over."""

    def describe(self):
        parts = [p.describe(self.version) for p in self.packets]
        if self.leftover:
            parts.append("%d stray bytes" % len(self.leftover))
        parts.append("closed after %.2fs" % self.elapsed if self.closed
                     else "still open after %.2fs" % self.elapsed)
        return ", ".join(parts)


# ---------------------------------------------------------------- expectations

class CaseFailure(AssertionError):
    pass


def fail(expected, observed):
    raise CaseFailure("expected %s; observed %s" % (expected, observed))


def hexes(codes):
    return "/".join("0x%02x" % c for c in codes)


def expect_silent_close(obs, within=3.0):
    """Closed, nothing sent (errors before CONNECT: the version is unknown)."""
    if not obs.closed or obs.packets or obs.leftover or obs.elapsed > within:
        fail("close without any packet within %.1fs" % within, obs.describe())
    return "close, no packet (%.2fs)" % obs.elapsed


def expect_connect_refused(obs, v5codes=(0x81,), v3codes=None, within=3.0):
    """A bad CONNECT: v5 -> close, if a CONNACK comes first it has one of v5codes;
    v3 -> close, optionally after a CONNACK with a non-zero code in v3codes."""
    if not obs.closed or obs.elapsed > within:
        fail("close within %.1fs" % within, obs.describe())
    if obs.version == V5:
        # The CONNACK is optional [MQTT-4.13.1-1 "MAY send a CONNACK"]; if
        # one comes, it carries the prescribed reason code.
        if not obs.packets and not obs.leftover:
            return "close (no CONNACK)"
        if len(obs.packets) != 1 or obs.packets[0].type != CONNACK or \
                obs.packets[0].rc(V5) not in v5codes:
            fail("close, optionally after CONNACK %s" % hexes(v5codes), obs.describe())
        return "CONNACK 0x%02x, close" % obs.packets[0].rc(V5)
    if not obs.packets:
        return "close"
    codes = v3codes or (1, 2, 3, 4, 5)
    if len(obs.packets) != 1 or obs.packets[0].type != CONNACK or obs.packets[0].rc(V311) not in codes:
        fail("close (or CONNACK %s then close)" % hexes(codes), obs.describe())
    return "CONNACK 0x%02x, close" % obs.packets[0].rc(V311)


def expect_protocol_close(obs, v5codes=(0x81,), within=3.0, allow_before=()):
    """An error after CONNACK: v5 -> DISCONNECT with a code in v5codes then
    close [MQTT-4.13.1-1]; v3 -> close [MQTT-4.8.0-1]. Packets of a type in
    allow_before may precede (acks of earlier packets)."""
    if not obs.closed or obs.elapsed > within:
        fail(("DISCONNECT %s then close" % hexes(v5codes) if obs.version == V5 else "close")
             + " within %.1fs" % within, obs.describe())
    pk = [p for p in obs.packets if p.type not in allow_before]
    if obs.version == V5:
        if len(pk) != 1 or pk[0].type != DISCONNECT or pk[0].rc(V5) not in v5codes:
            fail("DISCONNECT %s then close" % hexes(v5codes), obs.describe())
        return "DISCONNECT 0x%02x, close" % pk[0].rc(V5)
    if pk:
        fail("close without a packet", obs.describe())
    return "close"


def expect_still_open(conn, obs):
    if obs.closed:
        fail("connection kept open", obs.describe())
    if not conn.ping_ok():
        fail("PINGRESP to a PINGREQ afterwards", "no PINGRESP")


# ---------------------------------------------------------------- health probe

def roundtrip(port, version=V311, timeout=5.0):
    """A normal client (paho-mqtt) connects, subscribes and round-trips one
    QoS 1 message to itself. Returns the latency in seconds; raises
    CaseFailure if anything fails."""
    import paho.mqtt.client as mqtt
    proto = mqtt.MQTTv5 if version == V5 else mqtt.MQTTv311
    cid = "probe-%d-%d" % (os.getpid(), int(time.monotonic() * 1e6) % 10 ** 9)
    topic = "probe/%s" % cid
    got = threading.Event()
    subbed = threading.Event()
    connected = threading.Event()
    c = mqtt.Client(client_id=cid, protocol=proto) if version == V5 else \
        mqtt.Client(client_id=cid, protocol=proto, clean_session=True)

    def on_connect(client, userdata, flags, rc, properties=None):
        if rc == 0:
            connected.set()
    c.on_connect = on_connect
    c.on_subscribe = lambda *a: subbed.set()
    c.on_message = lambda client, ud, msg: got.set() if msg.qos == 1 else None
    t0 = time.monotonic()
    try:
        c.connect("127.0.0.1", port, keepalive=30)
    except OSError as e:
        fail("a normal client connects", "connect failed: %s" % e)
    c.loop_start()
    try:
        if not connected.wait(timeout):
            fail("a normal client gets CONNACK 0", "no CONNACK 0 within %.0fs" % timeout)
        c.subscribe(topic, qos=1)
        if not subbed.wait(timeout):
            fail("SUBACK to a normal client", "none within %.0fs" % timeout)
        t1 = time.monotonic()
        c.publish(topic, b"ping", qos=1)
        if not got.wait(timeout):
            fail("QoS 1 round trip", "message not delivered within %.0fs" % timeout)
        lat = time.monotonic() - t1
    finally:
        try:
            c.disconnect()
        except Exception:
            pass
        c.loop_stop()
    del t0
    return lat


def raw_roundtrip(port, version=V311, timeout=5.0):
    """roundtrip() without paho (whose select() loop cannot handle file
    descriptors above 1023, as in a process holding 20 000 sockets)."""
    t0 = time.monotonic()
    try:
        c = Conn(port, timeout=timeout)
        cid = "rawprobe-%d" % (int(time.monotonic() * 1e6) % 10 ** 9)
        c.handshake(version, cid)
        c.send(subscribe(1, [("probe/" + cid, 1)], version))
        p = c.recv_packet(timeout)
        if p.type != SUBACK or suback_codes(p, version) != [1]:
            fail("SUBACK 0x01", p.describe(version))
        t1 = time.monotonic()
        c.send(publish("probe/" + cid, b"ping", 1, 2, version=version))
        while time.monotonic() - t0 < timeout:
            p = c.recv_packet(timeout)
            if p.type == PUBLISH:
                lat = time.monotonic() - t1
                c.close()
                return lat
    except (Closed, OSError) as e:
        fail("a new client round-trips QoS 1", "%s: %s" % (type(e).__name__, e))
    fail("a new client round-trips QoS 1", "no delivery within %.0fs" % timeout)


def rss_mb(b):
    return b.rss_kb() / 1024.0


# ---------------------------------------------------------------- runner

SAN_PATTERNS = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|Invalid (read|write)|"
                          r"definitely lost: [1-9]|uninitialised value|ERROR SUMMARY: [1-9]")


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


class Suite:
    """Runs cases against one broker (restarted if a case kills it),
    checks afterwards that a normal client still round-trips QoS 1, and
    prints one line per case and the summary line last."""

    def __init__(self, group, config=BASE_CONFIG, tls=False):
        self.group = group
        self.config = config
        self.tls = tls
        self.passed = 0
        self.failed = 0
        self.broker = None
        self.failures = []
        signal.signal(signal.SIGALRM, _alarm)
        print("# group %s against %s (%s)" % (group, brokerctl.kind(), brokerctl.binary()), flush=True)

    def ensure_broker(self):
        if self.broker is None or not self.broker.alive():
            self.broker = brokerctl.start(self.config, tls=self.tls)
        return self.broker

    def restart(self, config=None):
        if self.broker:
            self.broker.stop()
        self.broker = None
        if config is not None:
            self.config = config
        return self.ensure_broker()

    def case(self, name, fn, timeout=20.0, health=True):
        """fn(broker) returns a short description of the observed reaction
        or raises CaseFailure."""
        full = "%s.%s" % (self.group, name)
        only = os.environ.get("MIDGE_HOSTILE_ONLY")
        if only and only not in full:
            return  # a debugging aid: run only the cases whose name contains it
        try:
            b = self.ensure_broker()
        except RuntimeError as e:
            self._fail(full, "broker start: %s" % e)
            return
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            what = fn(b)
            if not b.alive():
                fail("broker still running", "broker exited with %s" % b.proc.returncode)
            if health:
                lat = roundtrip(b.port)
                what = "%s; probe %.0f ms" % (what or "ok", lat * 1000)
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.passed += 1
            print("PASS %s: %s" % (full, what), flush=True)
        except CaseTimeout:
            self._fail(full, "case did not finish within %.0fs" % timeout)
        except CaseFailure as e:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._fail(full, str(e))
        except Exception as e:  # a crash of the test itself is a failure too
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._fail(full, "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc()))
        if self.broker and not self.broker.alive():
            print("# broker died (status %s); log tail:\n%s" % (
                self.broker.proc.returncode, self.broker.log_text()[-2000:]), flush=True)
            self.broker = None

    def _fail(self, full, msg):
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.failed += 1
        self.failures.append(full)
        print("FAIL %s: %s" % (full, msg), flush=True)

    def finish(self):
        if self.broker:
            self.broker.stop()
            # A sanitizer build reports leaks and errors at exit: those
            # count as a failure of the group.
            m = SAN_PATTERNS.search(self.broker.log_text())
            if m:
                log = self.broker.log_text()
                self._fail("%s.broker_exit_report" % self.group,
                           log[max(0, m.start() - 200):m.start() + 1500])
        if self.failures:
            print("# failed: %s" % " ".join(self.failures))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)


def connected(b, version, client_id=None, **kw):
    """A raw connection past CONNACK."""
    c = Conn(b.port)
    c.handshake(version, client_id or "h%d" % (int(time.monotonic() * 1e6) % 10 ** 9), **kw)
    return c


def pre(data, within=3.0):
    """Case: bytes before any CONNECT. The version is unknown, so the only
    answer is to close [MQTT-3.1.0-1] [MQTT-4.8.0-1]."""
    def run(b):
        c = Conn(b.port)
        c.send(data)
        obs = c.observe(within + 1)
        c.close()
        return expect_silent_close(obs, within)
    return run


def after(version, data, v5codes=(0x81,), within=3.0, allow_before=()):
    """Case: a connected client sends data; v5 expects DISCONNECT with one
    of v5codes (after packets of types allow_before) then close, 3.1.1
    expects a close."""
    def run(b):
        c = connected(b, version)
        c.send(data)
        obs = c.observe(within + 1)
        c.close()
        return expect_protocol_close(obs, v5codes, within, allow_before)
    return run
