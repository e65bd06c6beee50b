"""Helpers for the cluster tests: a real nats-server with JetStream on a
free loopback port and a temporary store (stopped by PID), and midge nodes
joined to it through brokerctl."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"


class Nats:
    """nats-server -js on 127.0.0.1; restart() keeps its port and store."""

    def __init__(self, config=None, scheme="nats"):
        """config: nats-server configuration text (TLS, authorization)
        given with -c; the port, address and store stay on the command line."""
        self.dir = tempfile.mkdtemp(prefix="midge-nats-")
        os.chmod(self.dir, 0o755)
        self.port = brokerctl.free_port()
        self.scheme = scheme
        self.config = config
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "nats.log"), "a")
        extra = []
        if self.config is not None:
            path = os.path.join(self.dir, "nats.conf")
            with open(path, "w") as f:
                f.write(self.config)
            extra = ["-c", path]
        self.proc = subprocess.Popen(
            [NATS_SERVER] + extra + ["-js", "-sd", os.path.join(self.dir, "js"), "-p", str(self.port),
             "-a", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if not brokerctl.wait_port(self.port, proc=self.proc):
            raise RuntimeError("nats-server did not start")

    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)

    def stop(self):
        self.kill(signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


def publish(node, tag, items):
    """Publishes (topic, payload, qos) items from a v5 client on node; True
    when every one was acknowledged."""
    from persistctl import Client
    p = Client("pub-" + tag, 5, node.port)
    p.connect()
    mids = [p.publish(t, x, q).mid for t, x, q in items]
    ok = p.wait_acked(mids, 10)
    p.close()
    return ok


class Stream(threading.Thread):
    """Publishes QoS 1 messages from client, payload the sequence number,
    until stopped (or limit messages): to topic, or to topic + "<seq>" when
    per_seq; one every interval s, slower while more than 200 wait for
    their PUBACK. acked() is the set of sequence numbers acknowledged."""

    def __init__(self, client, topic, per_seq=False, interval=0.001, limit=None):
        super().__init__(daemon=True)
        self.c, self.topic, self.seq, self.by_mid = client, topic, 0, {}
        self.per_seq, self.interval, self.limit = per_seq, interval, limit
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set() and (self.limit is None or self.seq < self.limit):
            topic = self.topic + str(self.seq) if self.per_seq else self.topic
            info = self.c.publish(topic, str(self.seq), 1)
            if info.rc != 0:
                time.sleep(0.01)
                continue
            self.by_mid[info.mid] = self.seq
            self.seq += 1
            if len(self.by_mid) - len(self.c.acked) > 200:
                time.sleep(max(self.interval, 0.005))
            else:
                time.sleep(self.interval)

    def stop(self):
        self.stop_flag.set()
        self.join(5)

    def acked(self):
        with self.c.cond:
            return {self.by_mid[m] for m in list(self.c.acked) if m in self.by_mid}

    def acked_at(self, seq):
        with self.c.cond:
            return next((self.c.acked_at[m] for m, s in self.by_mid.items()
                         if s == seq and m in self.c.acked_at), None)


def received(client):
    """The set of integer payloads a persistctl.Client received."""
    with client.cond:
        return {int(m.payload) for m in client.msgs}


def kv_get(nats, bucket, key, timeout=3.0):
    """The value of key in a JetStream key-value bucket, read over NATS's
    own protocol (a direct "last message by subject" request): bytes, or
    None when the key is absent or deleted."""
    s = socket.create_connection(("127.0.0.1", nats.port), timeout=timeout)
    try:
        s.recv(4096)  # INFO
        req = json.dumps({"last_by_subj": "$KV.%s.%s" % (bucket, key)}).encode()
        s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB _INBOX.kv 1\r\n'
                  b"PUB $JS.API.STREAM.MSG.GET.KV_%s _INBOX.kv %d\r\n%s\r\n"
                  % (bucket.encode(), len(req), req))
        buf = b""
        end = time.time() + timeout
        while time.time() < end:
            buf += s.recv(65536)
            i = buf.find(b"MSG _INBOX.kv 1 ")
            if i < 0:
                continue
            j = buf.find(b"\r\n", i)
            if j < 0:
                continue
            n = int(buf[i:j].split()[-1])
            if len(buf) < j + 2 + n:
                continue
            ans = json.loads(buf[j + 2:j + 2 + n])
            msg = ans.get("message")
            if not msg:
                return None
            hdrs = base64.b64decode(msg.get("hdrs", "")) if msg.get("hdrs") else b""
            if b"KV-Operation" in hdrs:
                return None
            return base64.b64decode(msg.get("data", ""))
        raise RuntimeError("no answer from JetStream")
    finally:
        s.close()


def node_config(nats, name, cluster="t", extra=""):
    return ("listener {port} 127.0.0.1\nmidge_cluster %s\nmidge_node_name %s\n"
            "midge_cluster_name %s\nsys_interval 1\n%s\n" % (nats.url(), name, cluster, extra))


def start_node(nats, name, cluster="t", extra=""):
    b = brokerctl.start(node_config(nats, name, cluster, extra))
    b.name = name
    return b


def stop(nodes, nats):
    """Stops the nodes (by PID), then nats-server, then anything else a
    test started through brokerctl."""
    for n in nodes:
        n.stop()
    nats.stop()
    brokerctl.stop_all()
