"""2000 simultaneous connections: all get CONNACK, one message published
to a topic all of them subscribe to reaches all of them, the broker's
memory per idle connection is reported, and after they all go the broker
still serves."""

import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet, subscribe_packet  # noqa: E402

N = 2000
r = brokerctl.Results("many")
brokerctl.deadline(r, 150)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = N + 200
if soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
b = brokerctl.start("listener {port} 127.0.0.1\nmax_connections -1\n", nofile=N + 500)
PORT = b.port
time.sleep(0.3)
rss_before = brokerctl.rss_kib(b.pid)

socks = []
t0 = time.time()
for i in range(N):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", PORT))
    socks.append(s)
sel = selectors.DefaultSelector()
pending = {}
for i, s in enumerate(socks):
    sel.register(s, selectors.EVENT_WRITE, i)
    pending[i] = connect_packet("many-%d" % i, 120) + subscribe_packet(1, "many/all", 0)
received = {i: b"" for i in range(N)}


def pump(until, deadline):
    """Writes what is pending and reads into received until until() or the
    deadline."""
    while not until() and time.time() < deadline:
        for key, ev in sel.select(0.5):
            i = key.data
            s = key.fileobj
            if ev & selectors.EVENT_WRITE and pending.get(i):
                try:
                    n = s.send(pending[i])
                    pending[i] = pending[i][n:]
                except (BlockingIOError, InterruptedError):
                    pass
                if not pending[i]:
                    sel.modify(s, selectors.EVENT_READ, i)
            elif ev & selectors.EVENT_READ:
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    continue
                received[i] += data


# CONNACK (4 bytes) + SUBACK (5 bytes) for everyone.
pump(lambda: all(len(v) >= 9 for v in received.values()), time.time() + 60)
ok = sum(1 for v in received.values() if len(v) >= 9 and v[0] == 0x20 and v[3] == 0 and v[4] == 0x90)
took = time.time() - t0
r.check("%d connections accepted and subscribed" % N, ok == N, "%d of %d in %.1f s" % (ok, N, took))
time.sleep(1.0)
rss_idle = brokerctl.rss_kib(b.pid)
per = (rss_idle - rss_before) * 1024 / N if rss_before > 0 else -1
print("broker RSS %d KiB before, %d KiB with %d idle subscribed connections: %.0f bytes each"
      % (rss_before, rss_idle, N, per))
if brokerctl.broker_kind() == "midge":
    r.check_memory("memory per idle connection below 8 KiB", 0 <= per < 8192, "%.0f bytes" % per)

for v in received:
    received[v] = b""
pub = socket.create_connection(("127.0.0.1", PORT), timeout=5)
pub.sendall(connect_packet("many-pub"))
read_packet(pub)
expect = publish_packet("many/all", b"to everyone")
pub.sendall(expect)
pump(lambda: all(len(v) >= len(expect) for v in received.values()), time.time() + 30)
got = sum(1 for v in received.values() if v.startswith(expect))
r.check("one message reaches all %d subscribers" % N, got == N, "%d of %d" % (got, N))

for s in socks:
    try:
        sel.unregister(s)
    except (KeyError, ValueError):
        pass
    s.close()
pub.close()
time.sleep(1.0)
s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
s.sendall(connect_packet("after"))
p = read_packet(s)
r.check("broker serves after 2000 clients left", p is not None and p[0] == 0x20, repr(p))
s.close()
r.check("broker still running", b.alive())
rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
r.finish()
