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
