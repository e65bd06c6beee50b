#!/usr/bin/python3
"""MQTT 5 rules checked against the real broker over raw sockets with the
specification's byte layouts: Authentication Data without a method
(3.1.2.11.10), a client PUBLISH with a Subscription Identifier
[MQTT-3.3.4-6], Payload Format Indicator 1 with a payload that is not UTF-8
(3.3.2.3.2, reason 0x99), and a session resumed with a smaller Receive
Maximum [MQTT-3.3.4-7]. MIDGE_BROKER=mosquitto runs the same checks against
Mosquitto, the reference; where it differs the check says so."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import read_packet, varint  # noqa: E402

r = brokerctl.Results("v5-rules")
brokerctl.deadline(r, 60)
b = brokerctl.start()
MOSQ = brokerctl.broker_kind() == "mosquitto"


def s16(data):
    return len(data).to_bytes(2, "big") + data


def props(raw):
    return varint(len(raw)) + raw


def connect5(cid, clean=True, raw_props=b""):
    body = s16(b"MQTT") + bytes([5, 0x02 if clean else 0]) + (60).to_bytes(2, "big") + \
        props(raw_props) + s16(cid.encode())
    return bytes([0x10]) + varint(len(body)) + body


def publish5(topic, payload, qos=0, pid=1, raw_props=b""):
    body = s16(topic.encode()) + (pid.to_bytes(2, "big") if qos else b"") + \
        props(raw_props) + payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


def subscribe5(pid, topic, qos):
    body = pid.to_bytes(2, "big") + props(b"") + s16(topic.encode()) + bytes([qos])
    return bytes([0x82]) + varint(len(body)) + body


def puback(pid):
    return bytes([0x40, 2]) + pid.to_bytes(2, "big")


def dial(cid, clean=True, raw_props=b""):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(connect5(cid, clean, raw_props))
    return s, read_packet(s)


def closed(s, timeout=3.0):
    """True when the broker closes s (after any packets it sends first);
    False when it stays open for timeout seconds."""
    s.settimeout(timeout)
    try:
        for _ in range(64):
            if not s.recv(4096):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
    return False


def check(what, ok, detail=""):
    """A specification rule. Mosquitto 2.0.11 breaks some of them: against
    it a failed rule is reported as its difference, not counted."""
    if MOSQ and not ok:
        print("note %s: Mosquitto differs %s" % (what, detail), flush=True)
        return
    r.check(what, ok, detail)


def publishes(s, n, timeout=3.0):
    """Packet ids and DUP flags of the next n PUBLISH (fewer on timeout)."""
    got = []
    while len(got) < n:
        p = read_packet(s, timeout)
        if p is None:
            break
        first, body = p
        if first >> 4 != 3:
            continue
        tl = int.from_bytes(body[0:2], "big")
        pid = int.from_bytes(body[2 + tl:4 + tl], "big")
        got.append((pid, bool(first & 0x08)))
    return got


# -- Authentication Data without an Authentication Method: CONNACK 0x82
s, ack = dial("v5r-auth", raw_props=b"\x16" + s16(b"a"))
check("auth data without method: CONNACK 0x82",
        ack is not None and ack[0] == 0x20 and len(ack[1]) >= 2 and ack[1][1] == 0x82,
        "got %r" % (ack,))
check("auth data without method: connection closed", closed(s))
s.close()

# -- a client PUBLISH with a Subscription Identifier: DISCONNECT 0x82
sub, _ = dial("v5r-sub")
sub.sendall(subscribe5(1, "v5r/t", 1))
read_packet(sub)
pub, ack = dial("v5r-pub")
pub.sendall(publish5("v5r/t", b"hi", 0, raw_props=b"\x0b\x01"))
p = read_packet(pub)
check("PUBLISH with a subscription id: DISCONNECT 0x82",
        p is not None and p[0] == 0xE0 and len(p[1]) >= 1 and p[1][0] == 0x82, "got %r" % (p,))
check("PUBLISH with a subscription id: connection closed", closed(pub))
check("PUBLISH with a subscription id: not forwarded", publishes(sub, 1, 1.0) == [])
pub.close()

# -- Payload Format Indicator 1 and a payload that is not UTF-8
pub, _ = dial("v5r-pub2")
pub.sendall(publish5("v5r/t", b"\xff\xfe", 1, pid=7, raw_props=b"\x01\x01"))
p = read_packet(pub)
rc = p[1][2] if p and len(p[1]) >= 3 else 0
check("payload format 1, invalid UTF-8, QoS 1: PUBACK 0x99",
        p is not None and p[0] == 0x40 and p[1][:2] == b"\x00\x07" and rc == 0x99,
        "got %r" % (p,))
check("payload format 1, invalid UTF-8: not forwarded", publishes(sub, 1, 1.0) == [])
pub.sendall(publish5("v5r/t", "h\u00e9".encode(), 1, pid=8, raw_props=b"\x01\x01"))
p = read_packet(pub)
check("payload format 1, valid UTF-8: PUBACK success",
        p is not None and p[0] == 0x40 and (len(p[1]) == 2 or p[1][2] == 0), "got %r" % (p,))
check("payload format 1, valid UTF-8: forwarded", len(publishes(sub, 1)) == 1)
sub.close()

# -- a session resumed with a smaller Receive Maximum [MQTT-3.3.4-7]
expiry = b"\x11" + (60).to_bytes(4, "big")
s, _ = dial("v5r-rm", clean=True, raw_props=expiry + b"\x21\x00\x05")
s.sendall(subscribe5(1, "v5r/rm", 1))
read_packet(s)
for i in range(4):
    pub.sendall(publish5("v5r/rm", b"m%d" % i, 1, pid=20 + i))
for i in range(4):
    read_packet(pub)
first = publishes(s, 4)
check("receive maximum 5: four messages in flight", len(first) == 4, "got %r" % (first,))
s.close()
s, ack = dial("v5r-rm", clean=False, raw_props=expiry + b"\x21\x00\x02")
check("resumed: session present", ack is not None and ack[1][0] == 1, "got %r" % (ack,))
again = publishes(s, 4, 1.5)
check("resumed with receive maximum 2: only two resent, with DUP",
        again == [(first[0][0], True), (first[1][0], True)], "got %r" % (again,))
s.sendall(puback(first[0][0]) + puback(first[1][0]))
rest = publishes(s, 4, 1.5)
check("after two acks the other two follow, in order, with DUP",
        rest == [(first[2][0], True), (first[3][0], True)], "got %r" % (rest,))
s.close()

# -- a shared member whose session ends: what it did not acknowledge goes
# to another member (4.8.2)
m1, _ = dial("v5r-m1")
m2, _ = dial("v5r-m2")
m1.sendall(subscribe5(1, "$share/g/v5r/sh", 1))
m2.sendall(subscribe5(1, "$share/g/v5r/sh", 1))
read_packet(m1)
read_packet(m2)
for i in range(6):
    pub.sendall(publish5("v5r/sh", b"s%d" % i, 1, pid=40 + i))
for i in range(6):
    read_packet(pub)
got1 = publishes(m1, 6, 1.0)
got2 = publishes(m2, 6, 1.0)
r.check("shared: both members got some", len(got1) > 0 and len(got2) > 0 and
        len(got1) + len(got2) == 6, "got %r %r" % (got1, got2))
m1.close()  # clean start, no expiry: its session ends unacknowledged
more = publishes(m2, len(got1), 3.0)
check("shared: the departed member's unacknowledged messages go to the other",
      len(more) == len(got1), "got %r after %r" % (more, got1))
m2.close()
pub.close()
r.finish()
