#!/usr/bin/python3
"""Broker-wide bounds on the real broker: sockets waiting for CONNECT
(midge_max_pending_connects), sessions (midge_max_sessions, paho 3.1.1 and
5), retained messages (midge_max_retained_messages, mosquitto_pub and a
subscriber that sees what was kept)."""

import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import connect_packet, read_packet  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

r = brokerctl.Results("bounds")
brokerctl.deadline(r, 90)
b = brokerctl.start("listener {port} 127.0.0.1\n"
                    "midge_max_pending_connects 5\n"
                    "midge_max_sessions 3\n"
                    "midge_max_retained_messages 2\n"
                    "midge_connect_timeout 30\n")


def eof_within(s, timeout):
    """True when the broker closes s within timeout seconds."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


# -- pending connects: the sixth silent socket is closed at once (after
# the start-up probe's connection has gone, or it would count)
time.sleep(0.5)
silent = [socket.create_connection(("127.0.0.1", b.port)) for _ in range(5)]
time.sleep(0.3)
extra = socket.create_connection(("127.0.0.1", b.port))
r.check("sixth socket waiting for CONNECT is closed", eof_within(extra, 2.0))
extra.close()
r.check("the five waiting are still open", not eof_within(silent[0], 0.3))
silent[0].sendall(connect_packet("bounds-p"))
p = read_packet(silent[0])
r.check("a waiting socket that sends CONNECT is served", p is not None and p[0] == 0x20)
time.sleep(0.2)
extra = socket.create_connection(("127.0.0.1", b.port))
r.check("with one slot free a new socket is accepted", not eof_within(extra, 0.5))
for s in silent + [extra]:
    s.close()
time.sleep(0.3)
r.check("refusals are logged", "midge_max_pending_connects reached" in b.log_text())


# -- sessions: with 3 at most, a new client id is refused
def paho_connect(cid, proto, clean=True):
    rc = []
    if proto == mqtt.MQTTv5:
        c = mqtt.Client(client_id=cid, protocol=proto)
    else:
        c = mqtt.Client(client_id=cid, clean_session=clean, protocol=proto)
    c.on_connect = lambda cl, u, f, code, props=None: rc.append(code.value if proto == mqtt.MQTTv5
                                                                else code)
    c.connect("127.0.0.1", b.port, 60)
    c.loop_start()
    for _ in range(50):
        if rc:
            break
        time.sleep(0.05)
    return c, (rc[0] if rc else None)


kept = []
for cid in ("bs1", "bs2", "bs3"):
    c, rc = paho_connect(cid, mqtt.MQTTv311, clean=False)
    kept.append(c)
    r.check("session %s accepted" % cid, rc == 0, "rc %r" % rc)
c4, rc = paho_connect("bs4", mqtt.MQTTv311)
r.check("fourth session refused: 3.1.1 server unavailable (3)", rc == 3, "rc %r" % rc)
c4.loop_stop()
c5, rc = paho_connect("bs5", mqtt.MQTTv5)
r.check("fourth session refused: v5 quota exceeded (0x97)", rc == 0x97, "rc %r" % rc)
c5.loop_stop()
kept[0].disconnect()
kept[0].loop_stop()
time.sleep(0.2)
c, rc = paho_connect("bs1", mqtt.MQTTv311, clean=False)
r.check("an existing session's client reconnects", rc == 0, "rc %r" % rc)
c.disconnect()
c.loop_stop()
for c in kept[1:]:
    c.disconnect()
    c.loop_stop()

# -- retained: two topics at most (the broker's own $SYS topics not counted)
pub = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-i", "bs2", "-r"]
for t in ("br/1", "br/2", "br/3"):
    brokerctl.run(pub + ["-t", t, "-m", "v-" + t])
brokerctl.run(pub + ["-t", "br/1", "-m", "new"])  # replacing is not held back
_, out, _ = brokerctl.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-i", "bs3",
                     "-t", "br/#", "-v", "-W", "1"], timeout=5)
got = sorted(l for l in out.splitlines() if l)
r.check("only the first two retained topics were kept, the first replaced",
        got == ["br/1 new", "br/2 v-br/2"], "got %r" % got)
r.finish()
