"""Helpers of the auth worker tests (test_zauth*.py, test_auth_chain_zmq.py):
the workers and a broker bound for them; a raw MQTT 5 CONNECT and its
CONNACK's reason code and properties; a worker's log."""

import json
import os
import socket

import brokerctl
from brokerctl import connect_packet, read_packet, spawn, varint, varint_decode, _s

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "zauth_worker.py")
JSON_WORKER = os.path.join(HERE, "..", "..", "examples", "auth_worker_json.py")


def start_worker(workers, cmd):
    """Starts a worker (stopped by the test with kill(), from workers)."""
    p = spawn(cmd)
    workers.append(p)
    if "zauth_worker.py" in cmd[1]:
        p.stdout.readline()  # "ready" went out
    return p


def worker_broker(extra, timeout_ms):
    """A broker whose auth workers connect to b.endpoint."""
    b = brokerctl.start("listener {port} 127.0.0.1\n"
                        "midge_auth_endpoint ipc://{dir}/auth\nmidge_auth_timeout_ms %d\n%s"
                        % (timeout_ms, extra))
    b.endpoint = "ipc://%s/auth" % b.dir
    return b


def connect5(port, cid, user=None, pw=None, props=b""):
    """(reason code, {property id: value}) of a v5 CONNECT, and the socket."""
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if pw is not None else 0)
    body = _s(b"MQTT") + bytes([5, flags]) + (60).to_bytes(2, "big") + varint(len(props)) + \
        props + _s(cid.encode())
    for f in (user, pw):
        if f is not None:
            body += _s(f.encode())
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(bytes([0x10]) + varint(len(body)) + body)
    p = read_packet(s, 10)
    if not p or p[0] != 0x20:
        return None, {}, s
    return p[1][1], props_of(p[1], 2), s


def props_of(body, at):
    """{property id: value} of the v5 property block at body[at:]."""
    plen, i = varint_decode(body, at)
    got, end = {}, i + plen
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x11, 0x27):  # four-byte integers
            got[pid] = int.from_bytes(body[i:i + 4], "big")
            i += 4
        elif pid in (0x21, 0x22, 0x13):
            got[pid] = int.from_bytes(body[i:i + 2], "big")
            i += 2
        elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A):
            got[pid] = body[i]
            i += 1
        else:  # strings and binary data
            n = int.from_bytes(body[i:i + 2], "big")
            got[pid] = body[i + 2:i + 2 + n]
            i += 2 + n
    return got


def connect3(port, cid, user=None, pw=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(connect_packet(cid, username=user, password=pw))
    p = read_packet(s, 10)
    return (p[1][1] if p and p[0] == 0x20 else None), s


def received_topics(sock, first=1.0, then=1.0):
    """The topics of the 3.1.1 PUBLISH packets sock receives until it is
    quiet: the first wait `first` seconds, each next one `then`."""
    topics = []
    p = read_packet(sock, first)
    while p:
        if p[0] & 0xF0 == 0x30:
            topics.append(p[1][2:2 + int.from_bytes(p[1][:2], "big")].decode())
        p = read_packet(sock, then)
    return topics


def json_lines(path):
    """The JSON objects of a file, a line each ([] while it is missing):
    what a test worker logged."""
    try:
        with open(path) as f:
            return [json.loads(x) for x in f if x.strip()]
    except OSError:
        return []
