"""Hostile WebSocket clients against a ws listener (raw sockets, wsraw.py):
oversized, endless and too many headers (431), a slow handshake (closed
after connect_timeout), a missing or bad key (400), a wrong version (426
naming 13), no upgrade (426), garbage; after the upgrade an unmasked frame
(Close 1002), a text frame (Close 1003), a frame above the limit (Close
1009), a Close in the middle of an MQTT packet (the will goes out, the
half packet does not). Also what must work: MQTT packets split over
frames and several in one frame, fragmented messages, PING answered with
PONG, the client's Close answered. Through all of it a TCP client keeps
being served."""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import wsraw  # noqa: E402
from brokerctl import connect_packet, publish_packet, read_packet, subscribe_packet, varint  # noqa: E402

r = brokerctl.Results("ws-hostile")
brokerctl.deadline(r, 120)

MAX_PACKET = 4096
b = brokerctl.start("""listener {port} 127.0.0.1
listener {port2} 127.0.0.1
protocol websockets
websockets_headers_size 2048
max_packet_size %d
midge_connect_timeout 2
""" % MAX_PACKET)
TCP, WS = b.port, b.ports["port2"]


def probe(what):
    """A plain TCP client still gets CONNACK, SUBACK and its own message."""
    s = socket.create_connection(("127.0.0.1", TCP), timeout=5)
    s.sendall(connect_packet("probe") + subscribe_packet(1, "probe", 0) +
              publish_packet("probe", b"alive"))
    got = [read_packet(s) for _ in range(3)]
    s.close()
    ok = [p and p[0] >> 4 for p in got] == [2, 9, 3] and got[2][1].endswith(b"alive")
    r.check("broker still serves TCP clients after %s" % what, ok and b.alive(), repr(got))


def answer(request, what, status, extra=None):
    head = wsraw.http_exchange(WS, request)
    ok = head.startswith("HTTP/1.1 %d" % status) and (extra is None or extra in head)
    r.check("%s: HTTP %d" % (what, status), ok, head[:300])


# ---- the handshake ------------------------------------------------------

answer(wsraw.upgrade_request(extra="X-Big: %s\r\n" % ("a" * 3000)), "oversized header", 431)
answer(b"GET /mqtt HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(60)) + b"\r\n",
       "too many header fields", 431)
s = socket.create_connection(("127.0.0.1", WS), timeout=5)
s.sendall(b"GET /mqtt HTTP/1.1\r\n")
endless_ok = True
try:
    for i in range(400):  # endless headers: 2048 bytes pass after ~150 lines
        s.sendall(b"X-Endless-%04d: yes\r\n" % i)
except OSError:
    pass
head = wsraw.read_http(s)
r.check("endless headers: 431 once past websockets_headers_size",
        head.startswith("HTTP/1.1 431"), head[:200])
r.check("endless headers: then the connection is closed", wsraw.closed_within(s, 3))
s.close()

answer(wsraw.upgrade_request(key=""), "missing Sec-WebSocket-Key", 400)
answer(wsraw.upgrade_request(key="short=="), "bad Sec-WebSocket-Key", 400)
answer(wsraw.upgrade_request(version="8"), "wrong WebSocket version", 426,
       "Sec-WebSocket-Version: 13\r\n")
answer(wsraw.upgrade_request(version=None), "no WebSocket version", 426)
answer(wsraw.upgrade_request(protocols="chat"), "[MQTT-6.0.0-3] no MQTT subprotocol", 400)
answer(b"GET /index.html HTTP/1.1\r\nHost: h\r\n\r\n", "plain GET without http_dir", 426)
answer(b"POST /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       "upgrade with POST", 405)
answer(connect_packet("raw-mqtt"), "MQTT straight on a ws port", 400)

# Slow handshake: a byte every 300 ms never completes before
# connect_timeout (2 s) and is cut.
s = socket.create_connection(("127.0.0.1", WS), timeout=5)
req = wsraw.upgrade_request()
start = time.time()
cut = False
for i in range(len(req)):
    try:
        s.sendall(req[i:i + 1])
    except OSError:
        cut = True
        break
    if wsraw.closed_within(s, 0.3):
        cut = True
        break
elapsed = time.time() - start
r.check("slow handshake is closed after connect_timeout", cut and 1.5 < elapsed < 5,
        "cut=%s after %.1f s" % (cut, elapsed))
s.close()
probe("the hostile handshakes")

# ---- frames -------------------------------------------------------------


def mqtt_session(client_id, will=None):
    """An upgraded connection with an accepted MQTT 3.1.1 CONNECT."""
    c = wsraw.connect(WS)
    if will:
        body = (b"\x00\x04MQTT\x04" + bytes([0x06]) + b"\x00\x3c" +
                struct.pack("!H", len(client_id)) + client_id.encode() +
                struct.pack("!H", len(will[0])) + will[0].encode() +
                struct.pack("!H", len(will[1])) + will[1])
        c.send_frame(0x2, b"\x10" + varint(len(body)) + body)
    else:
        c.send_frame(0x2, connect_packet(client_id))
    p = c.read_mqtt()
    return c, p is not None and p[0] == 0x20 and p[1][1] == 0


def close_code(c, timeout=5):
    """The status code of the broker's Close frame, or None."""
    while True:
        f = c.read_frame(timeout)
        if f is None:
            return None
        if f[0] == 0x8:
            return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005


# Packets split over frames, several in one frame, a fragmented message.
c = wsraw.connect(WS)
conn = connect_packet("frames")
c.send_frame(0x2, conn[:3])
c.send_frame(0x2, conn[3:7])
c.send_frame(0x2, conn[7:])
p = c.read_mqtt()
r.check("[MQTT-6.0.0-2] a CONNECT split over three frames is accepted",
        p is not None and p[0] == 0x20, repr(p))
both = subscribe_packet(1, "frames/t", 0) + publish_packet("frames/t", b"one-frame")
c.send_frame(0x2, both)
p1, p2 = c.read_mqtt(), c.read_mqtt()
r.check("[MQTT-6.0.0-2] SUBSCRIBE and PUBLISH in one frame",
        p1 and p1[0] >> 4 == 9 and p2 and p2[0] >> 4 == 3 and p2[1].endswith(b"one-frame"),
        repr((p1, p2)))
msg = publish_packet("frames/t", b"fragmented")
c.send_frame(0x2, msg[:4], fin=False)
c.send_frame(0x9, b"ping-in-between")  # control frames may come between fragments
c.send_frame(0x0, msg[4:9], fin=False)
c.send_frame(0x0, msg[9:])
f = c.read_frame()
r.check("PING is answered with PONG and its payload", f == (0xA, b"ping-in-between"), repr(f))
p = c.read_mqtt()
r.check("a message in three fragments arrives as one packet",
        p and p[0] >> 4 == 3 and p[1].endswith(b"fragmented"), repr(p))
c.send_frame(0x8, struct.pack("!H", 1000) + b"bye")
code = close_code(c)
r.check("the client's Close is answered with Close 1000", code == 1000, repr(code))
r.check("then the broker closes the TCP connection", wsraw.closed_within(c.sock, 3))
c.close()

c, ok = mqtt_session("unmasked")
c.send_frame(0x2, b"\xc0\x00", mask=False)  # a PINGREQ, unmasked
r.check("unmasked client frame: Close 1002", ok and close_code(c) == 1002)
r.check("unmasked client frame: connection closed", wsraw.closed_within(c.sock, 3))
c.close()

c, ok = mqtt_session("text")
c.send_frame(0x1, b"\xc0\x00")
r.check("[MQTT-6.0.0-1] text frame: Close 1003", ok and close_code(c) == 1003)
c.close()

c, ok = mqtt_session("big")
c.send(wsraw.frame(0x2, b"", length=100000) + os.urandom(1000))  # header says 100000
code = close_code(c)
r.check("frame above the maximum packet size: Close 1009", ok and code == 1009, repr(code))
c.close()

c, ok = mqtt_session("reserved")
c.send_frame(0x2, b"\xc0\x00", rsv=4)
r.check("reserved bit without an extension: Close 1002", ok and close_code(c) == 1002)
c.close()

# A Close in the middle of an MQTT packet: the half PUBLISH is dropped,
# the connection ends without DISCONNECT, so the will goes out.
watch = socket.create_connection(("127.0.0.1", TCP), timeout=5)
watch.sendall(connect_packet("watcher") + subscribe_packet(1, "half/#", 0))
read_packet(watch), read_packet(watch)
c, ok = mqtt_session("half", will=("half/will", b"gone"))
half = publish_packet("half/data", b"x" * 200)
c.send_frame(0x2, half[:100])
c.send_frame(0x8, struct.pack("!H", 1000))
code = close_code(c)
r.check("Close in the middle of an MQTT packet: answered with Close", ok and code == 1000,
        repr(code))
p = read_packet(watch, 5)
r.check("... the will is published, the half PUBLISH is not",
        p is not None and p[1].startswith(b"\x00\x09half/will") and p[1].endswith(b"gone"), repr(p))
watch.close()
c.close()

probe("the hostile frames")
log = b.log_text()
r.check("refusals are logged with their reason",
        "refused: HTTP 431" in log and "Close 1002" in log and "text frame" in log, log[-1500:])
rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
r.finish()
