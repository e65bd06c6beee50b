"""Helpers of the enhanced-authentication tests (test_auth_enhanced.py,
test_auth_affinity.py): a SCRAM-SHA-256 client on a raw socket, AUTH
packets, the exchange and a re-authentication."""

import base64
import hashlib
import hmac
import os
import socket

from brokerctl import _s, read_packet, varint
from test_zauth_lib import props_of

METHOD = "SCRAM-SHA-256"


def auth_props(method, data=None):
    p = bytes([0x15]) + _s(method.encode())
    if data is not None:
        p += bytes([0x16]) + _s(data)
    return p


def auth_packet(rc, props):
    body = bytes([rc]) + varint(len(props)) + props
    return bytes([0xF0]) + varint(len(body)) + body


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 5802), as a test needs it."""

    def __init__(self, user, password):
        self.user, self.password = user, password
        self.cnonce = base64.b64encode(os.urandom(18)).decode()
        self.bare = "n=%s,r=%s" % (user, self.cnonce)

    def first(self):
        return ("n,," + self.bare).encode()

    def final(self, server_first):
        a = dict(x.split("=", 1) for x in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(),
                                     base64.b64decode(a["s"]), int(a["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        without = "c=biws,r=%s" % a["r"]
        msg = ("%s,%s,%s" % (self.bare, server_first.decode(), without)).encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), msg, "sha256").digest()
        proof = bytes(x ^ y for x, y in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.want = "v=" + base64.b64encode(hmac.new(server_key, msg, "sha256").digest()).decode()
        return (without + ",p=" + base64.b64encode(proof).decode()).encode()


def expect(sock, first, timeout=5):
    """(reason code, props) of the next packet if its first byte is
    `first`, else (None, the packet)."""
    p = read_packet(sock, timeout)
    if not p or p[0] != first:
        return None, p
    if len(p[1]) < 2:
        return (p[1][0] if p[1] else 0), {}
    return p[1][0], props_of(p[1], 1)


def connack(sock, timeout=5):
    p = read_packet(sock, timeout)
    if not p or p[0] != 0x20:
        return None, p
    return p[1][1], props_of(p[1], 2)


def scram_connect(port, cid, user, password, bad_method_in_auth=False):
    """Runs the exchange; (CONNACK code, its props, client, socket, steps)."""
    cl = ScramClient(user, password)
    s = raw_connect(port, cid, cl.first())
    steps = []
    p = read_packet(s, 5)
    if p and p[0] == 0xF0:
        rc, got = p[1][0], props_of(p[1], 1)
        steps.append((rc, got))
        method = "OTHER" if bad_method_in_auth else METHOD
        s.sendall(auth_packet(0x18, auth_props(method, cl.final(got.get(0x16, b"")))))
        p = read_packet(s, 5)
    if not p or p[0] != 0x20:
        return None, p, cl, s, steps
    return p[1][1], props_of(p[1], 2), cl, s, steps


def pings(s):
    s.sendall(b"\xc0\x00")
    p = read_packet(s, 5)
    return bool(p) and p[0] == 0xD0


def reauth(s, user, password):
    """AUTH 0x19 and the exchange; the last packet's (type, rc, props)."""
    cl = ScramClient(user, password)
    s.sendall(auth_packet(0x19, auth_props(METHOD, cl.first())))
    p = read_packet(s, 5)
    if not p or p[0] != 0xF0 or p[1][0] != 0x18:
        return p and (p[0], p[1][0] if p[1] else 0, {}), cl
    got = props_of(p[1], 1)
    s.sendall(auth_packet(0x18, auth_props(METHOD, cl.final(got.get(0x16, b"")))))
    p = read_packet(s, 5)
    if not p:
        return None, cl
    return (p[0], p[1][0] if p[1] else 0, props_of(p[1], 1) if len(p[1]) > 1 else {}), cl


def raw_connect(port, cid, first, method=METHOD):
    """A v5 CONNECT with method and first data sent; the socket."""
    body = _s(b"MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big")
    props = auth_props(method, first)
    body += varint(len(props)) + props + _s(cid.encode())
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(bytes([0x10]) + varint(len(body)) + body)
    return s
