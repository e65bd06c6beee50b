"""Helpers for the cluster tests: a real nats-server with JetStream on a
free loopback port and a temporary store (stopped by PID), and midge nodes
joined to it through brokerctl."""

import base64
import collections
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402

NATS_SERVER = shutil.which("nats-server") or "/usr/bin/nats-server"


class Nats:
    """nats-server -js on 127.0.0.1; restart() keeps its port and store."""

    def __init__(self, config=None, scheme="nats", monitor=False):
        """config: nats-server configuration text (TLS, authorization)
        given with -c; the port, address and store stay on the command line.
        monitor: serve nats-server's HTTP monitoring (varz())."""
        self.dir = tempfile.mkdtemp(prefix="midge-nats-")
        os.chmod(self.dir, 0o755)
        self.port = brokerctl.free_port()
        self.mport = brokerctl.free_port() if monitor else None
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
        if self.mport:
            extra += ["-m", str(self.mport)]
        self.proc = subprocess.Popen(
            [NATS_SERVER] + extra + ["-js", "-sd", os.path.join(self.dir, "js"), "-p", str(self.port),
             "-a", "127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        if not brokerctl.wait_port(self.port, proc=self.proc):
            raise RuntimeError("nats-server did not start")

    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def varz(self):
        """nats-server's own counters (in_msgs: NATS messages it received)."""
        with urllib.request.urlopen("http://127.0.0.1:%d/varz" % self.mport, timeout=5) as f:
            return json.load(f)

    def publish_raw(self, subject, body):
        """Publishes body on subject over NATS's own protocol, as any
        NATS client could; returns once nats-server has it (PONG)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.recv(4096)  # INFO
            s.sendall(b'CONNECT {"verbose":false}\r\nPUB %s %d\r\n%s\r\nPING\r\n'
                      % (subject.encode(), len(body), body))
            buf = b""
            end = time.time() + 5
            while b"PONG" not in buf and time.time() < end:
                buf += s.recv(4096)
        finally:
            s.close()

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


def counts(*clients):
    """How many times each integer payload arrived, over persistctl.Clients."""
    got = collections.Counter()
    for cl in clients:
        with cl.cond:
            got.update(int(m.payload) for m in cl.msgs)
    return got


def ranges(nums):
    """Sorted integers as "a-b" runs: 3-7, 9."""
    out = []
    for n in sorted(nums):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)


class Cut(threading.Thread):
    """A TCP proxy on a free loopback port to 127.0.0.1:port (a node's link
    to nats-server: start the node with url=cut.url()). One thread for all
    its connections (non-blocking sockets, a selector); bytes go both ways
    as they come. cut() closes every proxied connection and from then on
    closes each new one at once (the node's link breaks and its reconnects
    fail); restore() lets connections through again; close() stops the
    thread and closes everything."""

    BUF_MAX = 1 << 20  # bytes waiting for one side: past this, the other is not read

    def __init__(self, port):
        super().__init__(daemon=True)
        self.target = port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.want_cut = False  # asked for by cut() / restore()
        self.is_cut = False  # the thread's state
        self.done = threading.Event()  # set by the thread once is_cut == want_cut
        self.stop_flag = threading.Event()
        self.peer = {}  # socket: the other end of its connection
        self.out = {}  # socket: bytes waiting to be written to it
        self.accepted = 0  # connections proxied
        self.refused = 0  # connections closed at once while cut
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ)
        self.start()

    def url(self, scheme="nats"):
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def _close_pair(self, s):
        for x in (s, self.peer.get(s)):
            if x is None or x not in self.peer:
                continue
            if x in self.sel.get_map():
                self.sel.unregister(x)
            x.close()
            del self.peer[x]
            del self.out[x]

    def _interest(self, s):
        """s is read while its peer's buffer has room and written while its
        own has bytes; neither: it leaves the selector meanwhile."""
        ev = selectors.EVENT_READ if len(self.out[self.peer[s]]) < self.BUF_MAX else 0
        if self.out[s]:
            ev |= selectors.EVENT_WRITE
        key = self.sel.get_map().get(s)
        if not ev:
            if key:
                self.sel.unregister(s)
        elif not key:
            self.sel.register(s, ev)
        elif key.events != ev:
            self.sel.modify(s, ev)

    def _accept(self):
        for _ in range(16):
            try:
                c, _ = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            if self.is_cut:
                self.refused += 1
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                c.close()
                continue
            self.accepted += 1
            for x, y in ((c, u), (u, c)):
                x.setblocking(False)
                x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.peer[x] = y
                self.out[x] = bytearray()
                self.sel.register(x, selectors.EVENT_READ)

    def _io(self, s, ev):
        if s not in self.peer:
            return  # closed with its peer earlier in this round
        p = self.peer[s]
        try:
            if ev & selectors.EVENT_WRITE and self.out[s]:
                del self.out[s][:s.send(self.out[s])]
            if ev & selectors.EVENT_READ and len(self.out[p]) < self.BUF_MAX:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("end of stream")
                self.out[p] += data
                del self.out[p][:p.send(self.out[p])]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close_pair(s)
            return
        self._interest(s)
        self._interest(p)

    def run(self):
        try:
            while not self.stop_flag.is_set():
                with self.lock:
                    if self.want_cut != self.is_cut:
                        self.is_cut = self.want_cut
                        if self.is_cut:
                            for s in list(self.peer):
                                self._close_pair(s)
                    self.done.set()
                for key, ev in self.sel.select(0.02):
                    if key.fileobj is self.lsock:
                        self._accept()
                    else:
                        self._io(key.fileobj, ev)
        finally:
            for s in list(self.peer):
                self._close_pair(s)
            self.sel.close()
            self.lsock.close()

    def _set(self, cut):
        with self.lock:
            self.want_cut = cut
            self.done.clear()
        return self.done.wait(2)

    def cut(self):
        """Breaks the link now: True once every connection is closed."""
        return self._set(True)

    def restore(self):
        return self._set(False)

    def close(self):
        self.stop_flag.set()
        self.join(2)


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


def node_config(nats, name, cluster="t", extra="", url=None):
    """url: where the node finds NATS (by default nats.url(); a Cut's url())."""
    return ("listener {port} 127.0.0.1\nmidge_cluster %s\nmidge_node_name %s\n"
            "midge_cluster_name %s\nsys_interval 1\n%s\n" % (url or nats.url(), name, cluster,
                                                               extra))


def start_node(nats, name, cluster="t", extra="", url=None):
    b = brokerctl.start(node_config(nats, name, cluster, extra, url))
    b.name = name
    return b


def stop(nodes, nats):
    """Stops the nodes (by PID), then nats-server, then anything else a
    test started through brokerctl."""
    for n in nodes:
        n.stop()
    nats.stop()
    brokerctl.stop_all()
