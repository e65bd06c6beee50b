"""The broker runs out of file descriptors: more clients connect than its
open-file limit allows. It must keep serving the ones it has, not spin on
the listener while the rest wait in the backlog (the listener rests and
the error is logged about once a second), and serve new clients once
descriptors are free again."""

import os
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet, subscribe_packet  # noqa: E402

LIMIT = 64     # the broker's open-file limit
N = 150        # clients: more than LIMIT, fewer than the listen backlog
r = brokerctl.Results("fdlimit")
brokerctl.deadline(r, 60)


def cpu_seconds(pid):
    """User + system CPU time of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


b = brokerctl.start_fd_limited(LIMIT, "listener {port} 127.0.0.1\nmax_connections -1\n")

t_start = time.time()
socks = []
for i in range(N):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", b.port))
    socks.append(s)
sel = selectors.DefaultSelector()
pending = {}
for i, s in enumerate(socks):
    sel.register(s, selectors.EVENT_WRITE, i)
    pending[i] = connect_packet("fd-%d" % i, 60)
connacks = 0
end = time.time() + 5
while time.time() < end and (pending or connacks < N):
    for key, ev in sel.select(0.2):
        i, s = key.data, key.fileobj
        if ev & selectors.EVENT_WRITE and i in pending:
            try:
                s.send(pending.pop(i))
            except OSError:
                pending.pop(i, None)
            sel.modify(s, selectors.EVENT_READ, i)
        elif ev & selectors.EVENT_READ:
            try:
                data = s.recv(64)
            except OSError:
                data = b""
            if data[:1] == b"\x20":
                connacks += 1
            sel.unregister(s)
    if not pending and time.time() > end - 3:
        break
r.check("clients within the limit get CONNACK (%d of %d)" % (connacks, N), 20 <= connacks < LIMIT)
r.check("the broker is alive", b.alive())

# The rest wait in the backlog: the broker must not poll the listener in a loop.
c0 = cpu_seconds(b.pid)
time.sleep(2.0)
used = cpu_seconds(b.pid) - c0
r.check("no busy loop on the listener while out of descriptors (%.2f s CPU in 2 s)" % used, used < 0.4)
log = b.log_text()
lines = [l for l in log.splitlines() if "accept on port" in l]
r.check("running out of descriptors is logged", len(lines) >= 1 and "open files" in lines[0], log[-500:])
r.check("... at most about once a second (%d lines in %.1f s)" % (len(lines), time.time() - t_start),
        len(lines) <= time.time() - t_start + 1)

for s in socks:
    s.close()
sel.close()
time.sleep(0.5)

# Descriptors are free again: a new client is served end to end.
ok = False
got = b""
end = time.time() + 10
while time.time() < end and not ok:
    try:
        sub = socket.create_connection(("127.0.0.1", b.port), timeout=2)
        sub.sendall(connect_packet("fd-sub", 60))
        ack = read_packet(sub)
        if not ack or ack[0] >> 4 != 2:
            sub.close()
            time.sleep(0.2)
            continue
        sub.sendall(subscribe_packet(1, "fd/t", 0))
        read_packet(sub)
        pub = socket.create_connection(("127.0.0.1", b.port), timeout=2)
        pub.sendall(connect_packet("fd-pub", 60))
        read_packet(pub)
        pub.sendall(publish_packet("fd/t", b"after", 0))
        msg = read_packet(sub)
        got = msg
        ok = bool(msg) and msg[0] >> 4 == 3 and msg[1].endswith(b"after")
        pub.close()
        sub.close()
    except OSError:
        time.sleep(0.2)
r.check("after the clients went, a new client is served", ok, repr(got))
r.check("the broker is still alive", b.alive())
r.finish()
