"""midge_persist_max_acks_held against the real binary (raw MQTT 3.1.1):
acknowledgements waiting for commits are bounded for all clients
together; past the bound, publishers are not read (back-pressure) and
nothing is dropped.

Commits are slowed down (midge_persist_commit_delay_ms 1000) and the
bound set to 10. Two publishers each write 30 QoS 1 PUBLISH at once to a
connected persistent subscriber (so every PUBACK waits for a commit):
- before the first commit, midge has read at most the bound plus one
  packet of the other publisher (the subscriber got 10 or 11 messages,
  no publisher a PUBACK);
- in the end every message reached the subscriber once, in order per
  publisher, and every publisher got its 30 PUBACKs;
- $SYS/broker/midge/acks held/pauses counted the pauses;
- without the bound (0) the same run is read at once (the check above
  is one the bound makes true)."""

import os
import select
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import parse_publish  # noqa: E402

r = brokerctl.Results("persist-bound")
brokerctl.deadline(r, 50)
check = r.check
N = 30
DIRS = []


def raw(port, cid, clean):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(brokerctl.connect_packet(cid, clean=clean))
    pk = brokerctl.read_packet(s, 5)
    if not pk or pk[0] != 0x20:
        raise RuntimeError("CONNACK expected, got %r" % (pk,))
    return s


class Reader:
    """Packets of one socket, read without blocking the others."""

    def __init__(self, s):
        self.s = s
        self.buf = b""
        self.packets = []

    def pump(self):
        try:
            self.s.setblocking(False)
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.s.setblocking(True)
        while len(self.buf) >= 2:
            mult, length, i = 1, 0, 1
            while i < len(self.buf) and i < 5:
                d = self.buf[i]
                length += (d & 0x7F) * mult
                mult *= 128
                i += 1
                if not d & 0x80:
                    break
            else:
                return
            if len(self.buf) < i + length:
                return
            self.packets.append((self.buf[0], self.buf[i:i + length]))
            self.buf = self.buf[i + length:]

    def count(self, ptype):
        return sum(1 for p in self.packets if p[0] >> 4 == ptype)


def pump_for(readers, seconds):
    end = time.time() + seconds
    while time.time() < end:
        select.select([x.s for x in readers], [], [], max(0.0, min(0.05, end - time.time())))
        for x in readers:
            x.pump()


def run(bound):
    d = tempfile.mkdtemp(prefix="midge-bound-")
    DIRS.append(d)
    b = persistctl.start(d, "midge_persist_commit_delay_ms 1000\nmidge_persist_max_acks_held %d\n"
                         "sys_interval 1\n" % bound)
    sub = raw(b.port, "sub", False)
    sub.sendall(brokerctl.subscribe_packet(1, "a/#", 1))
    pk = brokerctl.read_packet(sub, 5)
    assert pk and pk[0] == 0x90, pk
    pubs = [raw(b.port, "pub%d" % k, True) for k in range(2)]
    for k, p in enumerate(pubs):
        p.sendall(b"".join(brokerctl.publish_packet("a/%d" % k, b"%d" % i, 1, i + 1)
                           for i in range(N)))
    readers = [Reader(sub)] + [Reader(p) for p in pubs]
    pump_for(readers, 0.5)  # well before the first commit (1 s)
    early = (readers[0].count(3), sum(x.count(4) for x in readers[1:]))
    end = time.time() + 20
    while time.time() < end and (readers[0].count(3) < 2 * N or
                                 any(x.count(4) < N for x in readers[1:])):
        pump_for(readers, 0.2)
    got = {}
    for first, body in readers[0].packets:
        if first >> 4 == 3:
            topic, pid, payload, qos, dup, retain = parse_publish(first, body)
            got.setdefault(topic, []).append(int(payload))
    pubacks = [x.count(4) for x in readers[1:]]
    # the pauses, as $SYS says
    mon = raw(b.port, "mon", True)
    mon.sendall(brokerctl.subscribe_packet(1, "$SYS/broker/midge/acks held/pauses", 0))
    pauses = None
    end = time.time() + 3
    while time.time() < end and pauses is None:
        pk = brokerctl.read_packet(mon, 1)
        if pk and pk[0] >> 4 == 3:
            pauses = int(parse_publish(pk[0], pk[1])[2])
    for s in [sub, mon] + pubs:
        s.close()
    b.stop()
    return early, got, pubacks, pauses


early, got, pubacks, pauses = run(10)
check("bound 10: before the first commit the subscriber got 10 or 11 messages, the "
      "publishers no PUBACK (%d, %d)" % early, 10 <= early[0] <= 11 and early[1] == 0)
check("bound 10: in the end every message reached the subscriber once, in order",
      got == {"a/0": list(range(N)), "a/1": list(range(N))},
      "%r" % {t: len(v) for t, v in got.items()})
check("bound 10: every publisher got its %d PUBACKs (%r)" % (N, pubacks), pubacks == [N, N])
check("bound 10: $SYS/broker/midge/acks held/pauses counted them (%r)" % pauses,
      pauses is not None and pauses >= 2)
early, got, pubacks, pauses = run(0)
check("no global bound: everything read at once (%d, %d)" % early, early[0] == 2 * N and early[1] == 0)
check("no global bound: every PUBACK after the commit (%r)" % pubacks, pubacks == [N, N])
for d in DIRS:
    shutil.rmtree(d, ignore_errors=True)
r.finish()
