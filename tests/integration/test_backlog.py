"""Output that waits for the socket: a plain and a TLS subscriber stop
reading while 8 MB of QoS 1 messages are published to them, so the
broker's writes come back short and the rest waits for the socket to be
writable. Meanwhile another client is answered at once; then each
subscriber reads and acknowledges, and gets every message, whole and in
order."""

import os
import socket
import ssl
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "hostile"))
import brokerctl  # noqa: E402
import broker as hostile_broker  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet, subscribe_packet  # noqa: E402

N = 128
SIZE = 64 * 1024
r = brokerctl.Results("backlog")
brokerctl.deadline(r, 120)
b = hostile_broker.start("max_inflight_messages 1000\n", tls=True)


def client(port, cid, tls):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(connect_packet(cid, 60))
    ack = read_packet(s)
    return s if ack and ack[0] >> 4 == 2 else None


def puback(pid):
    return bytes([0x40, 2]) + pid.to_bytes(2, "big")


for tls in (False, True):
    name = "TLS" if tls else "plain"
    topic = "backlog/%s" % name
    sub = client(b.tls_port if tls else b.port, "sub-" + name, tls)
    r.check("%s subscriber connected" % name, sub is not None)
    if not sub:
        continue
    sub.sendall(subscribe_packet(1, topic, 1))
    ack = read_packet(sub)
    r.check("%s SUBACK" % name, bool(ack) and ack[0] == 0x90)
    pub = client(b.port, "pub-" + name, False)
    acked = 0
    for i in range(N):
        payload = (b"%06d" % i) * (SIZE // 6)
        pub.sendall(publish_packet(topic, payload, 1, i + 1))
        p = read_packet(pub)
        acked += 1 if p and p[0] >> 4 == 4 else 0
    r.check("%s publisher got all %d PUBACKs" % (name, N), acked == N, "%d" % acked)

    # The subscriber has read nothing yet: the broker must still answer.
    other = client(b.port, "other-" + name, False)
    t0 = time.time()
    other.sendall(bytes([0xC0, 0]))
    p = read_packet(other)
    r.check("%s: another client is answered while output waits (%.3f s)" % (name, time.time() - t0),
            bool(p) and p[0] == 0xD0 and time.time() - t0 < 1.0)
    other.close()

    got, in_order = 0, True
    for i in range(N):
        p = read_packet(sub, 10)
        if not p or p[0] >> 4 != 3:
            break
        body = p[1]
        tlen = int.from_bytes(body[:2], "big")
        pid = int.from_bytes(body[2 + tlen:4 + tlen], "big")
        payload = body[4 + tlen:]
        if payload != (b"%06d" % i) * (SIZE // 6):
            in_order = False
        sub.sendall(puback(pid))
        got += 1
    r.check("%s subscriber got all %d messages (%d)" % (name, N, got), got == N)
    r.check("%s messages whole and in order" % name, in_order)
    sub.close()
    pub.close()

r.check("the broker is alive", b.alive())
b.stop()
r.finish()
