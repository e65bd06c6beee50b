"""Helpers of the auth worker tests (test_zauth*.py, test_auth_chain_zmq.py):
the workers and a broker bound for them; a raw MQTT 5 CONNECT and its
CONNACK's reason code and properties; a worker's log; a raw-socket
publisher and a paho subscriber of the acl tests."""

import atexit
import json
import os
import socket
import threading
import time

import brokerctl
from brokerctl import connect_packet, read_packet, spawn, varint, varint_decode, _s
import paho.mqtt.client as mqtt

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "zauth_worker.py")
JSON_WORKER = os.path.join(HERE, "..", "..", "examples", "auth_worker_json.py")


def start_worker(workers, cmd):
    """Starts a worker (stopped by the test with kill(), from workers; at
    exit too, so a test that fails half way leaves none behind)."""
    p = spawn(cmd)
    workers.append(p)
    atexit.register(_stop_worker, p)
    if "zauth_worker.py" in cmd[1]:
        p.stdout.readline()  # "ready" went out
    return p


def _stop_worker(p):
    if p.poll() is None:
        p.kill()
        p.wait(5)


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


class Raw:
    """A raw-socket client: paho 1.6 does not hand the PUBACK/PUBREC
    reason code to the application."""

    def __init__(self, port, cid, v5, user=None, will=None):
        self.v5 = v5
        self.pid = 0
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        flags = 0x02 | (0x80 if user else 0) | (0x44 if will else 0)
        vh = _s(b"MQTT") + bytes([5 if v5 else 4, flags, 0, 60]) + (b"\x00" if v5 else b"")
        pl = _s(cid.encode())
        if will:
            pl += (b"\x00" if v5 else b"") + _s(will.encode()) + _s(b"bye")
        if user:
            pl += _s(user.encode())
        body = vh + pl
        self.s.sendall(b"\x10" + varint(len(body)) + body)
        p = read_packet(self.s, 10)
        self.rc = p[1][1] if p and p[0] == 0x20 else None

    def send_publish(self, topic, payload, qos, retain=False):
        self.pid = self.pid % 65535 + 1
        body = _s(topic.encode()) + (self.pid.to_bytes(2, "big") if qos else b"") + \
            (b"\x00" if self.v5 else b"") + payload.encode()
        self.s.sendall(bytes([0x30 | qos << 1 | retain]) + varint(len(body)) + body)
        return self.pid

    def ack(self, qos, pid, timeout=10):
        """The reason code of the PUBACK (qos 1) or PUBREC (qos 2) of pid."""
        want = 0x40 if qos == 1 else 0x50
        end = time.time() + timeout
        while time.time() < end:
            p = read_packet(self.s, end - time.time())
            if p is None:
                return None
            if p[0] == want and int.from_bytes(p[1][:2], "big") == pid:
                return p[1][2] if len(p[1]) > 2 else 0
        return None

    def publish(self, topic, payload, qos=1, retain=False):
        return self.ack(qos, self.send_publish(topic, payload, qos, retain))

    def close(self):
        try:
            self.s.sendall(b"\xe0\x00")
            self.s.close()
        except OSError:
            pass


class Sub:
    """A paho subscriber in its own network thread."""

    def __init__(self, port, cid, v5, user=None, password=None):
        self.msgs = []
        self.times = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.granted = None
        if v5:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        else:
            self.c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv311, clean_session=True)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connected.set()
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        self.connected.wait(10)

    def _on_subscribe(self, client, userdata, mid, granted, props=None):
        self.granted = [g if isinstance(g, int) else g.value for g in granted]
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.msgs.append((msg.topic, msg.payload.decode(errors="replace")))
            self.times.append(time.time())

    def subscribe(self, filters):
        self.subscribed.clear()
        self.c.subscribe(filters)
        self.subscribed.wait(10)
        return self.granted

    def wait_for(self, n, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.msgs) >= n:
                    break
            time.sleep(0.02)
        with self.lock:
            return list(self.msgs)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()
