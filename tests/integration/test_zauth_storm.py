"""1,000 concurrent CONNECTs decided by auth workers that take 50 ms each
(ten of them, REQ sockets), while clients already connected keep
publishing QoS 1: every CONNECT is answered (accepted), and the
publishers' PUBLISH -> PUBACK round trips stay short (p99 printed and
bounded), because the engine thread never waits for a worker. midge only."""

import os
import resource
import selectors
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet, spawn, kill  # noqa: E402

r = brokerctl.Results("auth workers storm")
brokerctl.deadline(r, 90)
N = 1000
WORKERS = 10
HERE = os.path.dirname(os.path.abspath(__file__))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))

b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n"
                    "midge_auth_endpoint ipc://{dir}/auth\nmidge_auth_timeout_ms 30000\n"
                    "max_connections -1\n", nofile=4096)
ep = "ipc://%s/auth" % b.dir
ws = [spawn(["/usr/bin/python3", os.path.join(HERE, "zauth_worker.py"), ep, "--delay", "50"])
      for _ in range(WORKERS)]
for w in ws:
    w.stdout.readline()

# publishers connected first (each through a worker too)
pubs = []
for i in range(4):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    s.sendall(connect_packet("pub%d" % i, username="p", password="p"))
    p = read_packet(s, 10)
    pubs.append(s)
r.check("publishers connected", all(pubs))
stop = threading.Event()
rtts = []


def publisher(s, k):
    pid = 1
    while not stop.is_set():
        t0 = time.time()
        s.sendall(publish_packet("load/%d" % k, b"x" * 64, qos=1, packet_id=pid))
        p = read_packet(s, 10)
        if not p or p[0] != 0x40:
            rtts.append(10.0)
            return
        rtts.append(time.time() - t0)
        pid = pid % 65535 + 1
        time.sleep(0.005)


ths = [threading.Thread(target=publisher, args=(s, k)) for k, s in enumerate(pubs)]
for t in ths:
    t.start()
time.sleep(0.5)
base = len(rtts)

sel = selectors.DefaultSelector()
socks = []
t0 = time.time()
for i in range(N):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    s.sendall(connect_packet("storm%d" % i, username="u%d" % i, password="p"))
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
answered, accepted = 0, 0
end = time.time() + 60
while answered < N and time.time() < end:
    for key, _ in sel.select(timeout=1.0):
        s = key.fileobj
        try:
            data = s.recv(16)
        except OSError:
            data = b""
        answered += 1
        if len(data) >= 4 and data[0] == 0x20 and data[3] == 0:
            accepted += 1
        sel.unregister(s)
el = time.time() - t0
stop.set()
for t in ths:
    t.join(15)
during = sorted(rtts[base:])
p99 = during[int(len(during) * 0.99) - 1] if during else 99
p50 = during[len(during) // 2] if during else 99
print("note %d CONNECTs through %d workers of 50 ms: %.1f s (%.0f/s); publishers meanwhile: "
      "%d round trips, p50 %.1f ms, p99 %.1f ms (loaded machine)"
      % (N, WORKERS, el, N / el, len(during), p50 * 1000, p99 * 1000), flush=True)
r.check("every CONNECT answered and accepted", answered == N and accepted == N,
        (answered, accepted))
r.check("ten workers of 50 ms: 1,000 CONNECTs in under 15 s", el < 15 * brokerctl.TIME_SCALE, el)
r.check("publishers kept going during the storm (p99 %.1f ms < 250 ms)" % (p99 * 1000),
        len(during) > 100 and p99 < 0.25 * brokerctl.TIME_SCALE, (len(during), p99))
for s in socks + pubs:
    s.close()
for w in ws:
    kill(w)
r.finish()
