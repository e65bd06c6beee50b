"""Misbehaving clients do not stall the broker: a subscriber that stops
reading while 64 MB of QoS 0 messages are published to it, a client that
sends one byte per second, and (midge) a socket that never completes its
CONNECT is closed after midge_connect_timeout."""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet, subscribe_packet  # noqa: E402

r = brokerctl.Results("slow")
brokerctl.deadline(r, 150)
b = brokerctl.start("listener {port} 127.0.0.1\nmidge_connect_timeout 3\nmidge_max_output_bytes 1048576\n")
PORT = b.port


def raw_client(cid, keepalive=60):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    s.sendall(connect_packet(cid, keepalive))
    p = read_packet(s)
    assert p and p[0] == 0x20 and p[1][1] == 0, p
    return s


class Prober(threading.Thread):
    """Round trips through the broker every 100 ms; records the slowest."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.sock = raw_client(name)
        self.sock.sendall(subscribe_packet(1, "probe/" + name, 0))
        read_packet(self.sock)
        self.topic = "probe/" + name
        self.worst = 0.0
        self.count = 0
        self.lost = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.time()
            self.sock.sendall(publish_packet(self.topic, b"p"))
            p = read_packet(self.sock, 5)
            if p is None or p[0] & 0xF0 != 0x30:
                self.lost += 1
            self.worst = max(self.worst, time.time() - t0)
            self.count += 1
            time.sleep(0.1)


# 1. A subscriber that never reads.
stuck = raw_client("stuck")
stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
stuck.sendall(subscribe_packet(1, "flood/#", 0))
time.sleep(0.3)
probe = Prober("p1")
probe.start()
rss0 = brokerctl.rss_kib(b.pid)
pub = raw_client("flooder")
payload = os.urandom(32 * 1024)
t0 = time.time()
pub.settimeout(30)
for i in range(2048):
    pub.sendall(publish_packet("flood/x", payload))
elapsed = time.time() - t0
time.sleep(0.5)
rss1 = brokerctl.rss_kib(b.pid)
probe.stop.set()
probe.join(10)
print("flood: 64 MB in %.1f s, broker RSS %d -> %d KiB, probe worst %.3f s over %d round trips"
      % (elapsed, rss0, rss1, probe.worst, probe.count))
r.check("64 MB to a stuck subscriber is accepted within 30 s", elapsed < 30, "%.1f s" % elapsed)
r.check("other clients keep round trips under 1 s meanwhile",
        probe.worst < 1.0 * brokerctl.TIME_SCALE and probe.lost == 0,
        "worst %.3f s, lost %d" % (probe.worst, probe.lost))
if brokerctl.broker_kind() == "midge":
    r.check_memory("broker memory stays bounded (< 48 MiB growth)", rss1 - rss0 < 48 * 1024,
            "%d -> %d KiB" % (rss0, rss1))
stuck.close()
pub.close()

# 2. One byte per second: a PUBLISH dribbled in, others served meanwhile.
sub = raw_client("dribble-sub")
sub.sendall(subscribe_packet(1, "dribble", 0))
read_packet(sub)
probe = Prober("p2")
probe.start()
slow = raw_client("dribbler")
pkt = publish_packet("dribble", b"xy")
for byte in pkt:
    slow.sendall(bytes([byte]))
    time.sleep(1.0)
p = read_packet(sub, 5)
probe.stop.set()
probe.join(10)
r.check("a PUBLISH sent one byte per second arrives", p is not None and p[1].endswith(b"xy"), repr(p))
r.check("others are served while a client dribbles",
        probe.worst < 1.0 * brokerctl.TIME_SCALE and probe.lost == 0 and
        probe.count > 20, "worst %.3f s, %d round trips" % (probe.worst, probe.count))
slow.close()
sub.close()

# 3. A CONNECT that never completes.
if brokerctl.broker_kind() == "midge":
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    t0 = time.time()
    closed = False
    for byte in connect_packet("never", 60):
        try:
            s.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        s.settimeout(1.0)
        try:
            if s.recv(16) == b"":
                closed = True
                break
        except socket.timeout:
            pass
        except OSError:
            closed = True
            break
    took = time.time() - t0
    r.check("no CONNECT within midge_connect_timeout (3 s): closed", closed and 2.0 < took < 6.0,
            "closed=%r after %.1f s" % (closed, took))
    s.close()
    r.check("the log says why", "no CONNECT within" in b.log_text(), b.log_text()[-1000:])

r.check("broker still running", b.alive())
rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
r.finish()
